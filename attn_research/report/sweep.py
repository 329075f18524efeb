"""A sweep's results from its files: results.csv, results.md and one plot per axis.

Reads SWEEP_DIR/sweep.json (written by attn_research.sweep: the axes, and each run's
settings and workdir) and, per run, summary.json (finished) or sweep_exit.json (how its
last process ended); imports no train/ or models/, so it works while runs are going.

  results.csv  one row per run: settings, status (ok, failed, incomplete, pending),
               final eval metrics, parameters, wall time, the failure's last log line
  results.md   one row per setting (all axes but `seed`): n finished runs, and the mean
               +- sample standard deviation (ddof=1) over seeds of each eval metric
  <metric>_vs_<axis>.png
               per axis but `seed`: eval accuracy (loss where no run has accuracy)
               against the axis's values, one series per setting of the other axes,
               error bars one standard deviation over seeds

  python -m attn_research.report.sweep SWEEP_DIR      (./launch.sh report SWEEP_DIR)
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import pathlib
import re
import sys

from attn_research.workdir import SUMMARY, read_summary
from attn_research.report.plotting import pyplot
from attn_research.report.stats import summarize
from attn_research.report.table import markdown_table

SWEEP_FILE, LOG_FILE, EXIT_FILE = "sweep.json", "log.txt", "sweep_exit.json"
REPLICATE_KEY = "seed"  # runs that differ only in it are repeats of one setting


@dataclasses.dataclass
class RunResult:
  name: str
  settings: dict
  status: str                 # ok | failed | incomplete | pending
  eval: dict
  params: int | None = None
  wall_time_s: float | None = None
  error: str | None = None
  log: str | None = None


def read_record(sweep_dir) -> dict:
  """The sweep.json record of sweep_dir; ValueError when it has none."""
  path = pathlib.Path(sweep_dir) / SWEEP_FILE
  if not path.exists():
    raise ValueError(f"{sweep_dir} holds no {SWEEP_FILE}: not a sweep directory "
                     "(./launch.sh sweep writes one, with --launcher slurm too)")
  return json.loads(path.read_text())


def read_sweep(sweep_dir):
  """(sweep.json record, [RunResult]) from the files alone."""
  sweep_dir = pathlib.Path(sweep_dir)
  record = read_record(sweep_dir)
  results = []
  for run in record["runs"]:
    workdir = sweep_dir / run["workdir"]
    result = RunResult(run["name"], run["settings"], "pending", {},
                       log=str(workdir / LOG_FILE))
    exit_info = (json.loads((workdir / EXIT_FILE).read_text())
                 if (workdir / EXIT_FILE).exists() else {})
    if (workdir / SUMMARY).exists():
      summary = read_summary(workdir)
      result.status, result.eval = "ok", summary.get("final_eval") or {}
      result.params, result.wall_time_s = summary.get("params"), summary.get("wall_time_s")
    elif exit_info.get("error"):
      result.status, result.error = "failed", exit_info["error"]
    elif workdir.exists():
      result.status = "incomplete"  # running now, or interrupted
    results.append(result)
  return record, results


def setting_keys(record):
  return [k for axis in record["axes"] for k in axis["keys"]]


def eval_metrics(results):
  return sorted({m for r in results if r.status == "ok" for m, v in r.eval.items()
                 if isinstance(v, (int, float))})


def _cell(v):
  return "" if v is None else json.dumps(v) if isinstance(v, list) else str(v)


def write_csv(path, record, results):
  keys, metrics = setting_keys(record), eval_metrics(results)
  with open(path, "w", newline="") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(["run", *keys, "status", *(f"eval_{m}" for m in metrics), "params",
                "wall_time_s", "error"])
    for r in results:
      w.writerow([r.name, *(_cell(r.settings.get(k)) for k in keys), r.status,
                  *(_cell(r.eval.get(m)) for m in metrics), _cell(r.params),
                  _cell(r.wall_time_s), _cell(r.error)])


def group_by_setting(record, results):
  """{setting (tuple of JSON texts of every non-seed value): [RunResult]}, in run order."""
  keys = [k for k in setting_keys(record) if k != REPLICATE_KEY]
  groups = {}
  for r in results:
    groups.setdefault(tuple(json.dumps(r.settings[k]) for k in keys), []).append(r)
  return keys, groups


def settings_table(record, results):
  keys, groups = group_by_setting(record, results)
  metrics = eval_metrics(results)
  rows = []
  for members in groups.values():
    done = [r for r in members if r.status == "ok"]
    n = str(len(done)) if len(done) == len(members) else f"{len(done)} of {len(members)}"
    params = sorted({r.params for r in done if r.params is not None})
    walls = [r.wall_time_s for r in done if r.wall_time_s is not None]
    rows.append((*(_show(members[0].settings[k]) for k in keys), n,
                 *(summarize(r.eval.get(m) for r in done).format() for m in metrics),
                 _range(params),
                 f"{summarize(walls).mean:.1f}" if walls else "n/a"))
  columns = [*keys, "n", *(f"eval {m}" for m in metrics), "params", "wall time (s)"]
  return markdown_table(columns, rows)


def _range(params):
  if not params:
    return "n/a"
  return f"{params[0]:,}" if len(params) == 1 else f"{params[0]:,}-{params[-1]:,}"


def _show(v):
  return ", ".join(_show(x) for x in v) if isinstance(v, list) else str(v)


def write_markdown(path, record, results, table):
  counts = {s: sum(r.status == s for r in results) for s in ("ok", "failed", "incomplete",
                                                               "pending")}
  overrides = " ".join(f"`--config.{k}={v}`" for k, v in record["overrides"]) or "none"
  lines = [f"# Sweep of `{record['config']}`", "",
           f"{len(results)} runs: {counts['ok']} finished, {counts['failed']} failed, "
           f"{counts['incomplete']} incomplete, {counts['pending']} not started. "
           f"Overrides for every run: {overrides}.", "",
           "Eval metrics at each run's final step: mean ± sample standard deviation "
           "(ddof=1) over seeds; n = finished runs of the setting.", "", table, ""]
  failed = [r for r in results if r.status == "failed"]
  if failed:
    lines += ["## Failed runs", ""]
    lines += [f"- `{r.name}`: {r.error} (log: `{r.log}`)" for r in failed]
    lines.append("")
  pathlib.Path(path).write_text("\n".join(lines))


def _safe(text):
  return re.sub(r"[^A-Za-z0-9._+=,\-]", "_", text)


def plot_axes(sweep_dir, record, results, metric):
  """One PNG per non-seed axis: metric against the axis, a series per other setting."""
  plt = pyplot()

  axes = [a for a in record["axes"] if a["keys"] != [REPLICATE_KEY]]
  done = [r for r in results if r.status == "ok" and r.eval.get(metric) is not None]
  paths = []
  for axis in axes:
    others = [k for a in axes if a is not axis for k in a["keys"]]
    points = [json.dumps(p) for p in axis["values"]]
    series = {}
    for r in done:
      x = points.index(json.dumps([r.settings[k] for k in axis["keys"]]))
      label = ", ".join(f"{k}={_show(r.settings[k])}" for k in others) or "all runs"
      series.setdefault(label, {}).setdefault(x, []).append(r.eval[metric])
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool)
                  for p in axis["values"] for v in p)
    fig, ax = plt.subplots(figsize=(max(4.5, 1.1 * len(points) + 2.5), 3.8))
    width = 0.5 / max(len(series), 1)
    for j, (label, by_x) in enumerate(series.items()):
      xs = sorted(by_x)
      offset = (j - (len(series) - 1) / 2) * width
      points_stats = [summarize(by_x[x]) for x in xs]
      ax.errorbar([x + offset for x in xs], [st.mean for st in points_stats],
                  yerr=[st.std or 0.0 for st in points_stats],
                  fmt="o-" if numeric else "o", capsize=3, label=label)
    ax.set_xticks(range(len(points)), [_show(p if len(p) > 1 else p[0])
                                       for p in axis["values"]])
    ax.set_xlim(-0.5, len(points) - 0.5)
    name = "+".join(axis["keys"])
    ax.set(xlabel=name, ylabel=f"eval {metric}",
           title=f"eval {metric}: mean ± std over seeds")
    ax.grid(alpha=0.3)
    if len(series) > 1:
      ax.legend(fontsize=7)
    fig.tight_layout()
    path = pathlib.Path(sweep_dir) / f"{metric}_vs_{_safe(name)}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    paths.append(path)
  return paths


def write_report(sweep_dir):
  """Writes results.csv, results.md and the plots; returns their paths and the table."""
  sweep_dir = pathlib.Path(sweep_dir)
  record, results = read_sweep(sweep_dir)
  table = settings_table(record, results)
  write_csv(sweep_dir / "results.csv", record, results)
  write_markdown(sweep_dir / "results.md", record, results, table)
  metrics = eval_metrics(results)
  metric = "accuracy" if "accuracy" in metrics else "loss" if "loss" in metrics else None
  plots = plot_axes(sweep_dir, record, results, metric) if metric else []
  return {"csv": sweep_dir / "results.csv", "md": sweep_dir / "results.md", "plots": plots,
          "table": table}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="launch.sh report",
                                   description="Aggregate a sweep directory's results.")
  parser.add_argument("sweep_dir", help="a directory written by ./launch.sh sweep")
  args = parser.parse_args(argv)
  try:
    report = write_report(args.sweep_dir)
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(report["table"] + "\n")
  print("results: " + ", ".join(str(p) for p in [report["md"], report["csv"],
                                                 *report["plots"]]))
  return 0


if __name__ == "__main__":
  sys.exit(main())
