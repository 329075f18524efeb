"""The project on one accelerator: attention TFLOP/s against cuDNN, a train step's MFU, and a
short bfloat16 run of the default experiment. Three sections, about 5 minutes on one GPU.

  PYTHONPATH=. python benchmarks/accelerator.py [--smoke] [--sections attention,mfu,run]
      [--repeats 3] [--max-gib 40] [--steps 300]

1. attention: forward and forward+backward TFLOP/s of kernels.dot_product_attention with
   impl reference, chunked, auto and xla (jax.nn.dot_product_attention, XLA), against the
   peer jax.nn.dot_product_attention(implementation="cudnn"), at head dim 128, T = 4k and
   16k, causal and not, bfloat16, in the FlashAttention benchmark convention (model dim
   2048 = 16 heads, batch x length = 16k tokens; fwd FLOPs 4 B T^2 H D, halved when causal,
   fwd+bwd 3.5 x fwd), with "x cudnn" = the row's time over cuDNN's in the same run. A
   configuration whose compiled memory estimate passes --max-gib is reported, not run.
2. mfu: one train step (cross-entropy, AdamW) of a 4-layer, d_model 1024, 8-head
   decoder-only Transformer over T = 2048 tokens, batch 8, bfloat16 computation with
   float32 parameters: the median step time of 10 steps after compiling, model FLOPs per
   step (3 x forward FLOPs per example x batch, measure/utilisation.py), achieved TFLOP/s
   and MFU against the device's datasheet peak.
3. run: `./launch.sh`'s default experiment (experiments/compare.py: CNN, BiLSTM and
   Transformer on digits) for --steps steps in bfloat16 (model.dtype=auto on an
   accelerator), its eval accuracies and wall time. It needs ml_collections (the config
   system) and scikit-learn's digits; where they are missing it says so and is skipped.

Imports: only jax, flax, optax and the project's kernels/, models/ and measure/ at the top
(none of which imports ml_collections or tensorflow_datasets), so sections 1 and 2 run on
a machine that lacks them; section 3 imports the config and the loop when it runs.
Without a GPU it prints "no GPU" and exits 0; --smoke runs a tiny variant of every section
on any backend (CPU: T = 256 / 512, head dim 64, a 2-layer d_model 128 model, the
experiment's :smoke config) to check that the script works.
"""
from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from attn_research.data import TaskInfo
from attn_research.kernels import dot_product_attention
from attn_research.measure import peak_bytes, peak_flops, unrolled_flops, utilisation_fields
from attn_research.models import get_model, model_defaults

SECTIONS = ("attention", "mfu", "run")
IMPLS = ("reference", "chunked", "auto", "xla", "cudnn")
PEER = "cudnn"


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script on a CPU")
  p.add_argument("--sections", default=",".join(SECTIONS))
  p.add_argument("--repeats", type=int, default=3, help="timed calls after one warm-up")
  p.add_argument("--max-gib", type=float, default=40.0,
                 help="skip attention configs whose compiled memory estimate exceeds this")
  p.add_argument("--steps", type=int, default=300, help="steps of the default experiment")
  args = p.parse_args(argv)
  args.sections = args.sections.split(",")
  if not set(args.sections) <= set(SECTIONS):
    p.error(f"--sections {args.sections} names sections outside {SECTIONS}")
  return args


def median_time(fn, *xs, repeats=3):
  jax.block_until_ready(fn(*xs))
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*xs))
    times.append(time.perf_counter() - t0)
  return statistics.median(times)


# ------------------------------------------------------------------------------ attention

def attention_call(impl, causal):
  if impl in ("xla", "cudnn"):
    return lambda q, k, v: jax.nn.dot_product_attention(q, k, v, is_causal=causal,
                                                        implementation=impl)
  return lambda q, k, v: dot_product_attention(q, k, v, impl=impl, causal=causal)


def attention_section(args):
  on_gpu = jax.default_backend() == "gpu"
  head_dim, tokens, model_dim = (64, 512, 256) if args.smoke else (128, 16384, 2048)
  lengths = (256, 512) if args.smoke else (4096, 16384)
  dtype = jnp.bfloat16
  heads = model_dim // head_dim
  impls = IMPLS if on_gpu else tuple(i for i in IMPLS if i != "cudnn")
  print(f"## attention: head dim {head_dim}, {heads} heads, batch x T = {tokens} tokens, "
        f"bfloat16; TFLOP/s (FlashAttention convention); x {PEER} = time / cuDNN's\n")
  rows = []
  for causal in (False, True):
    for T in lengths:
      B = max(1, tokens // T)
      rng = np.random.default_rng(0)
      qkv = [jnp.asarray(rng.standard_normal((B, T, heads, head_dim)), dtype) for _ in range(3)]
      fwd_flops = 4 * B * T**2 * heads * head_dim / (2 if causal else 1)
      seconds = {}
      for impl in impls:
        call = attention_call(impl, causal)
        for pass_ in ("fwd", "fwd+bwd"):
          fn = call if pass_ == "fwd" else jax.grad(
              lambda q, k, v, call=call: call(q, k, v).astype(jnp.float32).sum(),
              argnums=(0, 1, 2))
          try:
            compiled = jax.jit(fn).lower(*qkv).compile()
          except Exception as e:  # noqa: BLE001 (an unsupported call is a row, not a crash)
            seconds[impl, pass_] = f"unsupported: {str(e).splitlines()[0][:60]}"
            continue
          peak = peak_bytes(compiled)
          if peak is not None and peak > args.max_gib * 2**30:
            seconds[impl, pass_] = f"skipped ({peak / 2**30:.0f} GiB)"
            continue
          seconds[impl, pass_] = median_time(compiled, *qkv, repeats=args.repeats)
      for impl in impls:
        cells = [impl, str(T), "yes" if causal else "no"]
        for pass_, n in (("fwd", fwd_flops), ("fwd+bwd", 3.5 * fwd_flops)):
          s, peer = seconds[impl, pass_], seconds.get((PEER, pass_))
          if isinstance(s, str):
            cells += [s, "-"]
            continue
          ratio = f"{s / peer:.2f}" if isinstance(peer, float) else "-"
          cells += [f"{n / s / 1e12:.3g}", ratio]
        rows.append(cells)
  head = ["impl", "T", "causal", "fwd TFLOP/s", f"fwd x {PEER}", "fwd+bwd TFLOP/s",
          f"fwd+bwd x {PEER}"]
  print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
  for cells in rows:
    print("| " + " | ".join(cells) + " |")
  print()


# ------------------------------------------------------------------------------------ mfu

def mfu_section(args):
  layers, d, T, batch, heads = (2, 128, 256, 4, 2) if args.smoke else (4, 1024, 2048, 8, 8)
  vocab = 256
  cfg = dict(model_defaults("transformer"), d_model=d, num_layers=layers, num_heads=heads,
             position="rotary", dtype="bfloat16", param_dtype="float32")
  info = TaskInfo("tokens", vocab, "sequence", vocab, T)
  model = nnx.jit(lambda: get_model(cfg, info, rngs=nnx.Rngs(0)))()
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  tx = optax.adamw(1e-4)
  rng = np.random.default_rng(0)
  tokens = jnp.asarray(rng.integers(0, vocab, (batch, T)), jnp.int32)
  mask = jnp.ones((batch, T), bool)

  def forward(params, tokens, mask):
    return nnx.merge(graphdef, params, rest)(tokens, mask, train=True)

  def loss(params, tokens, mask):
    logits = forward(params, tokens, mask).astype(jnp.float32)
    return optax.softmax_cross_entropy_with_integer_labels(logits[:, :-1], tokens[:, 1:]).mean()

  @jax.jit
  def step(params, opt_state, tokens, mask):
    value, grads = jax.value_and_grad(loss)(params, tokens, mask)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, value

  opt_state = tx.init(params)
  t0 = time.perf_counter()
  params, opt_state, _ = step(params, opt_state, tokens, mask)
  jax.block_until_ready(params)
  compile_s = time.perf_counter() - t0
  times = []
  for _ in range(10):
    t0 = time.perf_counter()
    params, opt_state, value = step(params, opt_state, tokens, mask)
    jax.block_until_ready(value)
    times.append(time.perf_counter() - t0)
  seconds = statistics.median(times)
  fwd = unrolled_flops(forward, params, tokens[:1], mask[:1])
  fields = utilisation_fields(fwd, batch, 1.0 / seconds, dtype="bfloat16")
  mfu = "n/a" if fields["mfu"] is None else f"{100 * fields['mfu']:.1f} %"
  print(f"## train-step MFU: {layers} layers, d_model {d}, {heads} heads, T {T}, batch {batch}, "
        f"bfloat16 compute, float32 parameters, attention impl auto\n")
  print(f"step {1e3 * seconds:.1f} ms (median of 10; first step with compiling "
        f"{compile_s:.1f} s), loss {float(value):.3f}")
  print(f"model FLOPs/step {fields['model_flops_per_step'] / 1e12:.3f} TFLOP "
        f"({fields['flops_convention']}); achieved "
        f"{fields['achieved_flops_per_second'] / 1e12:.3g} TFLOP/s; MFU {mfu} "
        f"(peak: {fields['peak_flops_source']})\n")


# ------------------------------------------------------------------------------------ run

def run_section(args):
  missing = [m for m in ("ml_collections", "sklearn") if importlib.util.find_spec(m) is None]
  if missing:
    print(f"## default experiment: skipped: this machine lacks {missing} (the config "
          "system needs ml_collections; the digits come from scikit-learn's CSV)\n")
    return
  from attn_research.config import load_config
  from attn_research.modes import get_mode

  spec = "experiments/compare.py:smoke" if args.smoke else "experiments/compare.py"
  overrides = [] if args.smoke else [("train.num_steps", str(args.steps)),
                                     ("train.warmup_steps", "20")]
  config = load_config(spec, overrides)
  workdir = tempfile.mkdtemp(prefix="accelerator_compare_")
  t0 = time.perf_counter()
  print(f"## default experiment: {spec} {' '.join(f'--config.{k}={v}' for k, v in overrides)} "
        "(model.dtype=auto: bfloat16 on an accelerator)")
  print(get_mode(config)(config, workdir, progress=False))
  print(f"wall time {time.perf_counter() - t0:.0f} s (workdir {workdir})\n")


def main(argv=None):
  args = parse_args(argv)
  backend, device = jax.default_backend(), jax.devices()[0]
  if backend != "gpu" and not args.smoke:
    print(f"no GPU (JAX backend {backend!r}, {device.device_kind}): this benchmark measures "
          "a GPU; --smoke runs a tiny variant here")
    return 0
  peak = peak_flops("bfloat16")
  print(f"# accelerator: {device.device_kind} ({backend}), jax {jax.__version__}; bfloat16 "
        f"peak {peak['peak_flops_per_second'] or float('nan'):.3g} FLOP/s "
        f"({peak['peak_flops_source']}){' [--smoke]' if args.smoke else ''}\n")
  begin = time.perf_counter()
  for name, section in (("attention", attention_section), ("mfu", mfu_section),
                        ("run", run_section)):
    if name in args.sections:
      section(args)
  print(f"total {time.perf_counter() - begin:.0f} s")
  return 0


if __name__ == "__main__":
  sys.exit(main())
