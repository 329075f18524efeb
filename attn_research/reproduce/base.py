"""What every reproduction shares: a registry, the report it returns, and how reports are
written to reports/NAME/ (report.md, results.json, PNG figures).

A reproduction is a function `run(tier, out_dir) -> Report` registered under its name.
`tier` is "tiny" (under 10 minutes on a 2-core CPU; shows the claim's direction) or
"full" (sized for about 15 minutes on one H100/H200; the paper's setup where the data
exists here). Training runs go to out_dir/runs/<tier>/... and are resumed, never
overwritten; the report files are rewritten on every call, and a previous report made
at the other tier is moved to out_dir/archive/<tier>-<time>/ first.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import os
import pathlib
import shutil
import time

import jax

from attn_research.cores import usable_cores
from attn_research.registry import Registry, check_choice
from attn_research.reproduce.protocol import check_verdict
from attn_research.report.table import markdown_table  # noqa: F401  (re-exported)
from attn_research.workdir import SUMMARY, DirectoryLock

TIERS = ("tiny", "full")
SMOKE = "smoke"  # seconds-long sizes for the tests; not offered on the command line
REPRODUCTIONS = Registry("reproduce")
REPORT_FILES = ("report.md", "results.json")
# Claims whose verdict rests on wall-clock speed: `reproduce all` runs them with every core
# and nothing else running, after the others (reproduce/__main__.py).
TIMED = set()
# Set by `reproduce all --jobs N` (N > 1) in each claim's process: the report says its
# timings were taken beside other reproductions.
CONCURRENT_ENV = "ATTN_REPRODUCE_CONCURRENT"


def register_reproduction(name: str, *, timed: bool = False):
  """Decorator for run(tier, out_dir) -> Report. timed: the verdict rests on wall-clock
  speed, so the claim never shares the machine with another reproduction."""
  if timed:
    TIMED.add(name)
  return REPRODUCTIONS.register(name)


@dataclasses.dataclass
class Report:
  claim: str                    # the paper's claim, one or two sentences, with its source
  tables: list                  # markdown tables (our numbers)
  paper: str                    # the paper's number(s) beside ours, or why it gives none
  differences: str              # what differs from the paper's setup, and why
  results: dict                 # everything measured, for results.json
  figures: list = dataclasses.field(default_factory=list)  # PNG names inside out_dir
  verdict: str = ""             # one line: what our numbers show, with those that decided it
  criterion: str = ""           # the rule the verdict follows, written before the run
  verdict_label: str = ""       # protocol.VERDICTS: supported / not supported / inconclusive


def check_tier(tier: str):
  check_choice("--tier", tier, TIERS + (SMOKE,))


def _archive_other_tier(out_dir: pathlib.Path, tier: str):
  results = out_dir / "results.json"
  if not results.exists():
    return
  try:
    old_tier = json.loads(results.read_text()).get("tier")
  except (json.JSONDecodeError, OSError):
    old_tier = "unknown"
  if old_tier == tier:
    return
  stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
  archive = out_dir / "archive" / f"{old_tier}-{stamp}"
  archive.mkdir(parents=True)
  for path in out_dir.iterdir():
    if path.is_file() and (path.name in REPORT_FILES or path.suffix == ".png"):
      shutil.move(str(path), archive / path.name)
  print(f"[reproduce] the previous {old_tier} report was moved to {archive}")


def finished_runs(out_dir: pathlib.Path, tier: str) -> int:
  """Training runs of this tier already finished (they are reused, not retrained)."""
  return sum(1 for _ in (out_dir / "runs" / tier).rglob(SUMMARY))


def check_report(name: str, report: Report):
  """A report states its criterion and a verdict computed from it (the protocol)."""
  if not report.criterion:
    raise ValueError(f"reproduction {name!r} returned no criterion: every claim states the "
                     "rule its verdict follows, written before the run")
  check_verdict(report.verdict_label)


def write_report(name: str, tier: str, out_dir: pathlib.Path, report: Report, seconds: float,
                 reused: int = 0):
  check_report(name, report)
  command = f"./launch.sh reproduce {name} --tier {tier}"
  device = jax.devices()[0]
  reuse = (f"; {reused} finished training run(s) reused from an earlier call, their "
           "training time not included" if reused else "")
  cores = len(usable_cores())
  concurrent = os.environ.get(CONCURRENT_ENV, "")
  beside = (f", on {cores} of {os.cpu_count()} CPU cores beside other reproductions "
            f"({concurrent}; its speeds are those cores')" if concurrent else "")
  lines = [f"# {name} ({tier} tier)", "", f"**Claim.** {report.claim}", "",
           f"**Command.** `{command}` ({seconds:.0f} s on {device.device_kind}, "
           f"{jax.device_count()} device(s){beside}, {datetime.date.today().isoformat()}"
           f"{reuse})", ""]
  lines += [f"**Verdict: {report.verdict_label}.** {report.verdict}", "",
            f"**Criterion (fixed before the run).** {report.criterion}", ""]
  lines += ["## Our results", ""]
  for table in report.tables:
    lines += [table, ""]
  lines += [f"![{fig}]({fig})" for fig in report.figures]
  lines += ["", "## The paper", "", report.paper, "", "## What differs and why", "",
            report.differences, ""]
  (out_dir / "report.md").write_text("\n".join(lines))
  payload = dict(name=name, tier=tier, command=command, seconds=round(seconds, 1),
                 reused_runs=reused, cpu_cores=cores, concurrent=concurrent,
                 device=device.device_kind, verdict=report.verdict_label,
                 verdict_detail=report.verdict, criterion=report.criterion,
                 results=report.results)
  (out_dir / "results.json").write_text(json.dumps(payload, indent=2, default=float) + "\n")


def reproduce(name: str, tier: str = "tiny", reports_dir="reports") -> pathlib.Path:
  """Runs one reproduction and writes reports/NAME/; returns that directory. A second
  process reproducing the same NAME into the same reports dir is refused at once
  (DirectoryInUseError naming the first one's pid and host)."""
  check_tier(tier)
  run_fn = REPRODUCTIONS.get(name)
  out_dir = pathlib.Path(reports_dir) / name
  with DirectoryLock(out_dir, what="report directory"):  # creates out_dir
    _archive_other_tier(out_dir, tier)
    reused = finished_runs(out_dir, tier)
    start = time.perf_counter()
    report = run_fn(tier, out_dir)
    missing = [f for f in report.figures if not (out_dir / f).exists()]
    if missing:
      raise RuntimeError(f"reproduction {name!r} promised figures it did not write: {missing}")
    write_report(name, tier, out_dir, report, time.perf_counter() - start, reused)
  return out_dir
