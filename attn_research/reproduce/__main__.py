"""python -m attn_research.reproduce NAME|all [--tier tiny|full] [--reports DIR] [--jobs N]

`all --jobs N` (N > 1) runs the claims as N processes at a time, each on its own share
of the CPU cores, then the timed claims (base.TIMED: their verdict rests on wall-clock
speed) one after another with every core and nothing else running. Each claim's output
goes to DIR/NAME/reproduce-<tier>.log; the summary is the same as with --jobs 1.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time
import traceback

from attn_research.reproduce import REPRODUCTIONS, TIERS, reproduce
from attn_research.cores import CORES_ENV, pin_to_cores, usable_cores
from attn_research.reproduce.base import CONCURRENT_ENV, TIMED

# The tiny tier's largest claim peaked at 6.9 GB resident (`/usr/bin/time -v` over the
# whole `reproduce all`, 2026-11-30); the default --jobs leaves each process this much.
MEMORY_PER_JOB = 8 * 2**30


def main(argv=None):
  names = REPRODUCTIONS.names()
  parser = argparse.ArgumentParser(prog="launch.sh reproduce",
                                   description="Reproduce a paper claim; writes reports/NAME/.")
  parser.add_argument("name", help=f"one of {names}, or 'all'")
  parser.add_argument("--tier", default="tiny", choices=TIERS,
                      help="tiny: under 10 min on a 2-core CPU; full: about 15 min on one GPU")
  parser.add_argument("--reports", default="reports", help="where reports/NAME/ go")
  parser.add_argument("--jobs", type=int, default=None,
                      help="with 'all': claims run at once, each on its share of the CPU "
                           "cores (default: the tiny tier on a CPU-only machine, one per "
                           "core while memory allows 8 GiB each; otherwise 1)")
  args = parser.parse_args(argv)
  pin_to_cores()
  if args.name != "all" and args.name not in REPRODUCTIONS:
    parser.exit(2, f"error: unknown reproduction {args.name!r}; valid: {names} or 'all'\n")
  cores = len(usable_cores())
  if args.jobs is not None and not 1 <= args.jobs <= cores:
    parser.exit(2, f"error: --jobs {args.jobs} is not valid: each job needs a CPU core of "
                   f"its own; choose 1 to {cores} (this process may use {cores})\n")
  todo = names if args.name == "all" else [args.name]
  jobs = 1 if len(todo) == 1 else (args.jobs or default_jobs(args.tier))
  total = time.perf_counter()
  if jobs == 1:
    lines, failures = run_in_process(todo, args.tier, args.reports)
  else:
    lines, failures = run_in_processes(todo, args.tier, args.reports, jobs)
  how = f", {jobs} at a time" if jobs > 1 else ""
  print(f"[reproduce] summary ({args.tier} tier, {time.perf_counter() - total:.0f} s in "
        f"all{how}): one line per claim", flush=True)
  for name in todo:
    print(f"  {lines[name]}", flush=True)
  for name, error in failures:
    print(f"[reproduce] FAILED {name}: {error}", file=sys.stderr)
  sys.exit(1 if failures else 0)


def default_jobs(tier: str) -> int:
  """One claim per core at the tiny tier on a CPU-only machine, as memory allows; 1 at
  the full tier or where an accelerator is present (claims would share one device)."""
  if tier != "tiny" or not hasattr(os, "sched_setaffinity"):
    return 1
  memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
  jobs = max(1, min(len(usable_cores()), memory // MEMORY_PER_JOB))
  return jobs if jobs > 1 and backend() == "cpu" else 1


def backend() -> str:
  """jax's default backend, asked in a child process so that this one never holds an
  accelerator its claims need."""
  probe = subprocess.run([sys.executable, "-c", "import jax; print(jax.default_backend())"],
                         capture_output=True, text=True,
                         env={**os.environ, "XLA_PYTHON_CLIENT_PREALLOCATE": "false"})
  return probe.stdout.strip().splitlines()[-1] if probe.returncode == 0 else "unknown"


def finished(name, seconds, out) -> str:
  """Prints that a claim finished; returns its summary line (verdict from results.json)."""
  print(f"[reproduce] {name}: {out / 'report.md'} ({seconds:.0f} s)", flush=True)
  verdict = json.loads((out / "results.json").read_text())["verdict"]
  return f"{name:<30} {verdict:<14} {seconds:6.0f} s  {out / 'report.md'}"


def failed(name, error) -> str:
  return f"{name:<30} FAILED ({error})"


def run_in_process(todo, tier, reports):
  from attn_research import compile_cache
  compile_cache.enable()
  lines, failures = {}, []
  for name in todo:
    start = time.perf_counter()
    print(f"[reproduce] {name} ({tier} tier)", flush=True)
    try:
      out = reproduce(name, tier, reports)
    except KeyboardInterrupt:
      sys.exit(130)
    except Exception as e:  # one failing reproduction does not stop the others
      traceback.print_exc()
      failures.append((name, f"{type(e).__name__}: {e}".splitlines()[0]))
      lines[name] = failed(*failures[-1])
      continue
    lines[name] = finished(name, time.perf_counter() - start, out)
  return lines, failures


def claim_command(name, tier, reports):
  """One claim in a process of its own (the command line, with one name)."""
  return [sys.executable, "-m", "attn_research.reproduce", name, "--tier", tier,
          "--reports", str(reports)]


def longest_first(names, tier, reports):
  """Claims whose last report at this tier took longest go first (the others, never run
  here, before them in name order), so that the last claim to start is a short one."""
  def seconds(name):
    try:
      results = json.loads((pathlib.Path(reports) / name / "results.json").read_text())
    except (OSError, json.JSONDecodeError):
      return float("inf")
    return results.get("seconds", float("inf")) if results.get("tier") == tier else float("inf")
  return sorted(names, key=lambda n: -seconds(n))


def run_in_processes(todo, tier, reports, jobs):
  """The untimed claims `jobs` at a time, each process pinned to its slot's cores; then the
  timed ones, one at a time on every core."""
  cores = usable_cores()
  slots = [cores[i::jobs] for i in range(jobs)]
  pooled = longest_first([n for n in todo if n not in TIMED], tier, reports)
  timed = [n for n in todo if n in TIMED]
  print(f"[reproduce] {len(pooled)} claim(s) {jobs} at a time on cores {slots}, then "
        f"{len(timed)} timed claim(s) alone ({', '.join(timed) or 'none'}); each claim's "
        f"output goes to {reports}/NAME/reproduce-{tier}.log", flush=True)
  lines, failures, running = {}, [], {}

  def start(name, slot_cores, concurrent):
    log_path = pathlib.Path(reports) / name / f"reproduce-{tier}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, **{CORES_ENV: ",".join(map(str, slot_cores))})
    if concurrent:
      env[CONCURRENT_ENV] = f"reproduce all --jobs {jobs}"
    else:
      env.pop(CONCURRENT_ENV, None)
    with open(log_path, "w") as log:
      proc = subprocess.Popen(claim_command(name, tier, reports), stdout=log,
                              stderr=subprocess.STDOUT, env=env)
    print(f"[reproduce] {name} started on core(s) {slot_cores}", flush=True)
    return proc, log_path, time.perf_counter()

  def finish(name, proc, log_path, began):
    seconds = time.perf_counter() - began
    out = pathlib.Path(reports) / name
    if proc.returncode == 0:
      lines[name] = finished(name, seconds, out)
      return
    tail = log_path.read_text(errors="replace").splitlines()
    marker = f"[reproduce] FAILED {name}: "
    error = next((line[len(marker):] for line in reversed(tail) if line.startswith(marker)),
                 f"exit status {proc.returncode}; see {log_path}")
    failures.append((name, error))
    lines[name] = failed(name, error)
    print(f"[reproduce] {name} FAILED after {seconds:.0f} s ({error}); the end of "
          f"{log_path}:\n" + "\n".join(tail[-15:]), flush=True)

  try:
    queue, free = list(pooled), list(range(jobs))
    while queue or running:
      while queue and free:
        slot = free.pop(0)
        name = queue.pop(0)
        running[name] = (*start(name, slots[slot], True), slot)
      time.sleep(0.2)
      for name, (proc, log_path, began, slot) in list(running.items()):
        if proc.poll() is not None:
          del running[name]
          free.append(slot)
          finish(name, proc, log_path, began)
    for name in timed:
      proc, log_path, began = start(name, cores, False)
      running[name] = (proc, log_path, began, None)
      proc.wait()
      del running[name]
      finish(name, proc, log_path, began)
  except KeyboardInterrupt:
    sys.exit(130)
  finally:
    for proc, *_ in running.values():
      proc.terminate()
  return lines, failures


if __name__ == "__main__":
  main()
