"""Running a plan's unfinished runs as separate processes, N at a time, one log each."""
from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shlex
import signal
import subprocess
import sys
import time

from attn_research.report.sweep import EXIT_FILE, LOG_FILE
from attn_research.sweep.plan import Plan, Run
from attn_research.workdir import SUMMARY, read_summary


def main_command(run: Run, plan: Plan):
  return [sys.executable, "-m", "attn_research.main", "--config", plan.spec,
          "--workdir", str(run.workdir), "--no-progress", *run.flags]


@dataclasses.dataclass
class Failure:
  name: str
  returncode: int
  error: str
  log: pathlib.Path


def _last_line(path, offset):
  with open(path, "rb") as f:
    f.seek(offset)
    lines = [l.strip() for l in f.read().decode(errors="replace").splitlines()]
  lines = [l for l in lines if l]
  return lines[-1][:300] if lines else ""


def _eval_text(workdir):
  ev = read_summary(workdir).get("final_eval") or {}
  return ", ".join(f"eval {k} {v:.4f}" for k, v in sorted(ev.items())
                   if isinstance(v, (int, float)))


def run_all(plan: Plan, *, parallel=1, command=main_command, echo=print):
  """Runs the unfinished runs, `parallel` at a time; returns (failures, trained, skipped).

  Each child gets its own session so a Ctrl-C reaches it once, forwarded from here:
  it saves a checkpoint and exits; the same command again resumes it."""
  total = len(plan.runs)
  todo = [(i, r) for i, r in enumerate(plan.runs) if not (r.workdir / SUMMARY).exists()]
  skipped, trained, failures, running = total - len(todo), 0, [], {}
  if skipped:
    echo(f"{skipped} of {total} runs already finished: skipped")

  def start(i, run):
    run.workdir.mkdir(parents=True, exist_ok=True)
    (run.workdir / EXIT_FILE).unlink(missing_ok=True)
    log = run.workdir / LOG_FILE
    argv = command(run, plan)
    with open(log, "ab") as f:
      f.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} {shlex.join(argv)}\n".encode())
      f.flush()
      offset = f.tell()
      proc = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, start_new_session=True,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
    running[proc] = (i, run, offset, time.perf_counter())
    echo(f"[{i + 1}/{total}] start  {run.name}")

  def finish(proc):
    nonlocal trained
    i, run, offset, t0 = running.pop(proc)
    seconds, rc, log = time.perf_counter() - t0, proc.returncode, run.workdir / LOG_FILE
    error = None
    if rc == 0 and (run.workdir / SUMMARY).exists():
      trained += 1
      echo(f"[{i + 1}/{total}] done   {run.name} ({seconds:.1f} s; {_eval_text(run.workdir)})")
    else:
      error = _last_line(log, offset) or "(no output)"
      if rc == 0:
        error = f"exited 0 without writing {SUMMARY}; last line: {error}"
      failures.append(Failure(run.name, rc, error, log))
      echo(f"[{i + 1}/{total}] FAILED {run.name} (exit {rc}): {error}")
    (run.workdir / EXIT_FILE).write_text(json.dumps(
        {"returncode": rc, "error": error, "seconds": seconds, "log": str(log)}) + "\n")

  try:
    while todo or running:
      while todo and len(running) < parallel:
        start(*todo.pop(0))
      for proc in [p for p in running if p.poll() is not None]:
        finish(proc)
      time.sleep(0.05)
  except KeyboardInterrupt:
    for proc in running:
      proc.send_signal(signal.SIGINT)
    for proc in running:
      try:
        proc.wait(timeout=120)
      except subprocess.TimeoutExpired:
        proc.kill()
    raise
  return failures, trained, skipped


def summary_text(plan, failures, trained, skipped):
  total = len(plan.runs)
  lines = [f"{total} runs: {trained} trained now, {skipped} finished earlier, "
           f"{len(failures)} failed"]
  for f in failures:
    lines += [f"  FAILED {f.name} (exit {f.returncode}): {f.error}", f"    log: {f.log}"]
  return "\n".join(lines)


