"""A contextual stochastic block model (CSBM): a generated graph whose edge homophily is a
setting, for asking when a model should attend only to a node's neighbours.

Deshpande et al. 2018 ("Contextual Stochastic Block Models", arXiv 1807.09596) pair a
stochastic block model with Gaussian node features whose mean depends on the class;
GNN benchmarks sweep its homophily (Ma et al. 2022, arXiv 2106.06134; Palowitch et al.
2022, GraphWorld). Here:

  classes   num_nodes nodes, exactly num_nodes / num_classes in each class (a seeded
            permutation of 0, 1, ..., C-1 repeated)
  features  x_i = mu_{y_i} + N(0, I_F): the class means mu_c = feature_signal * u_c, u_c
            a seeded random unit vector in R^F, so the features alone separate the
            classes partly (how much: feature_signal)
  edges     each pair independently, p_in within a class and p_out across, solved so the
            expected mean degree is mean_degree and the expected edge homophily (the
            share of edges joining two nodes of one class) is `homophily`. With C
            classes a graph blind to the classes has homophily about 1/C (0.2 for 5
            classes): below that the graph is heterophilous, above it homophilous.
  splits    Planetoid's form (Yang et al. 2016; GAT's and GCN's Cora protocol):
            train_per_class labelled nodes per class (the training target_mask), then
            num_validation and num_test more, drawn from the rest; the remaining nodes are
            in the graph but scored nowhere.

Node classification on the one graph (like karate, data/graphs.py): every training batch
is the whole graph with the training nodes' mask; evaluation is the whole graph with the
mask of `eval_split` ("validation" to choose a checkpoint, "test" to score it once).
Everything is a pure function of the settings and `seed` (numpy's default_rng); a graph
is generated once per process and kept (generation takes well under a second at 2,000
nodes, so nothing goes to disk).
"""
from __future__ import annotations

import functools

import numpy as np

from attn_research.data.base import TaskInfo, check_eval_split, register_task
from attn_research.data.graphs import GraphTask

CSBM_SPLITS = ("validation", "test")
CSBM_DEFAULTS = dict(num_nodes=2000, num_classes=5, homophily=0.8, mean_degree=5.0,
                     feature_dim=32, feature_signal=1.5, train_per_class=20,
                     num_validation=500, num_test=1000, eval_split="validation", seed=0)
CSBM_SMOKE = dict(num_nodes=100, train_per_class=4, num_validation=20, num_test=40)


def edge_probabilities(num_nodes: int, num_classes: int, homophily: float,
                       mean_degree: float) -> tuple[float, float]:
  """(p_in, p_out) giving num_nodes * mean_degree / 2 expected edges of which a share
  `homophily` joins nodes of one class, for classes of num_nodes / num_classes nodes."""
  m = num_nodes // num_classes
  edges = num_nodes * mean_degree / 2
  same_pairs = num_classes * m * (m - 1) / 2
  cross_pairs = num_classes * (num_classes - 1) * m * m / 2
  return homophily * edges / same_pairs, (1 - homophily) * edges / cross_pairs


def edge_homophily(adjacency_NN, labels_N) -> float:
  """The share of edges whose two nodes have one class (self loops ignored)."""
  i, j = np.nonzero(np.triu(adjacency_NN, 1))
  return float(np.mean(labels_N[i] == labels_N[j])) if len(i) else float("nan")


def check_settings(cfg):
  for key in ("num_nodes", "num_classes", "feature_dim", "train_per_class", "num_validation",
              "num_test"):
    if not (isinstance(cfg[key], int) and not isinstance(cfg[key], bool) and cfg[key] >= 1):
      raise ValueError(f"data.{key}={cfg[key]!r} must be a positive int")
  n, c = cfg["num_nodes"], cfg["num_classes"]
  if c < 2 or n % c:
    raise ValueError(f"data.num_classes={c} must be >= 2 and divide data.num_nodes={n}")
  if not 0 <= cfg["homophily"] <= 1:
    raise ValueError(f"data.homophily={cfg['homophily']!r} must be in [0, 1]")
  if not 0 < cfg["mean_degree"] < n - 1:
    raise ValueError(f"data.mean_degree={cfg['mean_degree']!r} must be in (0, {n - 1})")
  if cfg["feature_signal"] < 0:
    raise ValueError(f"data.feature_signal={cfg['feature_signal']!r} must be >= 0")
  p_in, p_out = edge_probabilities(n, c, cfg["homophily"], cfg["mean_degree"])
  if p_in > 1 or p_out > 1:
    raise ValueError(f"data.homophily={cfg['homophily']} with data.mean_degree="
                     f"{cfg['mean_degree']} needs an edge probability above 1 (p_in "
                     f"{p_in:.3g}, p_out {p_out:.3g}); lower the mean degree")
  scored = c * cfg["train_per_class"] + cfg["num_validation"] + cfg["num_test"]
  if cfg["train_per_class"] >= n // c or scored > n:
    raise ValueError(f"data.train_per_class={cfg['train_per_class']} per class + "
                     f"num_validation={cfg['num_validation']} + num_test={cfg['num_test']} "
                     f"= {scored} nodes do not fit data.num_nodes={n}")
  check_eval_split(cfg["eval_split"], CSBM_SPLITS)


@functools.lru_cache(maxsize=16)
def generate(num_nodes, num_classes, homophily, mean_degree, feature_dim, feature_signal,
             train_per_class, num_validation, num_test, seed):
  """(features [N, F] float32, labels [N] int32, adjacency [N, N] bool, split [N] int8:
  0 train, 1 validation, 2 test, -1 unscored). Read-only arrays, kept per settings."""
  rng = np.random.default_rng([seed, 7])
  labels = rng.permutation(np.arange(num_nodes) % num_classes).astype(np.int32)
  directions = rng.standard_normal((num_classes, feature_dim))
  means = feature_signal * directions / np.linalg.norm(directions, axis=1, keepdims=True)
  features = (means[labels] + rng.standard_normal((num_nodes, feature_dim))).astype(np.float32)
  p_in, p_out = edge_probabilities(num_nodes, num_classes, homophily, mean_degree)
  same = labels[:, None] == labels[None, :]
  upper = np.triu(rng.random((num_nodes, num_nodes)) < np.where(same, p_in, p_out), 1)
  adjacency = upper | upper.T
  split = np.full(num_nodes, -1, np.int8)
  for c in range(num_classes):
    split[rng.choice(np.flatnonzero(labels == c), train_per_class, replace=False)] = 0
  rest = rng.permutation(np.flatnonzero(split < 0))
  split[rest[:num_validation]] = 1
  split[rest[num_validation:num_validation + num_test]] = 2
  for a in (features, labels, adjacency, split):
    a.flags.writeable = False
  return features, labels, adjacency, split


@register_task("csbm", CSBM_DEFAULTS, smoke=CSBM_SMOKE)
def csbm(cfg):
  """Node classification on one CSBM graph (the module docstring)."""
  check_settings(cfg)
  features, labels, adjacency, split = generate(*(cfg[k] for k in (
      "num_nodes", "num_classes", "homophily", "mean_degree", "feature_dim", "feature_signal",
      "train_per_class", "num_validation", "num_test", "seed")))
  n = cfg["num_nodes"]
  example = {"inputs": features[None], "mask": np.ones((1, n), bool), "targets": labels[None],
             "adjacency": adjacency[None]}
  scored = split == CSBM_SPLITS.index(cfg["eval_split"]) + 1
  train = dict(example, target_mask=(split == 0)[None])
  evaluation = dict(example, target_mask=scored[None])
  info = TaskInfo(input_kind="graph_nodes", input_size=cfg["feature_dim"],
                  output_kind="per_vector", num_classes=cfg["num_classes"], max_length=n,
                  train_size=1)
  degree = adjacency.sum(1)
  notes = (f"one graph of {n} nodes, {int(adjacency.sum()) // 2} edges (mean degree "
           f"{degree.mean():.2f}), edge homophily {edge_homophily(adjacency, labels):.3f} "
           f"(asked {cfg['homophily']}); {int((split == 0).sum())} train, "
           f"{int((split == 1).sum())} validation, {int((split == 2).sum())} test nodes; "
           f"evaluation scores {cfg['eval_split']}")
  return GraphTask(info, train, evaluation, name="csbm",
                   class_names=[f"class {c}" for c in range(cfg["num_classes"])], notes=notes)
