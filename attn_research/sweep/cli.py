"""./launch.sh sweep CONFIG[:ARG] [--parallel N] [--seeds K] [--sweep-dir DIR] [--dry-run]
[--config.KEY=VALUE ...]: plan, refuse or run, then aggregate."""
from __future__ import annotations

import argparse
import shlex
import sys

from attn_research.config import parse_override_args
from attn_research.report.sweep import write_report
from attn_research.sweep.plan import check_sweep_dir, plan_sweep, write_record
from attn_research.sweep.runner import main_command, run_all, summary_text
from attn_research.workdir import DirectoryLock


def main(argv=None, *, command=main_command) -> int:
  parser = argparse.ArgumentParser(prog="launch.sh sweep", allow_abbrev=False,
                                   description="Expand a config's sweep(add) and run it.")
  parser.add_argument("config", help="experiments/NAME.py[:ARG], defining sweep(add)")
  parser.add_argument("--parallel", type=int, default=1, help="runs at a time (default 1)")
  parser.add_argument("--seeds", type=int, default=None,
                      help="adds seed = 0..K-1 as the innermost axis")
  parser.add_argument("--sweep-dir", default=None,
                      help="where the runs go (default: workdirs/sweeps/NAME[_ARG])")
  parser.add_argument("--dry-run", action="store_true",
                      help="list the runs and their commands; run and write nothing")
  args, rest = parser.parse_known_args(argv)
  if args.parallel < 1:
    parser.error(f"--parallel {args.parallel} must be at least 1")
  lock = None
  try:
    plan = plan_sweep(args.config, parse_override_args(rest), seeds=args.seeds,
                      sweep_dir=args.sweep_dir)
    if not args.dry_run:  # held to the end: a second sweep on this dir is refused at once
      lock = DirectoryLock(plan.sweep_dir, what="sweep directory").acquire()
    existing = check_sweep_dir(plan)
  except ValueError as e:
    if lock is not None:
      lock.release()
    print(f"error: {e}", file=sys.stderr)
    return 2
  try:
    return _run(args, plan, existing, command)
  finally:
    if lock is not None:
      lock.release()


def _run(args, plan, existing, command) -> int:
  sizes = " x ".join(str(len(a.points)) for a in plan.axes)
  print(f"sweep {args.config}: {len(plan.runs)} runs ({sizes}) in {plan.sweep_dir}, "
        f"{args.parallel} at a time", flush=True)
  if args.dry_run:
    for run in plan.runs:
      print(f"  {run.name}\n    {shlex.join(command(run, plan))}")
    return 0
  if not existing:
    write_record(plan)
  try:
    failures, trained, skipped = run_all(plan, parallel=args.parallel, command=command,
                                         echo=lambda s: print(s, flush=True))
  except KeyboardInterrupt:
    print("\ninterrupted: the runs in flight saved checkpoints; run the same command "
          "again to resume", file=sys.stderr)
    return 130
  report = write_report(plan.sweep_dir)
  print("\n" + report["table"] + "\n")
  print(summary_text(plan, failures, trained, skipped))
  print("results: " + ", ".join(str(p) for p in [report["md"], report["csv"], *report["plots"]]))
  return 1 if failures else 0
