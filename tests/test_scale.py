"""Scale: gradient accumulation, rematerialisation, utilisation (MFU), mixed precision.

Each check compares against a second computation of the same thing: accumulation against
one large batch and against the pre-accumulation step written out by hand,
rematerialisation against the plain model's gradients and compiled memory.
"""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from attn_research.objectives.base import Objective, seeded
from attn_research.train.loop import prepare
from tests.conftest import make_config

SGD = dict(train__optimizer="sgd", train__weight_decay=0.0, train__grad_clip=0.0,
           train__warmup_steps=0, train__schedule="constant", train__learning_rate=0.1)


def _prepared(tmp_path, spec, n, **overrides):
  config = make_config(spec, train__accumulate_steps=n, **dict(SGD, **overrides))
  return prepare(config, tmp_path / f"accumulate_{n}")


def _batch(p, batch_size):
  return {k: jnp.asarray(v) for k, v in p.task.train_batch(0, batch_size, 0).items()}


def _max_abs_diff(a, b):
  return max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(a),
                                                             jax.tree.leaves(b)))


def _assert_trees_close(got, want, rtol=1e-6):
  """Every leaf within rtol of the largest magnitude in want (float32 sums in another
  order differ by a few ulps of the largest term, not of each element)."""
  scale = max(float(jnp.max(jnp.abs(x))) for x in jax.tree.leaves(want))
  diff = _max_abs_diff(got, want)
  assert diff <= rtol * scale, f"max abs difference {diff:.3g} > {rtol:g} x {scale:.3g}"


# ------------------------------------------------------------------ gradient accumulation

@pytest.mark.parametrize("spec", [
    "experiments/base.py:smoke",
    pytest.param("experiments/copy.py:smoke", marks=pytest.mark.slow)])  # the same path again
def test_accumulated_step_equals_one_large_batch(tmp_path, spec):
  """4 microbatches of 2 give the loss, gradients and update of one batch of 8. The copy
  task scores a different number of tokens per example, so averaging the microbatches'
  mean losses (instead of dividing the summed loss by the total count) would fail here."""
  one, four = _prepared(tmp_path, spec, 1), _prepared(tmp_path, spec, 4)
  batch = _batch(one, 8)
  key = jax.random.key(3)
  g1, s1 = jax.jit(one.objective.grads_and_sums)(one.objective.params, batch, key)
  g4, s4 = jax.jit(four.objective.grads_and_sums)(four.objective.params, batch, key)
  assert float(s1["count"]) == float(s4["count"]) > 0
  if spec.startswith("experiments/copy"):  # the microbatches' counts differ
    counts = np.asarray(batch["target_mask"]).reshape(4, 2, -1).sum((1, 2))
    assert len(set(counts.tolist())) > 1, counts
  np.testing.assert_allclose(float(s4["loss"]), float(s1["loss"]), rtol=1e-6)
  assert max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(g1)) > 1e-3
  _assert_trees_close(g4, g1)

  state1, m1 = jax.jit(one.objective.train_step)(one.objective.initial_state(), batch, key)
  state4, m4 = jax.jit(four.objective.train_step)(four.objective.initial_state(), batch, key)
  np.testing.assert_allclose(float(m4["loss"]), float(m1["loss"]), rtol=1e-6)
  np.testing.assert_allclose(float(m4["grad_norm"]), float(m1["grad_norm"]), rtol=1e-5)
  moved = _max_abs_diff(state1["params"], one.objective.params)
  assert moved > 1e-4, moved  # the update is not trivially zero
  _assert_trees_close(state4["params"], state1["params"])


def test_accumulate_steps_1_is_the_old_step_bit_for_bit(tmp_path):
  """accumulate_steps=1 compiles no microbatch loop and gives exactly what the step gave
  before accumulation existed (written out here: one value_and_grad over the batch)."""
  p = _prepared(tmp_path, "experiments/base.py:smoke", 1)
  obj, batch, rng = p.objective, _batch(p, 8), jax.random.key(0)
  state = obj.initial_state()

  def old_step(state, batch, rng):
    step_rest = seeded(obj.rest, jax.random.fold_in(rng, state["step"]))

    def loss_fn(params):
      return obj.loss_and_sums(obj.apply(params, step_rest, batch, train=True), batch)

    (_, sums), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
    updates, _ = obj.tx.update(grads, state["opt_state"], state["params"])
    return optax.apply_updates(state["params"], updates), sums["loss"] / sums["count"]

  want_params, want_loss = jax.jit(old_step)(state, batch, rng)
  got_state, got = jax.jit(obj.train_step)(state, batch, rng)
  assert float(got["loss"]) == float(want_loss)
  for a, b in zip(jax.tree.leaves(got_state["params"]), jax.tree.leaves(want_params)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert "scan" not in str(jax.make_jaxpr(obj.train_step)(state, batch, rng))
  four = _prepared(tmp_path, "experiments/base.py:smoke", 4).objective
  assert "scan" in str(jax.make_jaxpr(four.train_step)(four.initial_state(), batch, rng))


def test_accumulate_steps_that_do_not_divide_the_batch_are_refused(tmp_path):
  with pytest.raises(ValueError, match=r"accumulate_steps=3 .*batch_size=8.*valid: \[1, 2, 4, 8\]"):
    _prepared(tmp_path, "experiments/base.py:smoke", 3)
  with pytest.raises(ValueError, match=r"accumulate_steps=0 must be a positive int"):
    _prepared(tmp_path, "experiments/base.py:smoke", 0)


def test_an_objective_with_its_own_step_cannot_accumulate(tmp_path):
  class OwnStep(Objective):
    def train_step(self, state, batch, rng):
      return state, {}

  p = _prepared(tmp_path, "experiments/base.py:smoke", 1)
  config = make_config(train__accumulate_steps=2)
  with pytest.raises(ValueError, match="writes its own train step"):
    OwnStep(config, p.model)


# ---------------------------------------------------------------------- rematerialisation

def _remat_loss(remat, *, family="transformer", T=128, **settings):
  """(loss(params, batch), params, batch) of a model whose residuals dominate memory:
  4 layers of materialised [B, H, T, T] attention scores."""
  from flax import nnx

  from attn_research.data import TaskInfo
  from attn_research.models import get_model, model_defaults
  from attn_research.objectives.base import apply_model

  cfg = dict(model_defaults(family), d_model=32, num_layers=4, num_heads=4, remat=remat,
             attention_impl="reference", dropout=0.1, **settings)
  info = TaskInfo("tokens", 16, "per_sequence", 5, T)
  model = get_model(cfg, info, rngs=nnx.Rngs(params=0, dropout=1))
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  rng = np.random.default_rng(0)
  batch = {"inputs": jnp.asarray(rng.integers(0, 16, (8, T)), jnp.int32),
           "mask": jnp.asarray(np.arange(T)[None] < rng.integers(T // 2, T + 1, (8, 1))),
           "targets": jnp.asarray(rng.integers(0, 5, (8,)), jnp.int32)}

  def loss(params, batch):
    logits = apply_model(graphdef, params, seeded(rest, jax.random.key(7)), batch, train=True)
    return optax.softmax_cross_entropy_with_integer_labels(logits, batch["targets"]).mean()

  return loss, params, batch


@pytest.mark.slow  # two 4-layer gradients per setting: ~10 s each on 2 cores
@pytest.mark.parametrize("remat", ["block", "full"])
def test_remat_gives_the_same_gradients(remat):
  """Dropout is on: the recomputed forward must draw the same masks as the first."""
  plain, params, batch = _remat_loss("none")
  again, _, _ = _remat_loss(remat)
  want = jax.jit(jax.grad(plain))(params, batch)
  got = jax.jit(jax.grad(again))(params, batch)
  assert max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(want)) > 1e-3
  _assert_trees_close(got, want, rtol=1e-6)
  assert "remat" in str(jax.make_jaxpr(jax.grad(again))(params, batch))
  assert "remat" not in str(jax.make_jaxpr(jax.grad(plain))(params, batch))


def remat_peaks(T=256) -> dict:
  """{remat: XLA's compile-time peak bytes (measure.memory) of the model's gradient}."""
  from attn_research.measure import peak_bytes

  peaks = {}
  for remat in ("none", "block", "full"):
    loss, params, batch = _remat_loss(remat, T=T)
    peaks[remat] = peak_bytes(jax.jit(jax.grad(loss)).lower(params, batch).compile())
  return peaks


@pytest.mark.slow  # a child process compiling three train steps: ~15 s
def test_remat_lowers_compiled_train_memory():
  """block and full < none in compiled peak memory. On CPU, XLA's default
  concurrency-optimised scheduler runs the recomputations early, all at once, which
  cancels most of the saving; the memory-minded scheduler (the flag below, and what GPU
  and TPU schedulers do under a memory limit) keeps it. XLA reads the flag once per
  process, so this runs in a fresh one."""
  import json
  import os
  import subprocess
  import sys

  from tests.conftest import ROOT

  flags = (os.environ.get("XLA_FLAGS", "")
           + " --xla_cpu_enable_concurrency_optimized_scheduler=false").strip()
  code = "import json; from tests.test_scale import remat_peaks; print(json.dumps(remat_peaks()))"
  out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       env=dict(os.environ, XLA_FLAGS=flags, JAX_PLATFORMS="cpu"), timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  peaks = json.loads(out.stdout.strip().splitlines()[-1])
  # Measured: none 107 MB, block 40 MB, full 43 MB (full keeps one input instead of one
  # per block, but its backward holds the same one-block transient, which dominates here).
  assert peaks["block"] < 0.6 * peaks["none"], peaks
  assert peaks["full"] < 0.6 * peaks["none"], peaks


def test_remat_is_refused_by_name():
  with pytest.raises(ValueError, match=r"model.remat='some'.*\('none', 'block', 'full'\)"):
    _remat_loss("some")


# ------------------------------------------------------------------------------ utilisation

def test_utilisation_fields_follow_the_convention(monkeypatch):
  """3 x forward x batch, times steps/s, over the peak: checked with a fixed peak."""
  from attn_research.measure import utilisation as util  # the module

  monkeypatch.setattr(util, "peak_flops", lambda dtype, device=None: {
      "peak_flops_per_second": 1e9, "peak_flops_source": f"fixed {dtype}"})
  got = util.utilisation_fields(2e6, 64, 5.0, dtype="float32")
  assert got["model_flops_per_step"] == 3 * 2e6 * 64
  assert got["achieved_flops_per_second"] == 3 * 2e6 * 64 * 5.0
  assert got["mfu"] == pytest.approx(3 * 2e6 * 64 * 5.0 / 1e9)
  assert got["peak_flops_source"] == "fixed float32"
  none = util.utilisation_fields(None, 64, 5.0)
  assert none["model_flops_per_step"] is None and none["mfu"] is None


def test_peak_table_matches_device_kinds():
  """The datasheet rows are found by the device_kind strings jax reports."""
  from types import SimpleNamespace

  from attn_research.measure.utilisation import peak_flops

  def gpu(kind):
    return SimpleNamespace(platform="gpu", device_kind=kind)

  assert peak_flops("bfloat16", gpu("NVIDIA H100 80GB HBM3"))["peak_flops_per_second"] == 989e12
  assert peak_flops("float32", gpu("NVIDIA H100 PCIe"))["peak_flops_per_second"] == 51e12
  assert peak_flops("bfloat16", gpu("NVIDIA H200"))["peak_flops_per_second"] == 989e12
  assert peak_flops("bfloat16", gpu("NVIDIA A100-SXM4-80GB"))["peak_flops_per_second"] == 312e12
  tpu = SimpleNamespace(platform="tpu", device_kind="TPU v5 lite")
  assert peak_flops("bfloat16", tpu)["peak_flops_per_second"] == 197e12
  assert peak_flops("float32", tpu)["peak_flops_per_second"] is None
  unknown = peak_flops("bfloat16", gpu("Some Future GPU"))
  assert unknown["peak_flops_per_second"] is None and "unknown" in unknown["peak_flops_source"]


def test_cpu_peak_is_a_measured_matmul_rate():
  """Measured once per process: a second call returns the cached number."""
  from attn_research.measure.utilisation import matmul_rate, peak_flops

  if jax.default_backend() != "cpu":
    pytest.skip("the CPU peak is measured on CPUs only")
  first = peak_flops("float32")
  assert first["peak_flops_per_second"] == matmul_rate("float32")[0] > 1e8
  assert "measured" in first["peak_flops_source"] and "2048^3" in first["peak_flops_source"]
  assert peak_flops("float32") == first


def test_summary_and_comparison_table_show_utilisation(tmp_path):
  from attn_research.report.comparison import write_comparison
  from attn_research.train.loop import run

  summary = run(make_config(), tmp_path / "run", progress=False)
  for key in ("model_flops_per_step", "achieved_flops_per_second", "mfu",
              "peak_flops_per_second", "peak_flops_source", "flops_convention"):
    assert key in summary, key
  assert summary["model_flops_per_step"] == 3 * summary["flops_per_example"] * 8
  assert summary["mfu"] == pytest.approx(
      summary["model_flops_per_step"] * summary["steps_per_second"]
      / summary["peak_flops_per_second"])
  table, _ = write_comparison(tmp_path, {"transformer": tmp_path / "run"})
  header, _, row = table.splitlines()[:3]
  cells = dict(zip([c.strip() for c in header.split("|")], [c.strip() for c in row.split("|")]))
  assert float(cells["MFU (%)"]) == pytest.approx(100 * summary["mfu"], abs=0.006)
  assert cells["train examples/s"] != "" and cells["wall time (s)"] != ""


# ------------------------------------------------------------------------ mixed precision

def _jaxpr_eqns(jaxpr):
  """Every equation of a closed jaxpr, nested ones (pjit, custom_jvp, remat) included."""
  from jax.extend import core as jcore

  for eqn in jaxpr.eqns:
    yield eqn
    for value in eqn.params.values():
      for sub in (value if isinstance(value, (tuple, list)) else (value,)):
        if isinstance(sub, jcore.ClosedJaxpr):
          yield from _jaxpr_eqns(sub.jaxpr)
        elif isinstance(sub, jcore.Jaxpr):
          yield from _jaxpr_eqns(sub)


def _forward_ops(p, batch):
  closed = jax.make_jaxpr(p.objective.forward)(p.objective.params, batch)
  return list(_jaxpr_eqns(closed.jaxpr))


@pytest.mark.parametrize("param_dtype", ["float32", "bfloat16"])
def test_bfloat16_computes_matmuls_in_bfloat16_softmax_and_loss_in_float32(tmp_path,
                                                                           param_dtype):
  p = prepare(make_config(model__dtype="bfloat16", model__param_dtype=param_dtype),
              tmp_path / "w")
  batch = _batch(p, 8)
  params = jax.tree.leaves(p.objective.params)
  assert {str(x.dtype) for x in params} == {param_dtype}
  ops = _forward_ops(p, batch)
  dots = [e for e in ops if e.primitive.name == "dot_general"]
  assert len(dots) >= 8, len(dots)  # embed, q, k, v, scores, values, out, mlp, head
  assert all(str(v.aval.dtype) == "bfloat16" for e in dots for v in e.invars), [
      [str(v.aval.dtype) for v in e.invars] for e in dots]
  exps = [e for e in ops if e.primitive.name == "exp"]
  assert exps and all(str(e.outvars[0].aval.dtype) == "float32" for e in exps)  # softmax
  logits = jax.jit(p.objective.forward)(p.objective.params, batch)
  assert logits.dtype == jnp.bfloat16
  grads, sums = jax.jit(p.objective.grads_and_sums)(p.objective.params, batch,
                                                    jax.random.key(0))
  assert sums["loss"].dtype == jnp.float32  # the loss of float32 logits
  assert {str(g.dtype) for g in jax.tree.leaves(grads)} == {param_dtype}


def test_float32_and_auto_on_cpu_leave_the_model_as_built(tmp_path):
  if jax.default_backend() != "cpu":
    pytest.skip("auto is bfloat16 on accelerators")
  p = prepare(make_config(), tmp_path / "w")  # model.dtype=auto
  assert p.model.compute_dtype == p.model.param_dtype_name == "float32"
  ops = _forward_ops(p, _batch(p, 8))
  assert all(str(v.aval.dtype) != "bfloat16" for e in ops for v in e.invars)


def test_precision_settings_are_checked_before_compiling(tmp_path, monkeypatch):
  from types import SimpleNamespace

  from attn_research.models import registry

  with pytest.raises(ValueError, match=r"model.dtype='float16'.*\('auto', 'float32', 'bfloat16'\)"):
    prepare(make_config(model__dtype="float16"), tmp_path / "a")
  with pytest.raises(ValueError, match=r"model.param_dtype='half'.*\('float32', 'bfloat16'\)"):
    prepare(make_config(model__param_dtype="half"), tmp_path / "b")
  volta = SimpleNamespace(platform="gpu", device_kind="Tesla V100-SXM2-16GB",
                          compute_capability="7.0")
  with pytest.raises(ValueError, match=r"model.dtype=bfloat16 is refused: Tesla V100.*7.0"):
    registry.resolve_dtypes({"dtype": "bfloat16"}, volta)
  assert registry.resolve_dtypes({"dtype": "auto"}, volta) == ("float32", "float32")
  h100 = SimpleNamespace(platform="gpu", device_kind="NVIDIA H100 80GB HBM3",
                         compute_capability="9.0")
  assert registry.resolve_dtypes({"dtype": "auto"}, h100) == ("bfloat16", "float32")
  cpu = SimpleNamespace(platform="cpu", device_kind="cpu")
  assert registry.resolve_dtypes({"dtype": "auto"}, cpu) == ("float32", "float32")


def test_summary_records_the_precision(tmp_path):
  from attn_research.train.loop import run

  summary = run(make_config(model__dtype="bfloat16"), tmp_path / "run", progress=False)
  assert summary["dtype"] == "bfloat16" and summary["param_dtype"] == "float32"
  assert "bfloat16" in summary["peak_flops_source"]  # the peak of the computation dtype


@pytest.mark.slow
def test_bfloat16_training_lands_near_float32():
  """experiments/base.py (one Transformer on digits, 1,000 steps) in bfloat16 on this
  machine reaches float32's eval accuracy within 2 points."""
  import tempfile

  from attn_research.train.loop import run

  accuracy = {}
  for dtype in ("float32", "bfloat16"):
    summary = run(make_config("experiments/base.py", model__dtype=dtype),
                  tempfile.mkdtemp(prefix=f"base_{dtype}_"), progress=False)
    accuracy[dtype] = summary["final_eval"]["accuracy"]
  print(f"eval accuracy {accuracy}")
  assert accuracy["float32"] > 0.9, accuracy
  assert abs(accuracy["bfloat16"] - accuracy["float32"]) <= 0.02, accuracy
