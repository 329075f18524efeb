"""Command line: python -m attn_research.main --config FILE[:ARG] [--workdir DIR] [--config.KEY=VALUE ...]

Thin by design: it reads the config, applies the overrides and calls the run mode the
config names (`config.mode`: single, comparison, extrapolation; attn_research/modes/).
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

  from attn_research.modes import get_mode
  from attn_research.data.cache import MissingProgramError
  from attn_research.workdir.checkpoint import CheckpointSaveError
  try:
    mode = get_mode(config)
    print("\n" + mode(config, workdir, progress=not args.no_progress))
    if config.get("report", {}).get("attention_maps"):
      from attn_research.modes.attention_maps import save_all_attention_maps
      save_all_attention_maps(workdir)
  except (ValueError, MissingProgramError, FloatingPointError) as e:
    parser.exit(3 if isinstance(e, FloatingPointError) else 2, f"error: {e}\n")
  except CheckpointSaveError as e:  # a full disk, a vanished directory: the run's files
    parser.exit(4, f"error: {e}\n")  # up to the last intact checkpoint are kept
  except KeyboardInterrupt:
    sys.exit(130)


if __name__ == "__main__":
  main()
