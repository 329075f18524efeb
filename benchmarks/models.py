"""Train-step speed and memory of each model family against sequence length, as a markdown table.

  PYTHONPATH=. .venv/bin/python benchmarks/models.py [--lengths 128,512,2048] [--batch 8]
      [--repeats 3] [--chunk 128] [--config experiments/compare.py] [--models a,b]

Every model of the comparison config (default: experiments/compare.py's Transformer, 1D
CNN and BiLSTM at their default widths) trains on the generated `sort` task (tokens, a
label per vector) at each length T, through the loop's own train step (steps.make_steps
with the config's optimizer, jitted as the loop jits it, state donated):
  train examples/s  batch / median seconds of --repeats timed steps after a compiling
                    and a warm-up step;
  MFLOPs/example    the forward pass of one example (XLA cost analysis, scans unrolled:
                    measure/flops.py), so forward GFLOP/s = examples/s x FLOPs/example
                    says how well a family uses the machine (a train step costs about 3x);
  peak memory       XLA's compile-time estimate for the train step (argument + output +
                    temp - donated bytes), known before anything runs.
The Transformer runs twice: attention_impl=reference materialises the [B, H, T, T]
score matrix (memory quadratic in T) and =chunked (Rabe & Staats 2021, arXiv
2112.05682) keeps one query block x key block at a time (memory linear in T). The
model's kernel defaults to Rabe & Staats' 1024 x 4096 blocks, a single block for any
T <= 1024, so the chunked rows use --chunk x --chunk blocks instead (0 keeps the
defaults); the substitution is visible in the row's name.

Expected shape of the result: the RNN's step time grows linearly with T but its steps
are sequential, so its GFLOP/s stay far below the parallel families'; reference memory
grows about 16x per 4x of T at long T, chunked about 4x.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import os
import statistics
import tempfile
import time

import jax

from attn_research import compile_cache, kernels
from attn_research.config import load_config
from attn_research.modes.comparison import model_run_config
from attn_research.train.loop import initial_state, jit_steps, prepare
from attn_research.measure import forward_flops, peak_bytes

MIB = 2**20


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--config", default="experiments/compare.py",
                 help="a comparison config; its models are benchmarked")
  p.add_argument("--models", default=None, help="comma-separated subset of its models")
  p.add_argument("--lengths", default="128,512,2048", help="comma-separated sequence lengths")
  p.add_argument("--batch", type=int, default=8, help="examples per train step")
  p.add_argument("--repeats", type=int, default=3, help="timed steps (median) per row")
  p.add_argument("--chunk", type=int, default=128,
                 help="query and key block of the chunked rows (0: the kernel's defaults)")
  args = p.parse_args(argv)
  args.lengths = [int(t) for t in args.lengths.split(",")]
  for name, value in (("--batch", args.batch), ("--repeats", args.repeats),
                      *(("--lengths item", t) for t in args.lengths)):
    if value < 1:
      raise SystemExit(f"{name}={value} must be >= 1")
  if args.chunk < 0:
    raise SystemExit(f"--chunk={args.chunk} must be >= 0 (0: the kernel's default blocks)")
  return args


@contextlib.contextmanager
def attention_blocks(chunk: int):
  """Chunked attention with chunk x chunk blocks while tracing inside this context (the
  model layers call kernels.dot_product_attention, which takes the block sizes)."""
  if not chunk:
    yield
    return
  original = kernels.dot_product_attention
  kernels.dot_product_attention = functools.partial(original, q_chunk=chunk, k_chunk=chunk)
  try:
    yield
  finally:
    kernels.dot_product_attention = original


def variants(config, names, chunk):
  """(row name, model settings overrides, block size) for each row per length."""
  rows = []
  for name in names:
    if config.models[name].name == "transformer":
      blocks = f"{chunk}x{chunk} blocks" if chunk else "default blocks"
      rows += [(f"{name} (reference)", dict(attention_impl="reference"), 0),
               (f"{name} (chunked, {blocks})", dict(attention_impl="chunked"), chunk)]
    else:
      rows.append((name, {}, 0))
  return rows


def measure_row(config, name, overrides, length, batch_size, repeats):
  """{params, flops, peak, seconds} of one model's train step at one length."""
  cfg = model_run_config(config, name)
  with cfg.unlocked():
    cfg.model.update(overrides)
    cfg.train.batch_size = batch_size
  p = prepare(cfg, tempfile.mkdtemp())
  state = initial_state(p)
  step, _ = jit_steps(p)
  dp = p.dp
  batch = dp.shard_batch(p.task.train_batch(0, batch_size, cfg.seed))
  key = jax.random.key(cfg.seed)
  compiled = step.lower(state, batch, key).compile()
  num_params = sum(x.size for x in jax.tree.leaves(state["params"]))
  flops = forward_flops(p.objective.forward, state["params"],
                        p.task.train_batch(0, 1, cfg.seed))
  state, _ = compiled(state, batch, key)  # warm-up
  jax.block_until_ready(state)
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    state, _ = compiled(state, batch, key)
    jax.block_until_ready(state)
    times.append(time.perf_counter() - start)
  return dict(params=num_params, flops=flops,
              peak=peak_bytes(compiled), seconds=statistics.median(times))


def main(argv=None):
  args = parse_args(argv)
  compile_cache.enable()
  base = load_config(args.config)
  if "models" not in base:
    raise SystemExit(f"{args.config} is not a comparison (it has no `models`)")
  names = args.models.split(",") if args.models else list(base.models)
  unknown = [n for n in names if n not in base.models]
  if unknown:
    raise SystemExit(f"--models {unknown} not in {args.config}: {list(base.models)}")
  print(f"{args.config} models on `sort`, batch {args.batch}, median of {args.repeats} "
        f"steps; device {jax.devices()[0].device_kind} x{jax.device_count()}; "
        f"load average at start {os.getloadavg()[0]:.2f}\n")
  print("| model | T | parameters | MFLOPs/example | step time (ms) | train examples/s | "
        "forward GFLOP/s | peak train-step memory (MiB) |")
  print("|---|---|---|---|---|---|---|---|")
  for row, overrides, chunk in variants(base, names, args.chunk):
    name = row.split(" ")[0]
    for length in args.lengths:
      config = load_config(args.config, [("data.name", "sort"), ("data.length", str(length))])
      with attention_blocks(chunk):
        m = measure_row(config, name, overrides, length, args.batch, args.repeats)
      speed = args.batch / m["seconds"]
      speed_spec = ",.0f" if speed >= 100 else ".1f" if speed >= 10 else ".2f"
      gflops = None if m["flops"] is None else speed * m["flops"] / 1e9
      print(f"| {row} | {length} | {m['params']:,} | "
            f"{'n/a' if m['flops'] is None else format(m['flops'] / 1e6, ',.1f')} | "
            f"{1e3 * m['seconds']:,.1f} | {speed:{speed_spec}} | "
            f"{'n/a' if gflops is None else format(gflops, '.2f')} | "
            f"{'n/a' if m['peak'] is None else format(m['peak'] / MIB, ',.1f')} |", flush=True)
  print(f"\nload average at the end {os.getloadavg()[0]:.2f} "
        f"(2-core machine: above 2 means other jobs shared it)")


if __name__ == "__main__":
  main()
