"""The gat_karate reproduction's pieces: the CSBM generator (homophily as asked, shapes,
splits, determinism), karate's validation split, the GAT / GCN / MLP models of
models/gat.py, the adam_l2 optimizer, the verdict rule, and vmapped runs against the loop."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from attn_research.data import get_task, task_defaults
from attn_research.data.csbm import edge_homophily
from attn_research.models import get_model, model_defaults
from attn_research.reproduce.gat_karate import verdict
from attn_research.reproduce.protocol import paired_test


def csbm(**settings):
  base = dict(task_defaults("csbm"), num_nodes=600, train_per_class=10, num_validation=100,
              num_test=200)
  return get_task(dict(base, **settings))


# ------------------------------------------------------------------------------------ CSBM

@pytest.mark.parametrize("h", [0.2, 0.6, 0.9])
def test_csbm_edge_homophily_and_degree_are_what_was_asked(h):
  for seed in (0, 1):
    batch = csbm(homophily=h, seed=seed, mean_degree=8.0).train_batch(0, 1, seed=0)
    adjacency, labels = batch["adjacency"][0], batch["targets"][0]
    # 2,400 expected edges: the share of same-class edges is binomial, std < 0.01.
    assert abs(edge_homophily(adjacency, labels) - h) < 0.04, (h, seed)
    assert abs(adjacency.sum(1).mean() - 8.0) < 0.6
    assert (adjacency == adjacency.T).all() and not adjacency.diagonal().any()


def test_csbm_shapes_splits_and_features():
  task = csbm(feature_dim=16)
  i = task.info
  assert (i.input_kind, i.input_size, i.output_kind, i.num_classes, i.max_length,
          i.train_size) == ("graph_nodes", 16, "per_vector", 5, 600, 1)
  train = task.train_batch(3, 1, seed=0)
  assert train["inputs"].shape == (1, 600, 16) and train["adjacency"].shape == (1, 600, 600)
  labels = train["targets"][0]
  assert np.bincount(labels).tolist() == [120] * 5
  assert np.bincount(labels[train["target_mask"][0]]).tolist() == [10] * 5
  val = next(csbm(feature_dim=16, eval_split="validation").eval_batches(1))["target_mask"][0]
  test = next(csbm(feature_dim=16, eval_split="test").eval_batches(1))["target_mask"][0]
  assert (val.sum(), test.sum()) == (100, 200)
  assert not (val & test).any() and not ((val | test) & train["target_mask"][0]).any()
  # The class means carry the signal: each class's mean feature is nearest its own class.
  x = train["inputs"][0]
  means = np.stack([x[labels == c].mean(0) for c in range(5)])
  nearest = ((x[:, None] - means[None]) ** 2).sum(-1).argmin(1)
  assert (nearest == labels).mean() > 0.4  # chance 0.2


def test_csbm_is_a_pure_function_of_its_settings_and_seed():
  a, b = csbm(seed=4).train_batch(0, 1, 0), csbm(seed=4).train_batch(7, 1, 3)
  for k in a:
    np.testing.assert_array_equal(a[k], b[k])
  c = csbm(seed=5).train_batch(0, 1, 0)
  assert not np.array_equal(a["adjacency"], c["adjacency"])
  assert not np.array_equal(a["inputs"], c["inputs"])


@pytest.mark.parametrize("settings,match", [
    (dict(num_classes=7), "must be >= 2 and divide data.num_nodes=600"),
    (dict(homophily=1.5), r"data.homophily=1.5 must be in \[0, 1\]"),
    (dict(num_test=600), "do not fit data.num_nodes=600"),
    (dict(mean_degree=200.0, homophily=1.0), "needs an edge probability above 1"),
    (dict(eval_split="train"), "data.eval_split"),
])
def test_csbm_refuses_bad_settings(settings, match):
  with pytest.raises(ValueError, match=match):
    csbm(**settings)


# ---------------------------------------------------------------------------------- karate

def test_karate_validation_split_is_carved_from_the_unlabelled_members():
  base = dict(task_defaults("karate"), validation_per_class=3, seed=2)
  val = get_task(dict(base, eval_split="validation"))
  test = get_task(dict(base, eval_split="test"))
  train_mask = val.train_batch(0, 1, 0)["target_mask"][0]
  v = next(val.eval_batches(1))["target_mask"][0]
  t = next(test.eval_batches(1))["target_mask"][0]
  targets = val.evaluation["targets"][0]
  assert [int(v[targets == c].sum()) for c in (0, 1)] == [3, 3]
  assert (train_mask.sum(), v.sum(), t.sum()) == (8, 6, 20)
  assert not (train_mask & v).any() and not (v & t).any() and (train_mask | v | t).all()
  # The labelled members are the ones of the old split (validation is drawn after them).
  old = get_task(dict(task_defaults("karate"), seed=2)).train_batch(0, 1, 0)["target_mask"]
  np.testing.assert_array_equal(old[0], train_mask)
  with pytest.raises(ValueError, match="needs data.validation_per_class > 0"):
    get_task(dict(task_defaults("karate"), eval_split="validation"))


# ---------------------------------------------------------------------------------- models

def path_graph(n=6):
  """Nodes 0-1-2-...-(n-1) in a path; features random; one graph."""
  adjacency = np.zeros((1, n, n), bool)
  for i in range(n - 1):
    adjacency[0, i, i + 1] = adjacency[0, i + 1, i] = True
  x = jnp.asarray(np.random.default_rng(0).normal(size=(1, n, 3)), jnp.float32)
  return x, jnp.ones((1, n), bool), jnp.asarray(adjacency)


def graph_model(name, **settings):
  from attn_research.data import TaskInfo
  info = TaskInfo(input_kind="graph_nodes", input_size=3, output_kind="per_vector",
                  num_classes=2, max_length=6)
  return get_model(dict(model_defaults(name), **settings), info)


@pytest.mark.parametrize("name,settings,hops", [
    ("gat", {}, 2), ("gat", dict(score="dot"), 2), ("kipf_gcn", {}, 2),
    ("gat", dict(attend="all"), None), ("node_mlp", {}, 0)])
def test_a_node_sees_exactly_its_receptive_field(name, settings, hops):
  """Two layers: masked models see 2 hops; unmasked attention sees every node; the MLP
  only the node itself."""
  m = graph_model(name, **settings)
  x, mask, adjacency = path_graph()
  base = m(x, mask, train=False, adjacency=adjacency)
  for far in range(1, 6):
    moved = m(x.at[0, far].add(3.0), mask, train=False, adjacency=adjacency)
    changed = not np.allclose(moved[0, 0], base[0, 0], atol=1e-6)
    assert changed == (hops is None or far <= hops), (name, settings, far)


def test_gat_layer_weights_are_a_softmax_over_neighbours_with_gats_score():
  m = graph_model("gat")
  x, mask, adjacency = path_graph()
  layer = m.hidden
  h = layer.proj(x).reshape(1, 6, 8, 8)
  allowed = (adjacency | jnp.eye(6, dtype=bool))[:, None]
  w = np.asarray(layer.weights(h, allowed))
  np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-5)
  assert (w[0, :, 0, 2:] == 0).all()  # node 0 attends only 0 and 1
  e = jax.nn.leaky_relu(jnp.einsum("hd,hd->h", h[0, 0], layer.a_q_HD[...])[:, None]
                        + jnp.einsum("jhd,hd->hj", h[0, :2], layer.a_k_HD[...]), 0.2)
  np.testing.assert_allclose(w[0, :, 0, :2], jax.nn.softmax(e, -1), atol=1e-5)


def test_models_refuse_graph_labels_and_bad_settings():
  from attn_research.data import TaskInfo
  info = TaskInfo(input_kind="graph_nodes", input_size=3, output_kind="per_sequence",
                  num_classes=2, max_length=6)
  with pytest.raises(ValueError, match="labels each node"):
    get_model(dict(model_defaults("gat")), info)
  with pytest.raises(ValueError, match="model.attend"):
    graph_model("gat", attend="some")
  with pytest.raises(ValueError, match="model.dropout"):
    graph_model("kipf_gcn", dropout=1.0)


def test_adam_l2_is_adam_on_the_l2_penalised_gradient():
  import ml_collections
  from attn_research.experiment import TRAIN_DEFAULTS
  from attn_research.objectives.optim import make_optimizer
  tc = ml_collections.ConfigDict(dict(TRAIN_DEFAULTS, optimizer="adam_l2", weight_decay=0.1,
                                      learning_rate=1e-2, schedule="constant",
                                      warmup_steps=0, grad_clip=0.0))
  params = {"w": jnp.array([1.0, -2.0])}
  grads = {"w": jnp.array([0.5, 0.5])}
  tx, _ = make_optimizer(tc)
  got, _ = tx.update(grads, tx.init(params), params)
  ref = optax.adam(1e-2)
  want, _ = ref.update({"w": grads["w"] + 0.1 * params["w"]}, ref.init(params), params)
  np.testing.assert_allclose(got["w"], want["w"], rtol=1e-6)


# --------------------------------------------------------------------------------- verdict

def fake_results(gat, others, mlp, karate_gat, karate_all):
  def t(a, b):
    return paired_test([x - y for x, y in zip(a, b)])
  paired = {"gat-gat_all": t(gat, others), "gat-dot_all": t(gat, others),
            "gat-mlp": t(gat, mlp)}
  return {"csbm": {"homophily": [0.2, 0.9], "paired": {"0.9": paired}},
          "karate": {"paired": {"gat-gat_all": t(karate_gat, karate_all)}}}


def test_verdict_follows_the_criterion():
  good = [0.9, 0.92, 0.88]
  assert verdict(fake_results(good, [0.5, 0.52, 0.5], [0.6, 0.6, 0.6],
                              [0.9] * 5, [0.5, 0.55, 0.5, 0.45, 0.5])) == "supported"
  # Unmasked attention as good as GAT: not supported.
  assert verdict(fake_results(good, good, [0.6] * 3, [0.9] * 5, [0.5] * 5)) == "not supported"
  # GAT clearly below the MLP: not supported.
  assert verdict(fake_results(good, [0.5, 0.52, 0.5], [0.97, 0.98, 0.99], [0.9] * 5,
                              [0.5] * 5)) == "not supported"
  # Karate disagrees: inconclusive.
  assert verdict(fake_results(good, [0.5, 0.52, 0.5], [0.6] * 3, [0.5, 0.6, 0.4, 0.5, 0.5],
                              [0.5, 0.5, 0.5, 0.55, 0.5])) == "inconclusive"


# ------------------------------------------------------------------ vmapped runs = the loop

@pytest.mark.slow  # two compiles of the loop and one vmapped: ~20 s on 2 cores
def test_vmapped_member_is_the_loop_run_of_its_seed(tmp_path):
  """A member of VmappedRuns reaches the loop's best-on-validation step and test score
  for the same config and seed (train.keep_best + protocol.test_eval)."""
  from attn_research.modes.comparison import model_run_config
  from attn_research.reproduce.protocol import test_eval
  from attn_research.reproduce.vmapped import VmappedRuns
  from attn_research.train.loop import prepare, run
  from tests.conftest import make_config
  config = make_config("experiments/repro/gat_karate.py:tiny,smoke",
                       train__num_steps=30, train__eval_every=5, train__log_every=5,
                       train__checkpoint_every=30, data__seed=3, seed=3)
  single = model_run_config(config, "gat")
  member = VmappedRuns(single).run([3], [dict(seed=3)])[0]
  p = prepare(single, tmp_path / "loop")
  summary = run(single, p.workdir, progress=False, prepared=p)
  tested = test_eval(p)
  assert member.best_step == summary["best_eval"]["step"] == tested["step"]
  assert member.best_validation["accuracy"] == pytest.approx(summary["best_eval"]["accuracy"])
  assert member.test["accuracy"] == pytest.approx(tested["accuracy"])
  assert member.test["loss"] == pytest.approx(tested["loss"], rel=1e-4)


def test_gat_skip_adds_one_linear_map_per_layer():
  from attn_research.models import count_params
  plain, skip = graph_model("gat"), graph_model("gat", skip=True)
  assert count_params(skip) - count_params(plain) == 3 * 64 + 64 * 2  # F x 64, 64 x classes
  with pytest.raises(ValueError, match="model.skip"):
    graph_model("gat", skip="yes")
