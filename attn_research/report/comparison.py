"""The comparison table and learning-curve plot of several runs (reads their workdirs)."""
from __future__ import annotations

import pathlib

from attn_research.report.files import read_metrics, read_summary

COLUMNS = ("model", "parameters", "eval accuracy", "eval loss", "train examples/s",
           "MFLOPs/example", "wall time (s)")


def _fmt(x, spec):
  return "n/a" if x is None else format(x, spec)


def comparison_rows(runs: dict):
  rows = []
  for name, run_dir in runs.items():
    s = read_summary(run_dir)
    ev = s.get("final_eval") or {}
    flops = s.get("flops_per_example")
    rows.append((name, f"{s['params']:,}", _fmt(ev.get("accuracy"), ".4f"),
                 _fmt(ev.get("loss"), ".4f"), _fmt(s.get("train_examples_per_second"), ",.0f"),
                 _fmt(None if flops is None else flops / 1e6, ".2f"),
                 _fmt(s.get("wall_time_s"), ".1f")))
  return rows


def markdown_table(columns, rows):
  lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
  lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
  return "\n".join(lines)


def plot_learning_curves(runs: dict, path):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
  for name, run_dir in runs.items():
    train, evals = read_metrics(run_dir, "train"), read_metrics(run_dir, "eval")
    line, = ax_loss.plot([r["step"] for r in train], [r["loss"] for r in train],
                         label=f"{name} train")
    ax_loss.plot([r["step"] for r in evals], [r["loss"] for r in evals], "o--",
                 color=line.get_color(), label=f"{name} eval")
    ax_acc.plot([r["step"] for r in evals], [r["accuracy"] for r in evals], "o-",
                color=line.get_color(), label=name)
  ax_loss.set(xlabel="step", ylabel="cross-entropy", yscale="log", title="loss")
  ax_acc.set(xlabel="step", ylabel="accuracy", title="eval accuracy", ylim=(0, 1))
  for ax in (ax_loss, ax_acc):
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def write_comparison(workdir, runs: dict):
  """Writes comparison.md and comparison.png into workdir; returns (table text, png path)."""
  workdir = pathlib.Path(workdir)
  first = read_summary(next(iter(runs.values())))
  table = markdown_table(COLUMNS, comparison_rows(runs))
  header = (f"# Comparison on `{first['task']}`\n\nSame data, steps and optimizer for every "
            f"model; eval metrics at the final step ({first['step']}). Device: "
            f"{first['device']['kind']} x{first['device']['count']}.\n\n")
  (workdir / "comparison.md").write_text(header + table + "\n")
  png = workdir / "comparison.png"
  plot_learning_curves(runs, png)
  return table, png
