"""The length-extrapolation table and plot (reads WORKDIR/extrapolation.json only).

extrapolation.json, written by attn_research/modes/extrapolation.py, holds per encoding the
evaluation accuracy and loss at each evaluated length (factor x the training length).
"""
from __future__ import annotations

import json
import pathlib

from attn_research.report.table import markdown_table
from attn_research.report.plotting import pyplot, save


def read_extrapolation(workdir) -> dict:
  return json.loads((pathlib.Path(workdir) / "extrapolation.json").read_text())


def extrapolation_table(data: dict) -> str:
  results = data["results"]
  first = next(iter(results.values()))
  columns = ["position", "parameters"] + [
      f"accuracy at {'' if e['factor'] == 1 else e['factor']}L = {e['length']}"
      + (" (trained)" if e["factor"] == 1 else "") for e in first["evals"]]
  rows = [[name, f"{r['params']:,}"] + [f"{e['accuracy']:.3f}" for e in r["evals"]]
          for name, r in results.items()]
  return markdown_table(columns, rows)


def plot_extrapolation(data: dict, path):
  plt = pyplot()

  fig, ax = plt.subplots(figsize=(6.5, 4))
  lengths = []
  for name, r in data["results"].items():
    lengths = [e["length"] for e in r["evals"]]
    ax.plot(lengths, [e["accuracy"] for e in r["evals"]], "o-", label=name)
  ax.axhline(1 / data["num_classes"], color="gray", ls="--", lw=1, label="chance")
  ax.set(xscale="log", xticks=lengths, xticklabels=[str(n) for n in lengths],
         xlabel="evaluation length (vectors; the first is the training length)",
         ylabel="eval accuracy", ylim=(0, 1.02), title=f"length extrapolation: {data['task']}")
  ax.minorticks_off()
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  save(fig, path, dpi=120)


def write_extrapolation(workdir):
  """Writes extrapolation.md and extrapolation.png into workdir; returns (table, png path)."""
  workdir = pathlib.Path(workdir)
  data = read_extrapolation(workdir)
  first = next(iter(data["results"].values()))
  table = extrapolation_table(data)
  header = (f"# Length extrapolation on `{data['task']}`\n\nEach model trained for "
            f"{first['steps']} steps at length L = {first['train_length']}, then evaluated "
            f"with the same parameters at longer lengths (chance: {1 / data['num_classes']:.3f}). "
            "Models are built for the longest length: learned positions past L are rows "
            "training never reached.\n\n")
  (workdir / "extrapolation.md").write_text(header + table + "\n")
  png = workdir / "extrapolation.png"
  plot_extrapolation(data, png)
  return table, png
