"""./launch.sh sweep CONFIG[:ARG] [--parallel N] [--seeds K] [--sweep-dir DIR] [--dry-run]
[--launcher local|slurm] [--slurm KEY=VALUE ...] [--config.KEY=VALUE ...]: plan, refuse or
run (local) or write a SLURM job array (sweep/slurm.py), then aggregate."""
from __future__ import annotations

import argparse
import shlex
import sys

from attn_research.config import parse_override_args
from attn_research.report.sweep import write_report
from attn_research.sweep.plan import check_sweep_dir, plan_sweep, write_record
from attn_research.sweep.runner import main_command, run_all, summary_text
from attn_research.sweep.slurm import parse_options, script_text, write_script
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
  parser.add_argument("--launcher", choices=("local", "slurm"), default="local",
                      help="local (default): run here, --parallel at a time; slurm: write "
                      "a job array script, one task per run (attn_research/sweep/slurm.py)")
  parser.add_argument("--slurm", action="append", default=[], metavar="KEY=VALUE",
                      help="an #SBATCH --KEY=VALUE line of the array script (repeatable)")
  args, rest = parser.parse_known_args(argv)
  if args.parallel < 1:
    parser.error(f"--parallel {args.parallel} must be at least 1")
  if args.slurm and args.launcher != "slurm":
    parser.error("--slurm KEY=VALUE sets the job array's resources; add --launcher slurm")
  lock = None
  try:
    options = parse_options(args.slurm)
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
    if args.launcher == "slurm":
      return _write_array(args, plan, existing, options)
    return _run(args, plan, existing, command)
  finally:
    if lock is not None:
      lock.release()


def _write_array(args, plan, existing, options) -> int:
  """--launcher slurm: sweep.json and the job-array script; nothing is run here."""
  if args.dry_run:
    print(script_text(plan, parallel=args.parallel, options=options))
    return 0
  if not existing:
    write_record(plan)
  path = write_script(plan, parallel=args.parallel, options=options)
  print(f"sweep {args.config}: {len(plan.runs)} runs in {plan.sweep_dir}, one SLURM array "
        f"task each\n  job array: {path}\n  submit:    sbatch {shlex.quote(str(path))}\n"
        f"  results:   ./launch.sh report {shlex.quote(str(plan.sweep_dir))}  (when the "
        "tasks are done; resubmitting trains only the unfinished runs)")
  return 0


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
