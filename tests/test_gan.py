"""The GAN: spectral normalisation as a function of the raw weight, the Fréchet distance,
bad input refused, training through the one loop (finite losses, parameters that move,
exact resume), data parallelism and a learning check (slow)."""
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from attn_research.data import get_task
from attn_research.data.base import TaskInfo
from attn_research.measure import feature_net
from attn_research.measure.frechet import frechet_distance, frechet_from_sums, moment_sums
from attn_research.models import get_model, model_defaults
from attn_research.models.sagan import FeatureMapAttention
from attn_research.objectives import get_objective
from attn_research.nn.spectral_norm import SNConv, SNLinear, check_kernel_shape, spectral_normalize
from attn_research.train import writer as writer_lib
from attn_research.train.loop import evaluate, initial_state, jit_steps, prepare, run
from tests.conftest import ROOT, make_config

SMOKE = "experiments/sagan.py:smoke"


def read_jsonl(path):
  return [json.loads(line) for line in path.read_text().splitlines()]


# ------------------------------------------------------------------ spectral norm

def test_spectral_norm_keeps_the_raw_kernel_and_normalises_the_used_one():
  layer = SNLinear(12, 7, rngs=nnx.Rngs(0))
  layer.kernel[...] = layer.kernel[...] * 5.0  # sigma well away from 1
  raw = np.array(layer.kernel[...])
  u0 = np.array(layer.u[...])
  x = jnp.ones((2, 12))
  layer(x, train=False)
  np.testing.assert_array_equal(layer.u[...], u0)  # evaluation does not iterate
  for _ in range(30):
    layer(x, train=True)
  np.testing.assert_array_equal(layer.kernel[...], raw)  # never written back
  assert not np.array_equal(layer.u[...], u0)
  used = np.asarray(layer.weight(train=False))
  assert np.linalg.svd(used, compute_uv=False)[0] == pytest.approx(1.0, abs=1e-3)
  assert np.linalg.svd(raw, compute_uv=False)[0] > 2.0
  conv = SNConv(3, 5, 3, rngs=nnx.Rngs(1))
  for _ in range(30):
    conv(jnp.ones((1, 4, 4, 3)), train=True)
  used = np.asarray(conv.weight(train=False)).reshape(-1, 5)
  assert np.linalg.svd(used, compute_uv=False)[0] == pytest.approx(1.0, abs=1e-3)


def test_spectral_norm_refuses_a_1d_parameter():
  with pytest.raises(ValueError, match=r"shape \(7,\).*1-D parameter"):
    check_kernel_shape((7,), "bias")
  with pytest.raises(ValueError, match=r"rank >= 2"):
    spectral_normalize(jnp.ones(7), jnp.ones(7), update=True)


def test_attention_block_pools_keys_and_values():
  block = FeatureMapAttention(16, 8, "reference", pool=True, spectral=True, rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 16))
  weights = block.attention_weights(x)
  assert weights.shape == (2, 64, 16)  # 8x8 queries, 4x4 pooled keys
  np.testing.assert_allclose(np.asarray(weights.sum(-1)), 1.0, rtol=1e-5)
  np.testing.assert_array_equal(block(x), x)  # gamma starts at 0: the identity
  block.gamma[...] = jnp.float32(0.5)
  assert not np.allclose(block(x), x)


# ------------------------------------------------------------------ Fréchet distance

def test_frechet_of_gaussians_matches_the_closed_form():
  rng = np.random.default_rng(0)
  a = rng.standard_normal((20000, 4))
  b = rng.standard_normal((20000, 4)) * 2.0 + np.array([1.0, 0, 0, 0])
  # |mu|^2 + tr(I + 4 I - 2 * 2 I) = 1 + 4
  assert frechet_distance(a, b) == pytest.approx(5.0, rel=0.05)
  assert frechet_distance(a, rng.standard_normal((20000, 4))) < 0.01
  # sums add up over batches: two halves give the whole set's distance
  halves = [moment_sums(jnp.asarray(a[i::2])) for i in range(2)]
  whole = jax.tree.map(jnp.add, *halves)
  assert frechet_from_sums(whole, moment_sums(jnp.asarray(b))) == pytest.approx(
      frechet_distance(a, b), rel=1e-4)


@pytest.fixture(scope="module")
def digits_features():
  """A feature net trained briefly on small rendered digits, and the task."""
  config = make_config(SMOKE, data__num_train=1000, data__num_eval=500, data__image_size=8,
                       data__patch_size=2)
  task = get_task(config.data)
  params, acc = feature_net.load_or_train(config.data, task,
                                          dict(width=8, features=32, steps=300, batch_size=64))
  return task, params, acc


def test_frechet_distance_orders_real_blurred_and_noise(digits_features):
  from scipy import ndimage
  task, params, acc = digits_features
  assert acc > 0.5  # the classifier learned the digits (chance 0.1)
  train, _ = feature_net.task_images(task, "train")
  held_out, _ = feature_net.task_images(task, "eval")
  feats = lambda x: np.asarray(feature_net.apply(params, jnp.asarray(x, jnp.float32))[0])  # noqa: E731
  real = feats(train)
  base = frechet_distance(real, feats(held_out))
  noise = frechet_distance(real, feats(np.random.default_rng(0).uniform(size=held_out.shape)))
  assert base < 0.05 * noise, (base, noise)
  rng = np.random.default_rng(1)
  blurred = [frechet_distance(real, feats(ndimage.gaussian_filter(held_out, (0, s, s, 0))))
             for s in (0.5, 1.0, 2.0)]
  noisy = [frechet_distance(real, feats(np.clip(held_out + s * rng.standard_normal(
      held_out.shape), 0, 1))) for s in (0.1, 0.3, 0.6)]
  for curve in (blurred, noisy):
    assert base < curve[0] < curve[1] < curve[2], (base, curve)


# ------------------------------------------------------------------ bad input

def image_info(**changes):
  info = dict(input_kind="patches", input_size=16, output_kind="per_sequence",
              num_classes=10, max_length=16, image_shape=(16, 16, 1))
  return TaskInfo(**dict(info, **changes))


def gan_cfg(**settings):
  return ml_collections.ConfigDict(dict(model_defaults("gan"), name="gan", width=4,
                                        noise_dim=8, **settings))


@pytest.mark.parametrize("info, settings, message", [
    (image_info(num_classes=1), dict(conditional=True), "needs a labelled task.*num_classes=1"),
    (image_info(input_kind="frames", input_size=1, max_length=40, image_shape=None), {},
     "has no image shape"),
    (image_info(input_size=4, max_length=36, image_shape=(12, 12, 1)), {},
     r"image shape is \(12, 12, 1\)"),
    (image_info(), dict(attention_res=6), r"attention_res=6 .*valid: \[0, 4, 8, 16\]"),
])
def test_bad_gan_models_are_refused(info, settings, message):
  with pytest.raises(ValueError, match=message):
    nnx.eval_shape(lambda: get_model(gan_cfg(**settings), info))


@pytest.mark.parametrize("overrides, message", [
    (dict(gan__n_dis=0), "gan.n_dis=0 must be an int >= 1"),
    (dict(gan__n_dis=3), "train.batch_size=8 must be a multiple of gan.n_dis=3"),
    (dict(train__optimizer="sgd"), "train.optimizer='sgd'"),
    (dict(train__frozen="generator/.*"), "train.frozen='generator/.*'"),
    (dict(model__name="cnn2d"), "needs model.name='gan'"),
])
def test_bad_gan_training_is_refused_before_compiling(overrides, message):
  """The objective refuses these before it trains its feature net or anything compiles
  (the model is abstract here: nothing is computed)."""
  config = make_config(SMOKE, **overrides)
  info = get_task(config.data).info
  model = nnx.eval_shape(lambda: get_model(config.model, info))
  with pytest.raises(ValueError, match=message):
    get_objective(config, model)


# ------------------------------------------------------------------ training

RESUME = dict(train__num_steps=4, train__checkpoint_every=2, train__eval_every=2,
              model__attention_res=8)


@pytest.mark.slow  # ~20 s of compiling; experiments/sagan.py:smoke trains a GAN in the fast tier
def test_conditional_gan_trains(tmp_path):
  """Conditional BN in G, a projection D: a few steps through the loop."""
  summary = run(make_config(SMOKE, **RESUME, model__conditional=True), tmp_path, progress=False)
  rows = [r for r in read_jsonl(tmp_path / "metrics.jsonl") if r["split"] == "train"]
  for r in rows:
    assert all(np.isfinite(r[k]) for k in ("d_loss", "g_loss", "d_grad_norm", "g_grad_norm"))
  # step 1 runs at learning rate 0 (warm-up); later steps move both networks
  g_norms, d_norms = [r["g_param_norm"] for r in rows], [r["d_param_norm"] for r in rows]
  assert abs(g_norms[-1] - g_norms[0]) > 1e-6 and abs(d_norms[-1] - d_norms[0]) > 1e-6
  assert np.isfinite(summary["final_eval"]["fd"]) and summary["final_eval"]["fd"] > 0
  assert summary["feature_net_eval_accuracy"] is not None
  assert 0 <= summary["final_eval"]["generated_accuracy"] <= 1  # conditional models only


@pytest.mark.slow  # three runs of the loop
def test_gan_resumes_exactly(tmp_path, monkeypatch):
  settings = RESUME
  straight = run(make_config(SMOKE, **settings), tmp_path / "straight", progress=False)
  # interrupted after step 3 (its checkpoint is saved on Ctrl-C), then resumed
  real_write = writer_lib.MetricWriter.write
  fired = []

  def write(self, s, split, metrics):
    real_write(self, s, split, metrics)
    if s == 3 and split == "train" and not fired:
      fired.append(s)
      raise KeyboardInterrupt

  monkeypatch.setattr(writer_lib.MetricWriter, "write", write)
  with pytest.raises(KeyboardInterrupt):
    run(make_config(SMOKE, **settings), tmp_path / "killed", progress=False)
  resumed = run(make_config(SMOKE, **settings), tmp_path / "killed", progress=False)
  assert resumed["resumed_from_step"] == 3
  assert resumed["final_train"] == straight["final_train"]
  assert resumed["final_eval"] == straight["final_eval"]
  assert (read_jsonl(tmp_path / "killed" / "metrics.jsonl")
          == read_jsonl(tmp_path / "straight" / "metrics.jsonl"))


@pytest.mark.slow  # ~1 minute on 2 cores: 300 steps of a small GAN
def test_generator_learns(tmp_path):
  """The Fréchet distance of the trained G is well below that of the untrained one."""
  config = make_config(SMOKE, data__num_train=2000, data__num_eval=500, data__image_size=8,
                       data__patch_size=2, model__width=8, model__noise_dim=16,
                       gan__feature_steps=200, gan__feature_width=8, gan__feature_dim=32,
                       train__num_steps=300, train__batch_size=32, train__eval_batch_size=250,
                       train__eval_every=300, train__checkpoint_every=300,
                       train__log_every=50)
  p = prepare(config, tmp_path / "run")
  _, eval_step = jit_steps(p)
  untrained = evaluate(p, eval_step, initial_state(p))["fd"]
  trained = run(config, tmp_path / "run", progress=False)["final_eval"]["fd"]
  assert trained < 0.5 * untrained, (trained, untrained)


SCRIPT = f"""
import json, sys
sys.path.insert(0, {str(ROOT)!r})
import jax
from tests.conftest import make_config
from attn_research.train.loop import run
assert jax.device_count() == 2, jax.devices()
print(json.dumps(run(make_config({SMOKE!r}, gan__n_dis=2), sys.argv[1], progress=False)))
"""


@pytest.mark.slow  # a subprocess with 2 forced CPU devices
def test_two_devices_match_one(tmp_path):
  single = run(make_config(SMOKE, gan__n_dis=2), tmp_path / "one", progress=False)
  flags = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
  env = dict(os.environ, XLA_FLAGS=flags.strip(), JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "two")], env=env,
                        capture_output=True, text=True, timeout=600, cwd=ROOT)
  assert proc.returncode == 0, proc.stderr[-3000:]
  multi = json.loads(proc.stdout.strip().splitlines()[-1])
  assert multi["device"]["count"] == 2
  for split in ("final_train", "final_eval"):
    for key in ("d_loss", "g_loss", "fd"):
      if key in single[split]:
        assert multi[split][key] == pytest.approx(single[split][key], rel=1e-4, abs=1e-5), (
            split, key)


def test_reading_a_gan_run_back_as_one_model_is_refused(tmp_path):
  """init_from and load_trained read a run's parameters as one model's; a GAN's state is
  two networks, so both refuse it by name (from the files alone, nothing compiled)."""
  from attn_research.train import init_from
  from attn_research.train.restore import load_trained
  from attn_research.workdir import write_json
  source = tmp_path / "gan_run"
  (source / "checkpoints" / "3").mkdir(parents=True)
  write_json(source / "config.json", make_config("experiments/sagan.py:smoke").to_dict())
  with pytest.raises(ValueError, match="objective 'gan' trains several networks"):
    load_trained(source)
  config = make_config("experiments/sagan.py:smoke", init_from=str(source))
  with pytest.raises(ValueError, match=r"\(the source\): objective 'gan' trains several"):
    init_from.check(config)
