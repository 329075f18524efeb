"""Attention maps: rollout and mean attention distance by hand, weights from a model equal
its layer's own weights, and --config.report.attention_maps writes the pictures."""
import json

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attn_research.models.inspect import attention_layers, attention_weights
from attn_research.report import attention_maps as am
from tests.conftest import ROOT, make_config


def test_rollout_by_hand():
  # One layer, one head: A'= (A + I) / 2 with rows renormalised (they already sum to 1).
  a = np.array([[0.0, 1.0], [1.0, 0.0]])
  np.testing.assert_allclose(am.rollout(a[None, None]), [[0.5, 0.5], [0.5, 0.5]])
  # Two layers compose by matrix product, later layer on the left.
  b = np.array([[1.0, 0.0], [0.25, 0.75]])
  expected = (0.5 * b + 0.5 * np.eye(2)) @ (0.5 * a + 0.5 * np.eye(2))
  np.testing.assert_allclose(am.rollout(np.stack([a[None], b[None]])), expected)
  # Padding is dropped before composing.
  padded = np.zeros((1, 1, 3, 3))
  padded[0, 0, :2, :2] = a
  np.testing.assert_allclose(am.rollout(padded, [True, True, False]), [[0.5, 0.5], [0.5, 0.5]])


def test_mean_attention_distance_by_hand():
  t = 6
  w = np.zeros((2, 1, t, t))
  w[0, 0] = np.eye(t)                                  # layer 0 attends itself: distance 0
  w[1, 0, np.arange(t), (np.arange(t) + 2) % t] = 1.0  # layer 1 looks 2 ahead (wrapping)
  d = am.mean_attention_distance(w)
  assert d[0, 0] == 0.0
  assert d[1, 0] == pytest.approx(np.mean([2, 2, 2, 2, 4, 4]))
  coords = np.array([[0, 0], [0, 3], [4, 0], [4, 3], [0, 0], [0, 0]], float)
  w2 = np.zeros((1, 1, t, t))
  w2[0, 0, :, 3] = 1.0  # every query attends pixel (4, 3)
  assert am.mean_attention_distance(w2, [True] * 4 + [False] * 2, coords)[0, 0] == \
      pytest.approx(np.mean([5.0, 4.0, 3.0, 0.0]))


@pytest.mark.parametrize("attention", ["softmax", "linear"])
def test_model_weights_are_each_layers_own(attention):
  from attn_research.data import get_task
  from attn_research.models import get_model
  config = make_config("experiments/base.py:smoke", model__attention=attention,
                       model__num_layers=2)
  task = get_task(config.data)
  model = get_model(config.model, task.info, rngs=nnx.Rngs(0))
  batch = {k: np.asarray(v[:2]) for k, v in task.evaluation.items()}
  weights = attention_weights(model, batch)
  assert len(weights) == 2 and weights[0].shape == (2, 2, 16, 16)
  np.testing.assert_allclose(weights[1].sum(-1), 1.0, atol=1e-5)
  assert not any(layer.record_weights for layer in attention_layers(model))
  # The first layer's weights, recomputed from its own input through return_weights.
  x = model.position(model.embed(jnp.asarray(batch["inputs"])))
  block = model.blocks[0]
  _, direct = block.attn(block.ln_attn(x), jnp.asarray(batch["mask"]), return_weights=True)
  np.testing.assert_allclose(weights[0], np.asarray(direct), atol=1e-6)
  assert np.abs(weights[0] - weights[1]).max() > 1e-3  # two layers, two different maps


@pytest.mark.slow  # a CLI run, then the maps and their PNGs: ~15 s
def test_run_with_attention_maps_writes_them(tmp_path):
  import subprocess
  import sys
  workdir = tmp_path / "run"
  cmd = [sys.executable, "-m", "attn_research.main", "--config",
         str(ROOT / "experiments/base.py:smoke"), "--workdir", str(workdir), "--no-progress",
         "--config.report.attention_maps=True"]
  subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True)
  data = np.load(workdir / "attention_maps.npz")
  assert data["weights"].shape == (1, 2, 16, 16)
  for name in ("attention_heads_layer0.png", "attention_rollout.png",
               "attention_distance.png"):
    assert (workdir / name).stat().st_size > 1000
  assert json.loads((workdir / "config.json").read_text())["report"]["attention_maps"]


def test_first_eval_example_works_for_generated_tasks():
  from attn_research.data import get_task
  from attn_research.modes.attention_maps import first_eval_example
  task = get_task(make_config("experiments/copy.py:smoke").data)  # generated: no stored arrays
  batch = first_eval_example(task)
  assert batch["inputs"].shape[0] == 1 and batch["mask"][0].any()
