"""Training-time cost of FLOATER positions: train steps/s of one model, position by position.

Times the jitted train step (a bare loop over one batch already on the device, as
benchmarks/train_step.py does) of experiments/base.py's Transformer (digits as 16
patch vectors, d_model 64, 2 layers, batch 64) with each --positions entry, plus the
first call's time (tracing and compiling; the persistent compilation cache is off).
Every encoding is compiled first; then rounds of --steps steps go through the
encodings in turn, and each keeps its best round.

  PYTHONPATH=. python benchmarks/floater_step.py [--config experiments/base.py]
      [--positions learned floater ...] [--steps 200] [--repeats 3]

Measured with `--repeats 5` on the project's 2-core CPU while other jobs shared it
(load average 3.2 falling to 1.7), so take the ratios as rough: an earlier run that
timed the encodings one after the other, under heavier load (about 4.5), gave 1.10x for
floater but also 1.14x for sinusoidal. This run:

| position | parameters | first call (s) | train steps/s | step time / learned's |
|---|---|---|---|---|
| learned | 102,090 | 3.7 | 77.5 | 1.00x |
| sinusoidal | 101,066 | 3.2 | 81.7 | 0.95x |
| floater | 105,418 | 7.0 | 70.9 | 1.09x |
| floater:solver=euler | 105,418 | 5.7 | 71.6 | 1.08x |
| floater:solver=tsit5 | 105,418 | 7.3 | 60.6 | 1.28x |

FLOATER (default: midpoint, dt = delta = 0.1, 15 steps for 16 positions) costs about a
tenth more per train step here and doubles the first call (the ODE solve and its
backward pass compile as loops).
"""
from __future__ import annotations

import argparse
import tempfile
import time

import jax

from attn_research.config import load_config
from attn_research.train.loop import initial_state, prepare


def compiled_step(config):
  """(seconds of the first call, parameter count, run(n) -> seconds for n more steps)."""
  p = prepare(config, tempfile.mkdtemp())
  step = jax.jit(p.objective.train_step, donate_argnums=(0,))
  box = [initial_state(p)]
  num_params = sum(x.size for x in jax.tree.leaves(box[0]["params"]))
  batch = p.dp.shard_batch(p.task.train_batch(0, config.train.batch_size, config.seed))
  key = jax.random.key(0)

  def run(n):
    t0 = time.perf_counter()
    for _ in range(n):
      box[0], _ = step(box[0], batch, key)
    jax.block_until_ready(box[0])
    return time.perf_counter() - t0

  first = run(1)
  return first, num_params, run


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", default="experiments/base.py")
  parser.add_argument("--positions", nargs="+",
                      default=["learned", "sinusoidal", "floater", "floater:solver=euler",
                               "floater:solver=tsit5"])
  parser.add_argument("--steps", type=int, default=200)
  parser.add_argument("--repeats", type=int, default=3)
  args = parser.parse_args()
  positions = args.positions  # the first is the reference of the last column
  print(f"{args.config}: {args.steps} timed steps, best of {args.repeats}; "
        f"device {jax.devices()[0].device_kind} x{jax.device_count()}\n")
  steps = {}
  for position in positions:  # compile everything first
    steps[position] = compiled_step(load_config(args.config, [("model.position", position)]))
  best = {position: 0.0 for position in positions}
  for _ in range(args.repeats):  # rounds interleave the encodings: load changes hit all alike
    for position, (_, _, run) in steps.items():
      best[position] = max(best[position], args.steps / run(args.steps))
  print("| position | parameters | first call (s) | train steps/s | "
        f"step time / {positions[0]}'s |")
  print("|---|---|---|---|---|")
  for position, (first, count, _) in steps.items():
    ratio = best[positions[0]] / best[position]
    print(f"| {position} | {count:,} | {first:.1f} | {best[position]:.1f} | {ratio:.2f}x |")


if __name__ == "__main__":
  main()
