"""Sweeps beyond one machine: a SLURM job array, one array task per run.

`./launch.sh sweep CONFIG --launcher slurm [--slurm KEY=VALUE ...]` plans and checks the
sweep exactly as the local launcher does (same refusals, same sweep.json), then writes

    SWEEP_DIR/slurm/array.sbatch      #SBATCH --array=0-(N-1)[%P] and one line per --slurm
    SWEEP_DIR/slurm/                  where SLURM writes each task's stdout (%A_%a.out)

and prints the `sbatch` command; it submits nothing itself. Array task i runs
`python -m attn_research.sweep.slurm SWEEP_DIR` with SLURM_ARRAY_TASK_ID=i, which reads
run i from sweep.json and applies the local launcher's rules through the same code
(runner.run_all over that one run): a finished run (summary.json) is skipped, an
unfinished one resumes from its checkpoints, its output goes to RUN/log.txt and its exit
status to RUN/exit.json. Resubmitting the same script after a preemption or a failure
therefore trains only what is left. `./launch.sh report SWEEP_DIR` aggregates once the
array is done (also while it runs: unfinished runs show as such).

`--parallel P` becomes the array's throttle (%P: at most P tasks at once); each task's
resources (time, partition, GPUs, memory) come from `--slurm time=02:00:00 --slurm
gres=gpu:1 ...`, written as `#SBATCH --time=02:00:00`. The script changes to the
repository and calls this checkout's Python by absolute path, so the cluster's nodes must
see both (a shared file system, as SLURM clusters have).
"""
from __future__ import annotations

import os
import pathlib
import re
import shlex
import sys

from attn_research.report.sweep import SWEEP_FILE, read_record
from attn_research.sweep.plan import Plan, Run
from attn_research.sweep.runner import main_command, run_all, summary_text

SCRIPT = "array.sbatch"
# A SLURM option name: letters, digits and dashes (sbatch's long options).
_OPTION = re.compile(r"^[A-Za-z][A-Za-z0-9-]*$")


def parse_options(pairs) -> list:
  """['time=01:00:00', 'gres=gpu:1'] -> [('time', '01:00:00'), ...]; refuses a malformed
  pair, an option the script sets itself (array, output, chdir) and a newline."""
  options = []
  for pair in pairs or ():
    key, sep, value = pair.partition("=")
    key = key.strip().lstrip("-")
    if not sep or not _OPTION.match(key) or not value or "\n" in value:
      raise ValueError(f"--slurm {pair!r} must be KEY=VALUE with an sbatch long option as "
                       "KEY, e.g. --slurm time=02:00:00 --slurm gres=gpu:1")
    if key in ("array", "output", "error", "chdir"):
      raise ValueError(f"--slurm {key}=... is set by the launcher (one array task per run, "
                       "output in SWEEP_DIR/slurm/); drop it")
    options.append((key, value))
  return options


def script_text(plan: Plan, *, parallel: int, options=()) -> str:
  """The job-array script for plan's runs (all of them: a finished run's task skips it)."""
  sweep_dir = plan.sweep_dir.resolve()
  root = pathlib.Path(__file__).resolve().parents[2]
  throttle = f"%{parallel}" if parallel < len(plan.runs) else ""
  name = re.sub(r"[^A-Za-z0-9._-]", "_", sweep_dir.name)[:60]
  lines = ["#!/bin/bash",
           f"#SBATCH --job-name=attn-{name}",
           f"#SBATCH --array=0-{len(plan.runs) - 1}{throttle}",
           f"#SBATCH --output={sweep_dir / 'slurm' / '%A_%a.out'}",
           *(f"#SBATCH --{k}={v}" for k, v in options),
           f"# {len(plan.runs)} runs of {plan.spec}; run i is sweep.json's runs[i].",
           "# Resubmitting this script trains only the runs without a summary.json.",
           f"cd {shlex.quote(str(root))}",
           f"exec {shlex.quote(sys.executable)} -m attn_research.sweep.slurm "
           f"{shlex.quote(str(sweep_dir))}", ""]
  return "\n".join(lines)


def write_script(plan: Plan, *, parallel: int, options=()) -> pathlib.Path:
  directory = plan.sweep_dir / "slurm"
  directory.mkdir(parents=True, exist_ok=True)
  path = directory / SCRIPT
  tmp = path.with_suffix(".tmp")
  tmp.write_text(script_text(plan, parallel=parallel, options=options))
  tmp.chmod(0o755)
  tmp.replace(path)
  return path


def task_plan(sweep_dir, index) -> Plan:
  """The one-run plan of array task `index` of the sweep recorded in sweep_dir."""
  sweep_dir = pathlib.Path(sweep_dir)
  record = read_record(sweep_dir)
  runs = record["runs"]
  try:
    i = int(index)
  except (TypeError, ValueError):
    i = -1
  if not 0 <= i < len(runs):
    raise ValueError(f"SLURM_ARRAY_TASK_ID={index!r} must be an int in 0..{len(runs) - 1} "
                     f"(the {len(runs)} runs of {sweep_dir / SWEEP_FILE})")
  r = runs[i]
  run = Run(r["name"], r["settings"], r["flags"], r["config"], sweep_dir / r["workdir"])
  return Plan(record["config"], sweep_dir, [], [tuple(kv) for kv in record["overrides"]],
              record["seeds"], [run])


def run_task(sweep_dir, index, *, command=main_command, echo=print) -> int:
  """Array task `index`: its run trained (or skipped when finished); the exit status."""
  plan = task_plan(sweep_dir, index)
  failures, trained, skipped = run_all(plan, parallel=1, command=command, echo=echo)
  echo(summary_text(plan, failures, trained, skipped))
  return 1 if failures else 0


def main(argv=None) -> int:
  argv = sys.argv[1:] if argv is None else argv
  if len(argv) != 1:
    print("usage: python -m attn_research.sweep.slurm SWEEP_DIR  (with SLURM_ARRAY_TASK_ID "
          "set, as in the script ./launch.sh sweep --launcher slurm writes)", file=sys.stderr)
    return 2
  try:
    return run_task(argv[0], os.environ.get("SLURM_ARRAY_TASK_ID"),
                    echo=lambda s: print(s, flush=True))
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2


if __name__ == "__main__":
  sys.exit(main())
