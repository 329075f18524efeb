"""Per-token generation latency against context length, as a markdown table.

  PYTHONPATH=. .venv/bin/python benchmarks/generation.py [--lengths 256,512,...]
      [--d-model 64] [--layers 1] [--heads 4] [--new-tokens 64] [--repeats 3]
      [--min-time 1] [--batch 1] [--recompute-budget 60]

What is timed and how: attn_research/measure/generation.py.
"""
from __future__ import annotations

import argparse
import os

import jax

from attn_research.measure.generation import LENGTHS, METHODS, measure, table


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--lengths", default=",".join(map(str, LENGTHS)),
                      help="comma-separated context lengths")
  parser.add_argument("--methods", default=",".join(METHODS),
                      help=f"comma-separated, from {tuple(METHODS)}")
  parser.add_argument("--d-model", type=int, default=64)
  parser.add_argument("--layers", type=int, default=1)
  parser.add_argument("--heads", type=int, default=4)
  parser.add_argument("--new-tokens", type=int, default=64)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--min-time", type=float, default=1.0,
                      help="keep timing (best of more calls, up to 200) until this many "
                           "seconds were timed: fast methods get a robust minimum")
  parser.add_argument("--batch", type=int, default=1)
  parser.add_argument("--recompute-budget", type=float, default=60.0,
                      help="seconds a recompute length may take (predicted), else skipped")
  args = parser.parse_args()
  lengths = [int(x) for x in args.lengths.split(",") if x]
  print(f"backend {jax.default_backend()}, {os.cpu_count()} CPUs, load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; d_model {args.d_model}, "
        f"{args.layers} layer(s), {args.heads} heads, batch {args.batch}, "
        f"{args.new_tokens} new tokens, best of >= {args.repeats} calls "
        f"(>= {args.min_time:g} s timed)")
  rows = measure(lengths, methods=tuple(m for m in args.methods.split(",") if m),
                 d_model=args.d_model, layers=args.layers, heads=args.heads,
                 new_tokens=args.new_tokens, repeats=args.repeats,
                 min_time=args.min_time, batch=args.batch,
                 recompute_budget=args.recompute_budget)
  print()
  print(table(rows))
  print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
  main()
