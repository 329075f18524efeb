"""Graphs as vector sets: the nodes are the vectors, the edges travel beside them.

Every batch of these tasks holds `adjacency` [B, T, T] bool: symmetric, True where
nodes i and j share an edge, and WITHOUT self loops (the diagonal is always False;
a model that lets a node attend to itself adds the loops, e.g. `adjacency | eye`).
Padded nodes (mask False, placed after the real ones) have no edges. Edge weights,
where a source has them (the karate club's), are dropped: an edge is there or not.

  karate          node classification: Zachary's karate club, a few labelled members
  graph_property  graph classification of small graphs: connected? holds a triangle?

Both are finite datasets (ArrayTask): training batches are a pure function of
(seed, step). networkx is imported only when one of these tasks is built, so the
other tasks never need it.
"""
from __future__ import annotations

import hashlib

import numpy as np

from attn_research.data.base import (ArrayTask, TaskInfo, check_eval_split, register_task,
                                     save_figure)
from attn_research.registry import check_choice


def _networkx():
  try:
    import networkx
  except ImportError as e:
    raise ImportError("the graph tasks need networkx: pip install networkx") from e
  return networkx


def adjacency_matrix(graph, max_nodes: int):
  """[max_nodes, max_nodes] bool: node i is the i-th of sorted(graph.nodes()); no self
  loops, no edges on the padding rows and columns."""
  index = {v: i for i, v in enumerate(sorted(graph.nodes()))}
  if len(index) > max_nodes:
    raise ValueError(f"a graph of {len(index)} nodes does not fit max_nodes={max_nodes}")
  a = np.zeros((max_nodes, max_nodes), bool)
  for u, v in graph.edges():
    if u != v:
      a[index[u], index[v]] = a[index[v], index[u]] = True
  return a


class GraphTask(ArrayTask):
  """An ArrayTask whose examples are graphs: render draws one, summary adds the sizes."""

  def __init__(self, info, train, evaluation, *, name: str, class_names, notes: str):
    super().__init__(info, train, evaluation)
    self.name, self.class_names, self.notes = name, tuple(class_names), notes

  def summary(self) -> str:
    return f"{super().summary()}; {self.notes}"

  def render(self, example: dict, out_dir) -> str:
    """Draws the example's graph to out_dir/NAME-HASH.png (node colour = class; for
    per-node labels, the nodes that count in the loss or metric get a black ring)."""
    nx = _networkx()
    from matplotlib.lines import Line2D

    n = int(np.asarray(example["mask"]).sum())
    adjacency = np.asarray(example["adjacency"])[:n, :n]
    graph = nx.from_numpy_array(adjacency.astype(np.int8))
    targets = np.asarray(example["targets"])
    per_node = targets.ndim == 1
    labels = targets[:n] if per_node else np.full(n, int(targets))
    palette = ("tab:blue", "tab:orange", "tab:green", "tab:red")
    colours = [palette[int(c) % len(palette)] for c in labels]
    rings = "none"
    if per_node and "target_mask" in example:
      rings = ["black" if s else "none" for s in np.asarray(example["target_mask"])[:n]]

    digest = hashlib.sha1(adjacency.tobytes() + targets.tobytes() + np.asarray(
        example.get("target_mask", False)).tobytes()).hexdigest()[:12]

    def draw(ax):
      pos = nx.spring_layout(graph, seed=0)
      nx.draw_networkx_edges(graph, pos, ax=ax, alpha=0.5)
      nx.draw_networkx_nodes(graph, pos, ax=ax, node_color=colours, edgecolors=rings,
                             linewidths=2.0, node_size=250 if n > 12 else 400)
      nx.draw_networkx_labels(graph, pos, ax=ax, font_size=8)
      handles = [Line2D([], [], marker="o", ls="", color=palette[c], label=name)
                 for c, name in enumerate(self.class_names)]
      if rings != "none":
        handles.append(Line2D([], [], marker="o", ls="", markerfacecolor="white",
                              markeredgecolor="black", markeredgewidth=2.0, label="scored"))
      ax.legend(handles=handles, loc="best", fontsize=8)
      title = f"{self.name}: {n} nodes, {graph.number_of_edges()} edges"
      if not per_node:
        title += f", label {self.class_names[int(targets)]!r}"
      ax.set_title(title, fontsize=9)
      ax.set_axis_off()

    return save_figure(draw, out_dir, f"{self.name}-{digest}.png", figsize=(5, 5))


# ---------------------------------------------------------------------------------------
# karate

CLUBS = ("Mr. Hi", "Officer")
KARATE_FEATURES = ("identity", "structural")
STRUCTURAL_FEATURES = ("degree", "clustering", "core_number", "pagerank", "betweenness",
                       "closeness", "eigenvector", "triangles")


def structural_features(graph):
  """[N, 8] float32, each column standardised over the nodes (mean 0, std 1): the
  STRUCTURAL_FEATURES of the unweighted graph, rows in sorted node order."""
  nx = _networkx()
  columns = [dict(graph.degree()), nx.clustering(graph), nx.core_number(graph),
             nx.pagerank(graph, weight=None), nx.betweenness_centrality(graph),
             nx.closeness_centrality(graph), nx.eigenvector_centrality(graph, max_iter=1000),
             nx.triangles(graph)]
  nodes = sorted(graph.nodes())
  x = np.array([[col[v] for col in columns] for v in nodes], np.float64)
  std = x.std(0)
  return ((x - x.mean(0)) / np.where(std > 0, std, 1.0)).astype(np.float32)


KARATE_SPLITS = ("test", "validation")  # data.eval_split


@register_task("karate", dict(features="identity", labelled_per_class=4,
                              validation_per_class=0, eval_split="test", seed=0))
def karate(cfg):
  """Zachary's karate club (Zachary 1977; networkx.karate_club_graph()): 34 members,
  78 friendships, and the club each member joined after the split, 'Mr. Hi' (class 0,
  17 members, led by node 0) or 'Officer' (class 1, 17 members, led by node 33).

  Node classification (one label per node) on the one graph, semi-supervised as in
  Kipf & Welling 2017: `labelled_per_class` members of each club, drawn with `seed`,
  are the only ones scored in training (target_mask); evaluation is the same graph
  scored on the other 34 - 2 * labelled_per_class members. With validation_per_class
  v > 0, v more members of each club (drawn after the labelled ones, with the same
  `seed`) are the validation nodes and the rest the test nodes; eval_split says which
  of the two evaluation scores ("validation" to choose a checkpoint, "test" once).
  v = 0 (the default) keeps the old split: "test" is every unlabelled member. Every
  training batch is the graph repeated batch_size times (train_size 1), so the batch
  size changes nothing but the cost. No padding: max_length 34.

  features="identity": one-hot node id (input size 34), the classic GCN input, which
  says nothing about a node without the edges. features="structural": the 8 standardised
  STRUCTURAL_FEATURES (degree, clustering coefficient, core number, PageRank,
  betweenness, closeness, eigenvector centrality, triangle count); they describe a
  member's role (hub or periphery), not which faction it is in.
  """
  check_choice("data.features", cfg["features"], KARATE_FEATURES)
  nx = _networkx()
  graph = nx.karate_club_graph()
  nodes = sorted(graph.nodes())
  n = len(nodes)
  labels = np.array([CLUBS.index(graph.nodes[v]["club"]) for v in nodes], np.int32)
  smallest = int(np.bincount(labels).min())
  k = cfg["labelled_per_class"]
  if not (isinstance(k, int) and 1 <= k < smallest):
    raise ValueError(f"data.labelled_per_class={k!r} must be an int in [1, {smallest - 1}]: "
                     f"the smallest club has {smallest} members and at least one per club "
                     f"is kept for evaluation")
  v = cfg["validation_per_class"]
  if not (isinstance(v, int) and 0 <= v < smallest - k):
    raise ValueError(f"data.validation_per_class={v!r} must be an int in [0, {smallest - k - 1}]"
                     f": with labelled_per_class={k}, at least one member per club is left "
                     f"for the test split")
  check_eval_split(cfg["eval_split"], KARATE_SPLITS, got=v, needs="data.validation_per_class "
                   "> 0 (the members per club kept aside for validation)")
  rng = np.random.default_rng(cfg["seed"])
  labelled = np.zeros(n, bool)
  for c in range(len(CLUBS)):
    labelled[rng.choice(np.flatnonzero(labels == c), k, replace=False)] = True
  validation = np.zeros(n, bool)  # drawn after the labelled ones: v = 0 changes no draw
  for c in range(len(CLUBS)) if v else ():
    validation[rng.choice(np.flatnonzero((labels == c) & ~labelled), v, replace=False)] = True
  scored = validation if cfg["eval_split"] == "validation" else ~labelled & ~validation
  if cfg["features"] == "identity":
    features = np.eye(n, dtype=np.float32)
  else:
    features = structural_features(graph)
  example = {"inputs": features[None], "mask": np.ones((1, n), bool), "targets": labels[None],
             "adjacency": adjacency_matrix(graph, n)[None]}
  train = dict(example, target_mask=labelled[None])
  evaluation = dict(example, target_mask=scored[None])
  info = TaskInfo(input_kind="graph_nodes", input_size=features.shape[1],
                  output_kind="per_vector", num_classes=len(CLUBS), max_length=n, train_size=1)
  notes = (f"one graph of {n} nodes: {int(labelled.sum())} labelled for training, "
           + (f"{int(validation.sum())} for validation, " if v else "")
           + f"{int(scored.sum())} scored in evaluation ({cfg['eval_split']})")
  return GraphTask(info, train, evaluation, name="karate", class_names=CLUBS, notes=notes)


# ---------------------------------------------------------------------------------------
# graph_property

PROPERTIES = {"connected": ("disconnected", "connected"),
              "triangle": ("triangle-free", "has a triangle")}
SOURCES = ("atlas", "random", "both")
GRAPH_FEATURES = ("constant", "degree")
ATLAS_MAX_NODES = 7
GRAPH_PROPERTY_DEFAULTS = dict(property="connected", source="atlas", features="constant",
                               balance=True, num_random=2000, min_nodes=8, max_nodes=16,
                               edge_prob=0.2, eval_fraction=0.2, seed=0)


def graph_label(graph, prop: str) -> int:
  nx = _networkx()
  if prop == "connected":
    return int(nx.is_connected(graph))  # a single node counts as connected
  return int(any(t > 0 for t in nx.triangles(graph).values()))


def node_features(adjacency_NTT, mask_NT, kind: str):
  """constant: [N, T, 1], 1 on real nodes; degree: [N, T, T] one-hot of the degree
  (0 .. T-1). Padding rows are all zero. Neither holds the label itself."""
  if kind == "constant":
    return mask_NT[..., None].astype(np.float32)
  T = adjacency_NTT.shape[1]
  degree_NT = adjacency_NTT.sum(-1)
  return ((degree_NT[..., None] == np.arange(T)) & mask_NT[..., None]).astype(np.float32)


def _random_graphs(cfg, rng):
  nx = _networkx()
  sizes = rng.integers(cfg["min_nodes"], cfg["max_nodes"] + 1, size=cfg["num_random"])
  seeds = rng.integers(0, 2**31 - 1, size=cfg["num_random"])
  return [nx.gnp_random_graph(int(n), cfg["edge_prob"], seed=int(s))
          for n, s in zip(sizes, seeds)]


def _check_graph_property(cfg):
  check_choice("data.property", cfg["property"], PROPERTIES)
  check_choice("data.source", cfg["source"], SOURCES)
  check_choice("data.features", cfg["features"], GRAPH_FEATURES)
  if not isinstance(cfg["balance"], bool):
    raise ValueError(f"data.balance={cfg['balance']!r} is not valid; choose from (True, False)")
  if not 0 < cfg["eval_fraction"] < 1:
    raise ValueError(f"data.eval_fraction={cfg['eval_fraction']!r} must be in (0, 1)")
  if cfg["source"] != "atlas":
    if not (isinstance(cfg["num_random"], int) and cfg["num_random"] >= 1):
      raise ValueError(f"data.num_random={cfg['num_random']!r} must be a positive int")
    if not 1 <= cfg["min_nodes"] <= cfg["max_nodes"]:
      raise ValueError(f"need 1 <= data.min_nodes <= data.max_nodes; got "
                       f"{cfg['min_nodes']}, {cfg['max_nodes']}")
    if not 0 <= cfg["edge_prob"] <= 1:
      raise ValueError(f"data.edge_prob={cfg['edge_prob']!r} must be in [0, 1]")


def stratified_split(labels, eval_fraction: float, rng):
  """(train indices, eval indices): each class split in the same proportion; both
  orders shuffled."""
  train, evaluation = [], []
  for c in np.unique(labels):
    members = rng.permutation(np.flatnonzero(labels == c))
    n_eval = int(round(eval_fraction * len(members)))
    if not 1 <= n_eval < len(members):
      raise ValueError(f"data.eval_fraction={eval_fraction} leaves an empty split for class "
                       f"{c}, which has {len(members)} graphs")
    evaluation.append(members[:n_eval])
    train.append(members[n_eval:])
  return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(evaluation))


@register_task("graph_property", GRAPH_PROPERTY_DEFAULTS, smoke=dict(num_random=64))
def graph_property(cfg):
  """Graph classification: is a small graph connected (property="connected") or does
  it hold a triangle (property="triangle")? Labels come from networkx (nx.is_connected;
  nx.triangles). One label per graph; nodes padded to max_length with mask False.

  source="atlas": the 1,252 non-empty graphs of networkx.graph_atlas_g() ("An Atlas of
  Graphs", Read & Wilson 1998): every graph of 1 to 7 nodes up to isomorphism, so no
  graph appears in both splits; max_length 7. source="random": num_random G(n, p) graphs
  (nx.gnp_random_graph), n uniform in [min_nodes, max_nodes], p = edge_prob, drawn from
  `seed` (isomorphic repeats may fall in both splits); max_length max_nodes.
  source="both": the two together; max_length max(7, max_nodes).

  Class balance (measured, networkx 3.6.1, seed 0). The atlas is 79.6 % connected
  (996 of 1,252) and 86.3 % triangle-holding (1,080 of 1,252). balance=True (the
  default) keeps a seeded sample of the majority class as large as the minority, so
  the classes are exactly 50/50: 512 atlas graphs for "connected" (410 train, 102 eval),
  344 for "triangle" (276 train, 68 eval). The random defaults (2,000 graphs of 8-16
  nodes, p 0.2, seed 0) are 33.8 % connected and 68.2 % triangle-holding before
  balancing (p 0.25: 56.6 % and 83.3 %; p 0.15: 11.9 % and 46.1 %).
  The split is stratified, so each split keeps the kept proportion; summary() states it.

  features="constant" (the default): one input 1 per node (input size 1), so the edges
  are the only information; a model that ignores them sees identical node vectors.
  features="degree": the one-hot node degree (input size max_length). No feature is the
  label, but degrees say a lot about it to a model that ignores the edges (a node of
  degree 0 in a graph of 2+ nodes means disconnected; many edges make a triangle
  likely): experiments/graph_property.py measures how much.
  """
  _check_graph_property(cfg)
  nx = _networkx()
  graphs = []
  if cfg["source"] in ("atlas", "both"):
    graphs += [g for g in nx.graph_atlas_g() if g.number_of_nodes() > 0]
  if cfg["source"] in ("random", "both"):
    graphs += _random_graphs(cfg, np.random.default_rng([cfg["seed"], 1]))
  T = {"atlas": ATLAS_MAX_NODES, "random": cfg["max_nodes"],
       "both": max(ATLAS_MAX_NODES, cfg["max_nodes"])}[cfg["source"]]
  labels = np.array([graph_label(g, cfg["property"]) for g in graphs], np.int32)
  counts = np.bincount(labels, minlength=2)
  if counts.min() < 2:
    raise ValueError(f"data.property={cfg['property']!r} gives {counts.tolist()} graphs per "
                     f"class with these settings; both classes need at least 2 (change "
                     f"data.edge_prob, data.min_nodes/max_nodes or data.source)")
  rng = np.random.default_rng([cfg["seed"], 2])
  keep = np.arange(len(graphs))
  if cfg["balance"]:
    keep = np.sort(np.concatenate([rng.choice(np.flatnonzero(labels == c), counts.min(),
                                              replace=False) for c in range(2)]))
  train_idx, eval_idx = stratified_split(labels[keep], cfg["eval_fraction"], rng)
  train_idx, eval_idx = keep[train_idx], keep[eval_idx]

  def arrays(indices):
    adjacency = np.stack([adjacency_matrix(graphs[i], T) for i in indices])
    sizes = np.array([graphs[i].number_of_nodes() for i in indices])
    mask = np.arange(T) < sizes[:, None]
    return {"inputs": node_features(adjacency, mask, cfg["features"]), "mask": mask,
            "targets": labels[indices], "adjacency": adjacency}

  train, evaluation = arrays(train_idx), arrays(eval_idx)
  info = TaskInfo(input_kind="graph_nodes", input_size=train["inputs"].shape[-1],
                  output_kind="per_sequence", num_classes=2, max_length=T,
                  train_size=len(train_idx))
  names = PROPERTIES[cfg["property"]]
  notes = (f"{len(graphs)} graphs from {cfg['source']} were {100 * counts[1] / len(graphs):.1f} % "
           f"{names[1]!r}; kept {len(keep)} ({'balanced' if cfg['balance'] else 'unbalanced'}): "
           f"train {len(train_idx)} ({100 * train['targets'].mean():.1f} % {names[1]!r}), "
           f"eval {len(eval_idx)} ({100 * evaluation['targets'].mean():.1f} %)")
  return GraphTask(info, train, evaluation, name=f"graph_property-{cfg['property']}",
                   class_names=names, notes=notes)
