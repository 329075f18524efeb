"""Overhead of the training loop: its steps/s against a bare loop over the same jitted step.

For each model of an experiment (default: experiments/compare.py, the default
experiment), it times
  bare:  state, metrics = train_step(state, batch, rng) in a Python loop over one
         batch already on the device (no data, logging, eval or checkpoints);
  loop:  attn_research.train.run() with the experiment's own settings (its number of
         steps, data from the task every step, progress bar, metric flushes,
         checkpoints), using the steps/s it records in summary.json (evaluation time
         and the first, compiling step excluded).
and prints a table with loop / bare (target >= 90 %).

  PYTHONPATH=. python benchmarks/train_step.py [--config experiments/compare.py[:ARG]]
                                               [--steps N (default: the config's)] [--repeats 2]
"""
from __future__ import annotations

import argparse
import tempfile
import time

import jax

from attn_research import compile_cache
from attn_research.config import load_config
from attn_research.modes.comparison import model_run_config
from attn_research.train.loop import initial_state, jit_steps, prepare, run


def bare_steps_per_second(config, steps: int) -> float:
  p = prepare(config, tempfile.mkdtemp())
  state = initial_state(p)
  step, _ = jit_steps(p)
  dp = p.dp
  batch = dp.shard_batch(p.task.train_batch(0, config.train.batch_size, config.seed))
  key = jax.random.key(0)
  state, _ = step(state, batch, key)  # compile
  jax.block_until_ready(state)
  t0 = time.perf_counter()
  for _ in range(steps):
    state, _ = step(state, batch, key)
  jax.block_until_ready(state)
  return steps / (time.perf_counter() - t0)


def loop_steps_per_second(config) -> float:
  summary = run(config, tempfile.mkdtemp(), progress=True)
  return summary["steps_per_second"]


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", default="experiments/compare.py")
  parser.add_argument("--steps", type=int, default=None, help="default: the config's num_steps")
  parser.add_argument("--repeats", type=int, default=2, help="best of N for each")
  args = parser.parse_args()
  compile_cache.enable()
  overrides = [] if args.steps is None else [("train.num_steps", str(args.steps + 1))]
  config = load_config(args.config, overrides)
  steps = config.train.num_steps - 1  # the first (compiling) step is not timed
  names = list(config.models) if "models" in config else [None]
  print(f"{args.config}: {steps} timed steps, best of {args.repeats}; "
        f"device {jax.devices()[0].device_kind} x{jax.device_count()}\n")
  print("| model | bare steps/s | loop steps/s | loop / bare |")
  print("|---|---|---|---|")
  for name in names:
    cfg = model_run_config(config, name) if name else config
    bare = max(bare_steps_per_second(cfg, steps) for _ in range(args.repeats))
    loop = max(loop_steps_per_second(cfg) for _ in range(args.repeats))
    print(f"| {name or cfg.model.name} | {bare:.1f} | {loop:.1f} | {100 * loop / bare:.0f} % |")


if __name__ == "__main__":
  main()
