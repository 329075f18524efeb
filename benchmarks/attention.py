"""Speed and memory of the attention kernels, as a markdown table.

  PYTHONPATH=. .venv/bin/python benchmarks/attention.py [--lengths 512,1024,...] [--heads 8]
      [--head-dim 64] [--batch 1] [--dtype float32|bfloat16] [--repeats N] [--max-gib 8]
      [--max-seconds 60] [--features 256] [--projected 256] [--only reference,performer,...]
      [--causal]

Softmax implementations: reference (materialised scores), chunked (Rabe & Staats; the
backend's default chunks, 256 x 256 on a CPU, 1024 x 4096 elsewhere), auto (what the
models run: kernels.choose_impl), cudnn on a GPU, and the peer every row is compared
with, jax.nn.dot_product_attention itself (row "xla": implementation="xla", called
directly). Column "x jax.nn" is the row's time over the peer's at the same length and
pass, measured in the same run (below 1: faster than jax.nn). --causal runs the softmax
rows causal (FLOPs halved) and skips the other kernels, which are measured non-causal.
The closing lines give the machine's matmul rate in --dtype (a jitted 2048^3 matmul,
measure.matmul_rate) and each softmax row's percentage of it at T = 2048 fwd+bwd.
The other kernels of model.attention, each as the module calls it (impl="auto"),
non-causal: additive (Bahdanau scores, O(T S D) memory per block), linear (elu + 1
features, direct form), performer (FAVOR+, --features random features, direct form),
linformer (keys and values projected to --projected positions, then softmax), gat (GAT's
LeakyReLU additive scores, materialised). Their parameters (score vectors, projections)
are random arrays passed as arguments, so they count as argument memory; gradients are
taken with respect to q, k, v only.
Times are the median of --repeats runs after one warm-up, each ended by block_until_ready;
a config stops repeating once its timed runs pass --max-seconds (at least one timed run).
Memory is XLA's compiled estimate (measure/memory.py: argument + output + temp - aliased
bytes; nothing is donated here, so none alias), known without running; a config whose
estimate exceeds --max-gib is compiled but not run.
TFLOP/s follow the FlashAttention convention: fwd = 4 B T^2 H D, fwd+bwd = 3.5 x fwd; they
are given for the softmax rows only ("-" for kernels that do other work).
The two closing lines check the CPU targets: chunked fwd+bwd peak memory at T=16384 at least
16x below the reference, and chunked fwd+bwd time at T=2048 at most 1.5x the reference.
"""
from __future__ import annotations

import argparse
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from attn_research import measure as measure_lib
from attn_research.kernels import (additive_attention, choose_impl, dot_product_attention,
                                   linear_attention)
from attn_research.kernels.graph import gat_attention
from attn_research.kernels.linformer import linformer_attention
from attn_research.kernels.performer import orthogonal_gaussian, performer_attention

PASSES = ("fwd", "fwd+bwd")
MIB = 2**20
SOFTMAX_IMPLS = ("reference", "chunked", "auto", "xla", "cudnn")
PEER = "xla"  # jax.nn.dot_product_attention, called directly
OTHER_KERNELS = ("additive", "linear", "performer", "linformer", "gat")


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--lengths", default="512,1024,2048,4096,8192,16384",
                 help="comma-separated sequence lengths")
  p.add_argument("--heads", type=int, default=8)
  p.add_argument("--head-dim", type=int, default=64)
  p.add_argument("--batch", type=int, default=1)
  p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
  p.add_argument("--repeats", type=int, default=5, help="timed runs after one warm-up")
  p.add_argument("--max-seconds", type=float, default=60.0,
                 help="stop repeating a config once its timed runs took this long")
  p.add_argument("--max-gib", type=float, default=8.0,
                 help="do not run configs whose compiled memory estimate exceeds this")
  p.add_argument("--features", type=int, default=256, help="performer's random features M")
  p.add_argument("--projected", type=int, default=256,
                 help="linformer's projected length k (at most T)")
  p.add_argument("--only", default=None, help="comma-separated rows to run (default: all)")
  p.add_argument("--causal", action="store_true",
                 help="causal softmax rows (the other kernels are skipped)")
  args = p.parse_args(argv)
  args.lengths = [int(t) for t in args.lengths.split(",")]
  valid = SOFTMAX_IMPLS + OTHER_KERNELS
  args.only = None if args.only is None else args.only.split(",")
  if args.only is not None and not set(args.only) <= set(valid):
    p.error(f"--only {args.only} names rows outside {valid}")
  return args


def implementations(args=None):
  causal = args is not None and args.causal
  rows = (("reference", "chunked", "auto", "xla")
          + (("cudnn",) if jax.default_backend() == "gpu" else ())
          + (() if causal else OTHER_KERNELS))
  only = None if args is None else args.only
  return tuple(r for r in rows if only is None or r in only)


def row_label(impl, args):
  if impl == "xla":
    return "jax.nn (xla)"
  if impl == "performer":
    return f"performer (M={args.features})"
  if impl == "linformer":
    return f"linformer (k<={args.projected})"
  return impl


def kernel_params(impl, args, length):
  """The row's parameters (random, fixed): passed to the compiled function as arguments."""
  key = jax.random.key(1)
  H, D = args.heads, args.head_dim
  if impl == "additive":
    return (jax.random.normal(key, (H, D), args.dtype) * D ** -0.5,)
  if impl == "performer":
    return (orthogonal_gaussian(key, args.features, D),)
  if impl == "linformer":
    k = min(args.projected, length)
    return tuple(jax.random.normal(kk, (k, length), jnp.float32) * length ** -0.5
                 for kk in jax.random.split(key))
  if impl == "gat":
    return tuple(jax.random.normal(kk, (H, D), args.dtype) * D ** -0.5
                 for kk in jax.random.split(key))
  return ()


def kernel_call(impl, causal=False):
  """(q, k, v, *params) -> attention output, for one row."""
  if impl == PEER:
    return lambda q, k, v: jax.nn.dot_product_attention(q, k, v, is_causal=causal,
                                                        implementation="xla")
  if impl in SOFTMAX_IMPLS:
    return lambda q, k, v: dot_product_attention(q, k, v, impl=impl, causal=causal)
  return {"additive": lambda q, k, v, w: additive_attention(q, k, v, w),
          "linear": lambda q, k, v: linear_attention(q, k, v),
          "performer": lambda q, k, v, w: performer_attention(q, k, v, w),
          "linformer": lambda q, k, v, e, f: linformer_attention(q, k, v, e, f),
          "gat": lambda q, k, v, a_q, a_k: gat_attention(q, k, v, a_q, a_k)}[impl]


def attention_fn(impl, pass_, causal=False):
  """The function to benchmark: attention itself, or the gradient of its sum w.r.t. q, k, v."""
  fwd = kernel_call(impl, causal)

  def loss(q, k, v, *params):
    return jnp.sum(fwd(q, k, v, *params).astype(jnp.float32))
  return fwd if pass_ == "fwd" else jax.grad(loss, argnums=(0, 1, 2))


def compile_with_memory(fn, shape, dtype, params=()):
  """(compiled executable, peak bytes: measure.peak_bytes) without running it."""
  x = jax.ShapeDtypeStruct(shape, dtype)
  return measure_lib.compile_with_memory(fn, x, x, x, *params)


def flops(batch, length, heads, head_dim, pass_, causal=False):
  fwd = 4 * batch * length**2 * heads * head_dim / (2 if causal else 1)
  return fwd if pass_ == "fwd" else 3.5 * fwd


def measure(impl, pass_, args, qkv):
  """{"bytes": compiled estimate, "seconds": median or None, "note": why not run}."""
  shape, dtype = qkv[0].shape, qkv[0].dtype
  params = kernel_params(impl, args, shape[1])
  try:
    compiled, peak = compile_with_memory(attention_fn(impl, pass_, args.causal), shape, dtype,
                                         params)
  except ValueError as e:  # e.g. cudnn with float32 inputs
    return {"bytes": None, "seconds": None, "note": f"unsupported: {e}".split(";")[0]}
  if peak > args.max_gib * 2**30:
    return {"bytes": peak, "seconds": None, "note": f"skipped (needs {peak / 2**30:.1f} GiB)"}
  seconds = measure_lib.median_seconds(compiled, qkv + params, args.repeats,
                                       args.max_seconds)
  return {"bytes": peak, "seconds": seconds, "note": ""}


def random_qkv(args, length):
  rng = np.random.default_rng(0)
  shape = (args.batch, length, args.heads, args.head_dim)
  return tuple(jnp.asarray(rng.standard_normal(shape), args.dtype) for _ in range(3))


def run_all(args):
  """{(impl, length, pass): measurement}; progress goes to stderr, the table to stdout."""
  results = {}
  for length in args.lengths:
    qkv = random_qkv(args, length)
    for impl in implementations(args):
      for pass_ in PASSES:
        start = time.perf_counter()
        results[impl, length, pass_] = r = measure(impl, pass_, args, qkv)
        print(f"  T={length} {impl} {pass_}: {r['note'] or 'done'} "
              f"({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
  return results


def format_cells(r, n_flops, peer=None):
  """n_flops None: the row does other work than softmax attention; no TFLOP/s. peer: the
  jax.nn measurement at the same length and pass (the "x jax.nn" ratio)."""
  mem = "-" if r["bytes"] is None else f"{r['bytes'] / MIB:,.0f}"
  if r["seconds"] is None:
    return [r["note"], "-", mem, "-"]
  rate = "-" if n_flops is None else f"{n_flops / r['seconds'] / 1e12:.3f}"
  ratio = ("-" if peer is None or peer["seconds"] is None
           else f"{r['seconds'] / peer['seconds']:.2f}")
  return [f"{1e3 * r['seconds']:,.1f}", rate, mem, ratio]


def table(results, args):
  head = ["impl", "T"] + [f"{p} {c}" for p in PASSES
                          for c in ("ms", "TFLOP/s", "MiB", "x jax.nn")]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for impl in implementations(args):
    for length in args.lengths:
      cells = [row_label(impl, args), str(length)]
      for pass_ in PASSES:
        n = (flops(args.batch, length, args.heads, args.head_dim, pass_, args.causal)
             if impl in SOFTMAX_IMPLS else None)
        cells += format_cells(results[impl, length, pass_], n,
                              results.get((PEER, length, pass_)))
      lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def matmul_lines(results, args, length=2048):
  """The machine's matmul rate and each softmax row's share of it at `length` fwd+bwd."""
  rate, took = measure_lib.matmul_rate(args.dtype)
  lines = [f"{args.dtype} 2048^3 matmul under jit: {rate / 1e9:,.0f} GFLOP/s "
           f"(best of 5, measured in {took:.1f} s)"]
  shares = []
  for impl in implementations(args):
    r = results.get((impl, length, "fwd+bwd"))
    if impl in SOFTMAX_IMPLS and r and r["seconds"]:
      n = flops(args.batch, length, args.heads, args.head_dim, "fwd+bwd", args.causal)
      shares.append(f"{row_label(impl, args)} {100 * n / r['seconds'] / rate:.1f} %")
  if shares:
    lines.append(f"share of that rate at T={length} fwd+bwd: " + ", ".join(shares))
  return lines


def auto_line(results, args):
  """The target: impl="auto" never slower than jax.nn at any length measured. Where auto
  picks xla it runs jax.nn's own program, so its ratio there is timing noise and is
  reported apart."""
  same, own = [], []
  for t in args.lengths:
    shape = jax.ShapeDtypeStruct((args.batch, t, args.heads, args.head_dim), args.dtype)
    picked = choose_impl(shape, shape, shape, causal=args.causal)
    for p in PASSES:
      a, b = results.get(("auto", t, p)), results.get((PEER, t, p))
      if a and b and a["seconds"] and b["seconds"]:
        (same if picked == PEER else own).append((a["seconds"] / b["seconds"], t, p, picked))
  if not same and not own:
    return "auto vs jax.nn: n/a (needs the auto and xla rows)"
  parts = []
  if same:
    parts.append(f"auto runs jax.nn itself at T={sorted({t for _, t, _, _ in same})} "
                 f"(ratios {min(same)[0]:.2f}-{max(same)[0]:.2f}: timing noise)")
  if own:
    worst = max(own)
    ok = "OK" if worst[0] <= 1.0 else "MISSED"
    parts.append(f"where it runs its own pick, worst auto / jax.nn {worst[0]:.2f} at "
                 f"T={worst[1]} {worst[2]} ({worst[3]}; target <= 1.00) {ok}")
  return "; ".join(parts)


def target_lines(results):
  def ratio(key_num, key_den, field):
    num, den = results.get(key_num), results.get(key_den)
    if not num or not den or num[field] is None or den[field] is None:
      return None
    return num[field] / den[field]

  mem = ratio(("reference", 16384, "fwd+bwd"), ("chunked", 16384, "fwd+bwd"), "bytes")
  speed = ratio(("chunked", 2048, "fwd+bwd"), ("reference", 2048, "fwd+bwd"), "seconds")
  mem_s = "n/a" if mem is None else f"{mem:.1f}x"
  speed_s = "n/a" if speed is None else f"{speed:.2f}x"
  mem_ok = "" if mem is None else (" OK" if mem >= 16 else " MISSED")
  speed_ok = "" if speed is None else (" OK" if speed <= 1.5 else " MISSED")
  return [f"chunked peak memory at T=16384 is {mem_s} below reference (target >= 16x){mem_ok}",
          f"chunked fwd+bwd time at T=2048 is {speed_s} reference (target <= 1.5x){speed_ok}"]


def main(argv=None):
  args = parse_args(argv)
  print(f"# attention: batch {args.batch}, {args.heads} heads, head dim {args.head_dim}, "
        f"{args.dtype}{', causal' if args.causal else ''}, median of up to {args.repeats} "
        f"runs (fewer past "
        f"{args.max_seconds:g} s); device {jax.devices()[0].device_kind} "
        f"({jax.default_backend()}); memory = XLA compiled temp + argument + output\n")
  results = run_all(args)
  print(table(results, args))
  print()
  print("\n".join(target_lines(results) + [auto_line(results, args)]
                  + matmul_lines(results, args)))


if __name__ == "__main__":
  main()
