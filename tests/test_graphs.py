"""Graph tasks: the adjacency contract, the karate club's split, graph labels checked by
independent computations on the batch's own adjacency, balance, determinism, bad input."""
import collections

import networkx as nx
import numpy as np
import pytest

from attn_research.data import get_task, task_defaults
from attn_research.data.graphs import adjacency_matrix

# The club each member joined (Zachary 1977, as networkx records it): the 17 'Mr. Hi' members.
MR_HI = {0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 16, 17, 19, 21}


def karate(**settings):
  return get_task(dict(task_defaults("karate"), **settings))


def graph_property(**settings):
  return get_task(dict(task_defaults("graph_property"), **settings))


def both_splits(task):
  """Every example of the task, train and eval, as one dict of arrays."""
  return {k: np.concatenate([task.train[k], task.evaluation[k]]) for k in task.train}


def check_batch(batch, info, batch_size):
  """The batch contract for graph tasks, against TaskInfo."""
  T, B = info.max_length, batch_size
  assert batch["inputs"].shape == (B, T, info.input_size)
  assert batch["inputs"].dtype == np.float32
  assert batch["mask"].shape == (B, T) and batch["mask"].dtype == bool
  assert batch["adjacency"].shape == (B, T, T) and batch["adjacency"].dtype == bool
  per_vector = info.output_kind == "per_vector"
  assert batch["targets"].shape == ((B, T) if per_vector else (B,))
  assert np.issubdtype(batch["targets"].dtype, np.integer)
  assert batch["target_mask"].shape == batch["targets"].shape
  assert batch["target_mask"].dtype == bool
  assert set(np.unique(batch["targets"])) <= set(range(info.num_classes))
  check_adjacency(batch["adjacency"], batch["mask"])


def check_adjacency(adjacency, mask):
  a = adjacency
  assert (a == a.transpose(0, 2, 1)).all(), "adjacency is not symmetric"
  assert not a[:, np.arange(a.shape[1]), np.arange(a.shape[1])].any(), "self loops"
  touches_padding = a & ~(mask[:, :, None] & mask[:, None, :])
  assert not touches_padding.any(), "an edge touches a padded node"
  n = mask.sum(1)
  assert (mask == (np.arange(mask.shape[1]) < n[:, None])).all(), "padding is not last"


# ----------------------------------------------------------------------------------- karate

@pytest.mark.parametrize("features,size", [("identity", 34), ("structural", 8)])
def test_karate_info_and_batches(features, size):
  task = karate(features=features)
  i = task.info
  assert (i.input_kind, i.input_size, i.output_kind, i.num_classes, i.max_length,
          i.train_size) == ("graph_nodes", size, "per_vector", 2, 34, 1)
  batch = task.train_batch(3, 4, seed=0)
  check_batch(batch, i, 4)
  assert batch["mask"].all()  # 34 real nodes, no padding
  for key in batch:  # one graph, repeated batch_size times
    assert (batch[key] == batch[key][:1]).all(), key
  if features == "identity":
    np.testing.assert_array_equal(batch["inputs"][0], np.eye(34))


def test_karate_is_zacharys_graph_and_clubs():
  task = karate()
  example = task.train_batch(0, 1, seed=0)
  graph = nx.karate_club_graph()
  expected = nx.to_numpy_array(graph, nodelist=range(34), weight=None) > 0
  np.testing.assert_array_equal(example["adjacency"][0], expected)
  assert example["adjacency"][0].sum() == 2 * 78
  targets = example["targets"][0]
  assert set(np.flatnonzero(targets == 0)) == MR_HI  # class 0 = 'Mr. Hi'
  assert targets[0] != targets[33]  # the two leaders
  assert np.bincount(targets).tolist() == [17, 17]


@pytest.mark.parametrize("k", [1, 4, 16])
def test_karate_trains_on_labelled_nodes_and_evaluates_on_the_others(k):
  task = karate(labelled_per_class=k, seed=3)
  train = task.train_batch(0, 2, seed=0)
  labelled = train["target_mask"][0]
  targets = train["targets"][0]
  assert [int(labelled[targets == c].sum()) for c in (0, 1)] == [k, k]
  batches = list(task.eval_batches(4))
  assert len(batches) == 1
  check_batch(batches[0], task.info, 4)
  scored = batches[0]["target_mask"]
  assert not scored[1:].any()  # the padding rows score nothing
  assert not (scored[0] & labelled).any() and (scored[0] | labelled).all()
  assert scored.sum() == 34 - 2 * k
  np.testing.assert_array_equal(batches[0]["targets"][0], targets)


def test_karate_labelled_choice_follows_the_data_seed():
  masks = {s: karate(seed=s).train_batch(0, 1, seed=0)["target_mask"][0] for s in (0, 1)}
  again = karate(seed=0).train_batch(5, 1, seed=9)["target_mask"][0]  # any step, any order seed
  np.testing.assert_array_equal(masks[0], again)
  assert not np.array_equal(masks[0], masks[1])


def test_karate_structural_features_are_standardised_and_match_the_graph():
  x = karate(features="structural").train_batch(0, 1, seed=0)
  inputs, adjacency = x["inputs"][0], x["adjacency"][0]
  np.testing.assert_allclose(inputs.mean(0), 0, atol=1e-5)
  np.testing.assert_allclose(inputs.std(0), 1, atol=1e-4)
  degree = adjacency.sum(1).astype(np.float64)  # from the batch, not from networkx
  np.testing.assert_allclose(inputs[:, 0], (degree - degree.mean()) / degree.std(), atol=1e-5)
  triangles = np.diag(np.linalg.matrix_power(adjacency.astype(np.int64), 3)) / 2
  np.testing.assert_allclose(inputs[:, 7], (triangles - triangles.mean()) / triangles.std(),
                             atol=1e-5)
  assert inputs[:, 0].argmax() == 33  # the Officer's hub, 17 friends


# --------------------------------------------------------------------------- graph_property

def bfs_connected(adjacency, n):
  """Connectivity by breadth-first search over the first n rows of a 0/1 matrix."""
  seen, frontier = {0}, [0]
  while frontier:
    frontier = [j for i in frontier for j in np.flatnonzero(adjacency[i, :n]) if j not in seen]
    seen.update(frontier)
  return len(seen) == n


def has_triangle(adjacency):
  a = adjacency.astype(np.int64)
  return np.trace(a @ a @ a) > 0  # closed walks of length 3


@pytest.mark.parametrize("prop,source", [("connected", "atlas"), ("triangle", "atlas"),
                                         ("connected", "random"), ("triangle", "both")])
def test_graph_labels_match_an_independent_computation(prop, source):
  task = graph_property(property=prop, source=source, num_random=200, balance=False)
  data = both_splits(task)
  check_adjacency(data["adjacency"], data["mask"])
  n = data["mask"].sum(1)
  if prop == "connected":
    expected = [bfs_connected(a, k) for a, k in zip(data["adjacency"], n)]
  else:
    expected = [has_triangle(a) for a in data["adjacency"]]
  np.testing.assert_array_equal(data["targets"], np.array(expected, int))
  assert 0 < data["targets"].mean() < 1


@pytest.mark.parametrize("source,max_length,sizes", [("atlas", 7, (1, 7)), ("random", 12, (5, 12)),
                                                     ("both", 12, (1, 12))])
def test_graph_property_batches_follow_the_contract(source, max_length, sizes):
  task = graph_property(source=source, min_nodes=5, max_nodes=12, num_random=300,
                        balance=False)  # balancing may drop the one graph of 1 node
  i = task.info
  assert (i.input_kind, i.output_kind, i.num_classes, i.max_length) == (
      "graph_nodes", "per_sequence", 2, max_length)
  assert i.train_size == len(task.train["targets"])
  batch = task.train_batch(2, 32, seed=0)
  check_batch(batch, i, 32)
  n = both_splits(task)["mask"].sum(1)
  assert (n.min(), n.max()) == sizes
  eval_batches = list(task.eval_batches(64))
  for b in eval_batches:
    check_batch(b, i, 64)
  assert sum(b["target_mask"].sum() for b in eval_batches) == len(task.evaluation["targets"])


def test_atlas_holds_every_atlas_graph_once_split_without_overlap():
  task = graph_property(balance=False)
  expected = collections.Counter(
      (nx.to_numpy_array(g, nodelist=sorted(g), weight=None) > 0).tobytes()
      for g in nx.graph_atlas_g() if len(g))
  def keys(split):
    return collections.Counter(a[:n, :n].tobytes() for a, n in zip(split["adjacency"],
                                                                    split["mask"].sum(1)))
  train, evaluation = keys(task.train), keys(task.evaluation)
  assert sum(expected.values()) == 1252 and train + evaluation == expected
  assert not set(train) & set(evaluation)


def test_adjacency_matrix_drops_self_loops_and_weights_and_pads():
  g = nx.Graph([(0, 1, {"weight": 5}), (1, 2), (2, 2)])
  a = adjacency_matrix(g, 5)
  expected = np.zeros((5, 5), bool)
  expected[[0, 1, 1, 2], [1, 0, 2, 1]] = True
  np.testing.assert_array_equal(a, expected)
  with pytest.raises(ValueError, match="3 nodes does not fit max_nodes=2"):
    adjacency_matrix(g, 2)


@pytest.mark.parametrize("features", ["constant", "degree"])
def test_node_features_come_from_the_graph_not_the_label(features):
  task = graph_property(features=features)
  data = both_splits(task)
  mask, x = data["mask"], data["inputs"]
  if features == "constant":
    assert task.info.input_size == 1
    np.testing.assert_array_equal(x[..., 0], mask)
  else:
    assert task.info.input_size == 7
    degree = data["adjacency"].sum(-1)
    np.testing.assert_array_equal(x.argmax(-1)[mask], degree[mask])
    np.testing.assert_array_equal(x.sum(-1), mask)  # one-hot on nodes, zero on padding


@pytest.mark.parametrize("prop,minority", [("connected", 256), ("triangle", 172)])
def test_class_balance(prop, minority):
  raw = graph_property(property=prop, balance=False)
  positive = 1 - minority / 1252  # 79.6 % connected, 86.3 % with a triangle
  for split in (raw.train, raw.evaluation):  # the atlas's own balance, kept by the split
    assert abs(split["targets"].mean() - positive) < 0.005
  balanced = graph_property(property=prop)
  assert len(balanced.train["targets"]) + len(balanced.evaluation["targets"]) == 2 * minority
  for split in (balanced.train, balanced.evaluation):
    assert split["targets"].mean() == 0.5
  assert "50.0 %" in balanced.summary()


def test_graph_property_is_deterministic_in_its_seeds():
  a, b = graph_property(source="both", num_random=100), graph_property(source="both",
                                                                      num_random=100)
  for key in a.train:
    np.testing.assert_array_equal(a.train_batch(4, 16, seed=1)[key],
                                  b.train_batch(4, 16, seed=1)[key])
    np.testing.assert_array_equal(a.evaluation[key], b.evaluation[key])
  assert not np.array_equal(a.train_batch(4, 16, seed=1)["adjacency"],
                            a.train_batch(4, 16, seed=2)["adjacency"])
  other = graph_property(source="both", num_random=100, seed=1)  # another split and graphs
  assert not np.array_equal(a.evaluation["adjacency"][:50], other.evaluation["adjacency"][:50])
  r0, r1 = (graph_property(source="random", num_random=100, seed=s, balance=False)
            for s in (0, 1))
  assert not np.array_equal(np.sort(both_splits(r0)["mask"].sum(1)),
                            np.sort(both_splits(r1)["mask"].sum(1)))


# ---------------------------------------------------------------------- rendering, errors

def test_render_writes_a_png_per_example(tmp_path):
  for task in (karate(), graph_property()):
    batch = next(iter(task.eval_batches(2)))
    paths = {task.render({k: v[0] for k, v in batch.items()}, tmp_path)}
    if task.info.output_kind == "per_sequence":
      paths.add(task.render({k: v[1] for k, v in batch.items()}, tmp_path))
      assert len(paths) == 2
    for path in paths:
      assert path.startswith(str(tmp_path)) and path.endswith(".png")
      with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("build,message", [
    (lambda: karate(features="spectral"),
     r"data.features='spectral' is not valid; choose from \('identity', 'structural'\)"),
    (lambda: karate(labelled_per_class=17), r"labelled_per_class=17 must be an int in \[1, 16\]"),
    (lambda: karate(labelled_per_class=0), r"labelled_per_class=0 must be an int in \[1, 16\]"),
    (lambda: graph_property(property="planar"),
     r"data.property='planar' is not valid; choose from \('connected', 'triangle'\)"),
    (lambda: graph_property(source="web"),
     r"data.source='web' is not valid; choose from \('atlas', 'random', 'both'\)"),
    (lambda: graph_property(features="onehot"),
     r"data.features='onehot' is not valid; choose from \('constant', 'degree'\)"),
    (lambda: graph_property(balance="yes"),
     r"data.balance='yes' is not valid; choose from \(True, False\)"),
    (lambda: graph_property(eval_fraction=1.5), r"data.eval_fraction=1.5 must be in \(0, 1\)"),
    (lambda: graph_property(source="random", edge_prob=1.5), r"data.edge_prob=1.5 must be in"),
    (lambda: graph_property(source="random", min_nodes=9, max_nodes=4),
     "need 1 <= data.min_nodes <= data.max_nodes; got 9, 4"),
    (lambda: graph_property(source="random", edge_prob=0.0, num_random=20),
     r"data.property='connected' gives \[20, 0\] graphs per class"),
])
def test_bad_settings_are_named(build, message):
  with pytest.raises(ValueError, match=message):
    build()
