"""lra2020: ListOps' validation split (a held-out generator seed), the reproduction's
verdict rule, its config tiers and the speed/memory step it times."""
import jax
import numpy as np
import pytest

from attn_research.data import get_task, task_defaults, task_smoke
from attn_research.reproduce import lra2020, lra2020_speed
from tests.conftest import make_config


def listops_cfg(tmp_path, **changes):
  return {**task_defaults("listops"), **task_smoke("listops"), "dir": str(tmp_path), **changes}


def rows(split):
  return {tuple(x) for x in np.asarray(split["inputs"]).tolist()}


def test_listops_validation_is_a_held_out_stream_and_test_is_unchanged(tmp_path):
  test_run = get_task(listops_cfg(tmp_path, num_validation=0))
  val_run = get_task(listops_cfg(tmp_path, num_validation=16, eval_split="validation"))
  test_again = get_task(listops_cfg(tmp_path, num_validation=16, eval_split="test"))
  # Adding a validation set leaves train and test as they were (the same first stream).
  np.testing.assert_array_equal(test_run.train["inputs"], val_run.train["inputs"])
  np.testing.assert_array_equal(test_run.evaluation["inputs"], test_again.evaluation["inputs"])
  np.testing.assert_array_equal(test_run.evaluation["targets"], test_again.evaluation["targets"])
  # The validation expressions are other expressions than the test ones.
  assert len(val_run.evaluation["targets"]) == 16
  assert not rows(val_run.evaluation) & rows(test_run.evaluation)
  assert len(rows(val_run.evaluation) & rows(val_run.train)) <= 2  # short smoke trees may repeat
  # One cache file holds all three splits: switching eval_split regenerates nothing.
  assert len(list(tmp_path.glob("listops-*.npz"))) == 2  # without and with validation


def test_listops_validation_settings_are_checked(tmp_path):
  with pytest.raises(ValueError, match="data.eval_split='dev' is not valid; choose from"):
    get_task(listops_cfg(tmp_path, eval_split="dev"))
  with pytest.raises(ValueError, match="needs data.num_validation > 0"):
    get_task(listops_cfg(tmp_path, num_validation=0, eval_split="validation"))
  with pytest.raises(ValueError, match="data.num_validation=-1"):
    get_task(listops_cfg(tmp_path, num_validation=-1))


FAST = {"linear": 3.0, "performer": 2.0, "local": 1.5, "softmax": 1.0}


def test_verdict_supported_only_when_faster_less_accurate_and_softmax_learns():
  acc = {"softmax": [0.40, 0.42, 0.41], "linear": [0.30, 0.31, 0.29],
         "performer": [0.33, 0.32, 0.34], "local": [0.25, 0.27, 0.26]}
  assert lra2020.verdict(acc, 0.18, FAST)["label"] == "supported"
  # One kernel not faster than softmax at the longest length: not supported.
  assert lra2020.verdict(acc, 0.18, dict(FAST, local=0.9))["label"] == "not supported"
  assert lra2020.verdict(acc, 0.18, dict(FAST, local=None))["label"] == "not supported"
  # Softmax at the majority rate has not learned: the accuracy half cannot be judged.
  assert lra2020.verdict(acc, 0.41, FAST)["label"] == "inconclusive"
  assert "majority" in lra2020.verdict(acc, 0.41, FAST)["reason"]
  # A kernel as accurate as softmax on average: not supported, from plateaued runs only.
  level = dict(acc, performer=[0.41, 0.40, 0.43])
  flat = {k: [True] * 3 for k in acc}
  assert lra2020.verdict(level, 0.18, FAST, flat)["label"] == "not supported"
  rising = dict(flat, softmax=[True, True, False])
  decided = lra2020.verdict(level, 0.18, FAST, rising)
  assert decided["label"] == "inconclusive" and "softmax" in decided["reason"]
  assert lra2020.verdict(level, 0.18, FAST)["label"] == "inconclusive"  # plateaus unknown
  # Slower kernels refute the speed half whatever the training did.
  assert lra2020.verdict(acc, 0.18, dict(FAST, local=0.9), rising)["label"] == "not supported"
  # Below softmax on average, but within the noise of three seeds: inconclusive.
  noisy = dict(acc, linear=[0.30, 0.45, 0.40])
  decided = lra2020.verdict(noisy, 0.18, FAST)
  assert decided["label"] == "inconclusive"
  assert decided["paired"]["linear"]["p_one_sided"] > 0.05 and decided["faster"]["linear"]
  # A kernel that did not run (the smoke tier): inconclusive.
  assert lra2020.verdict({"softmax": acc["softmax"]}, 0.18, FAST)["label"] == "inconclusive"


def test_config_tiers_follow_lra_and_the_protocol():
  tiny = make_config("experiments/repro/lra2020.py")
  full = make_config("experiments/repro/lra2020.py:full")
  for config, seeds in ((tiny, 3), (full, 5)):
    assert config.data.eval_split == "validation" and config.data.num_validation > 0
    assert config.train.keep_best == "accuracy" and config.num_seeds == seeds
    widths = {(m.d_model, m.num_layers, m.num_heads, m.pooling, m.position)
              for m in config.models.values()}
    assert len(widths) == 1  # one architecture for every kernel
    assert widths.pop()[3:] == ("cls", "sinusoidal:scale_tokens")  # LRA's read-out and scale
  # Every kernel that decides the claim is trained at both tiers; Linformer only at full.
  assert set(tiny.models) == {"softmax", "linear", "performer", "local"}
  assert set(full.models) == {"softmax", "linear", "performer", "local", "linformer"}
  assert (tiny.data.min_length, tiny.data.max_length) == (256, 512)
  assert (full.data.min_length, full.data.max_length, full.data.num_train) == (500, 2000, 96_000)
  assert full.data.max_depth == 10 and full.data.max_args == 10
  with pytest.raises(ValueError, match="listops"):
    make_config("experiments/repro/lra2020.py:listops")


def test_speed_variants_and_relative_rates():
  models = {"softmax": dict(attention="softmax"), "linear": dict(attention="linear")}
  variants = lra2020_speed.speed_models(models)
  assert variants["softmax"]["attention_impl"] == "xla"
  assert variants[lra2020_speed.CHUNKED]["attention_impl"] == "chunked"
  assert "attention_impl" not in variants["linear"]
  speed = {"kernels": {
      "softmax": dict(examples_per_second=[2.0, 1.0], bytes=[100, 400]),
      "linear": dict(examples_per_second=[3.0, None], bytes=[50, 100])}}
  rel = lra2020_speed.relative(speed)
  assert rel["softmax"] == dict(speed=[1.0, 1.0], memory=[1.0, 1.0])
  assert rel["linear"] == dict(speed=[1.5, None], memory=[0.5, 0.25])


def test_grad_step_is_the_models_parameter_gradient():
  model = dict(make_config("experiments/repro/lra2020.py:smoke").models["linear"])
  fn, args = lra2020_speed._grad_step(model, 32, 2)
  assert args[0].shape == (2, 32) and args[1].all()
  grads = jax.tree.leaves(jax.jit(fn)(*args))
  params = args[3:]
  assert len(grads) == len(params)
  assert all(g.shape == p.shape and np.isfinite(np.asarray(g)).all()
             for g, p in zip(grads, params))
  assert any(float(np.abs(np.asarray(g)).max()) > 0 for g in grads)


def test_root_operator_rule_answers_each_operators_commonest_value():
  # Root operators are token ids 11..14 in the first position; labels per operator.
  train = {"inputs": np.array([[11, 1], [11, 2], [11, 3], [12, 1], [12, 1]]),
           "targets": np.array([0, 0, 5, 9, 9])}
  test = {"inputs": np.array([[11, 4], [12, 4], [12, 4], [13, 4]]),
          "targets": np.array([0, 9, 8, 9])}
  # 11 -> 0 (right), 12 -> 9 (right, wrong), 13 unseen -> overall commonest (0 or 9: 0)
  assert lra2020.root_operator_rule(train, test) == 0.5
