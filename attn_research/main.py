"""Command line: python -m attn_research.main --config FILE[:ARG] [--workdir DIR] [--config.KEY=VALUE ...]

Thin by design: it reads the config, applies the overrides and calls the library.
A config with `models` (several) runs a comparison; one with `extrapolation` trains one
model per position encoding and evaluates it at longer lengths; one with `model` runs once.
"""
from __future__ import annotations

import argparse
import pathlib
import sys


def default_workdir(spec: str) -> pathlib.Path:
  from attn_research.config import split_spec
  path, arg = split_spec(spec)
  return pathlib.Path("workdirs") / (path.stem + (f"_{arg.replace(',', '_')}" if arg else ""))


def main(argv=None):
  parser = argparse.ArgumentParser(prog="launch.sh run", description=__doc__.splitlines()[0])
  parser.add_argument("--config", required=True, help="experiments/NAME.py[:ARG]")
  parser.add_argument("--workdir", default=None,
                      help="where the run writes (default: workdirs/NAME[_ARG]); resumed if it "
                           "holds a checkpoint")
  parser.add_argument("--no-progress", action="store_true", help="no progress bars")
  args, rest = parser.parse_known_args(argv)

  from attn_research import compile_cache
  from attn_research.config import load_config, parse_override_args
  compile_cache.enable()
  try:
    config = load_config(args.config, parse_override_args(rest))
  except ValueError as e:
    parser.exit(2, f"error: {e}\n")
  workdir = pathlib.Path(args.workdir) if args.workdir else default_workdir(args.config)

  from attn_research.train.compare import run_comparison
  from attn_research.train.loop import run
  try:
    if "models" in config:
      summaries, (table, png) = run_comparison(config, workdir, progress=not args.no_progress)
      print("\n" + table + f"\n\nlearning curves: {png}\ntable: {workdir / 'comparison.md'}")
    elif "extrapolation" in config:
      from attn_research.extrapolate import run_extrapolation
      _, (table, png) = run_extrapolation(config, workdir, progress=not args.no_progress)
      print("\n" + table + f"\n\nplot: {png}\ntable: {workdir / 'extrapolation.md'}")
    else:
      summary = run(config, workdir, progress=not args.no_progress)
      ev = summary["final_eval"] or {}
      print(f"\nstep {summary['step']}: eval accuracy {ev.get('accuracy')}, "
            f"loss {ev.get('loss')}; summary: {workdir / 'summary.json'}")
    if config.get("report", {}).get("attention_maps"):
      from attn_research.train.attention_maps import save_all_attention_maps
      save_all_attention_maps(workdir)
  except (ValueError, FloatingPointError) as e:
    parser.exit(2 if isinstance(e, ValueError) else 3, f"error: {e}\n")
  except KeyboardInterrupt:
    sys.exit(130)


if __name__ == "__main__":
  main()
