"""The data-efficiency table and curve of a transfer run (reads WORKDIR/transfer.json only).

transfer.json, written by attn_research/modes/transfer.py, holds every fine-tuning run
(arm, label fraction, seed, labelled examples, best validation and test metrics), the
pretraining run's summary and the test split's chance and majority rates.
"""
from __future__ import annotations

import json
import pathlib

from attn_research.report.plotting import pyplot, save
from attn_research.report.stats import summarize
from attn_research.report.table import markdown_table

ARM_LABELS = {"scratch": "from scratch", "finetune": "pretrained, fine-tuned",
              "probe": "pretrained, frozen (linear probe)"}


def read_transfer(workdir) -> dict:
  return json.loads((pathlib.Path(workdir) / "transfer.json").read_text())


def by_cell(data: dict) -> dict:
  """{(arm, fraction): [run, ...] in seed order}."""
  cells = {}
  for r in sorted(data["runs"], key=lambda r: r["seed"]):
    cells.setdefault((r["arm"], r["fraction"]), []).append(r)
  return cells


def paired_differences(data: dict, arm: str, baseline: str = "scratch") -> dict:
  """{fraction: [test accuracy of arm - of baseline, per seed both ran]}: pairs share the
  seed, hence the label subset, the head's initialisation and the batch order."""
  cells, out = by_cell(data), {}
  for (a, fraction), runs in cells.items():
    if a != arm or (baseline, fraction) not in cells:
      continue
    base = {r["seed"]: r["test"]["accuracy"] for r in cells[baseline, fraction]}
    out[fraction] = [r["test"]["accuracy"] - base[r["seed"]] for r in runs if r["seed"] in base]
  return out


def transfer_table(data: dict) -> str:
  rates = data["test_rates"]
  rows = []
  for (arm, fraction), runs in sorted(by_cell(data).items(), key=lambda kv: (kv[0][1], kv[0][0])):
    test = summarize([r["test"]["accuracy"] for r in runs])
    val = summarize([r["validation"]["accuracy"] for r in runs])
    chosen = summarize([r["test"]["step"] for r in runs]).mean
    steps = runs[0].get("steps")  # absent in transfer.json files written before 2026-11-30
    rows.append((f"{fraction:.0%}", f"{runs[0]['labels']:,}", ARM_LABELS.get(arm, arm),
                 test.format(".3f", spread="ci95", show_n=True), val.format(".3f"),
                 f"{'?' if steps is None else steps} ({chosen:.0f})",
                 f"{rates['chance']:.3f} / {rates['majority']:.3f}"))
  return markdown_table(("labels", "labelled examples", "encoder",
                         "test accuracy (mean ± 95 % CI)", "best validation accuracy (mean ± std)",
                         "steps (best-on-validation step, mean)", "chance / majority"), rows)


def plot_transfer(data: dict, path):
  plt = pyplot()
  fig, ax = plt.subplots(figsize=(6.5, 4))
  cells = by_cell(data)
  for arm in dict.fromkeys(a for a, _ in cells):
    keys = sorted((k for k in cells if k[0] == arm), key=lambda k: k[1])
    stats = [summarize([r["test"]["accuracy"] for r in cells[k]]) for k in keys]
    labels = [cells[k][0]["labels"] for k in keys]
    ax.errorbar(labels, [s.mean for s in stats], yerr=[s.ci95 or 0 for s in stats], fmt="o-",
                capsize=3, label=ARM_LABELS.get(arm, arm))
  rates = data["test_rates"]
  ax.axhline(rates["majority"], color="gray", ls="--", lw=1,
             label=f"majority ({rates['majority_class']})")
  ax.axhline(rates["chance"], color="gray", ls=":", lw=1, label="chance")
  ax.set(xscale="log", xlabel="labelled training examples (log scale)",
         ylabel=f"test accuracy ({rates['examples']:,} examples)",
         title=f"data efficiency on {data['task']} (mean ± 95 % CI over seeds)")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  save(fig, path, dpi=120)


def write_transfer(workdir):
  """Writes transfer.md and transfer.png into workdir; returns (table, png path)."""
  workdir = pathlib.Path(workdir)
  data = read_transfer(workdir)
  table = transfer_table(data)
  pre = data["pretrain"]
  what = {"classification": "classification", "masked_lm": "masked tokens"}.get(
      pre.get("objective", "masked_lm"), pre.get("objective"))
  pre_eval = ", ".join(f"{k} {v:.3f}" for k, v in (pre["final_eval"] or {}).items())
  header = (f"# Pretraining and fine-tuning on `{data['task']}`\n\nEncoder pretrained on "
            f"`{pre['task']}` for {pre['steps']} steps ({what}; eval {pre_eval}), "
            "then fine-tuned with a share of the labels, against the same model from "
            "scratch; each run's best-on-validation checkpoint scored once on the test "
            "split.\n\n")
  (workdir / "transfer.md").write_text(header + table + "\n")
  png = workdir / "transfer.png"
  plot_transfer(data, png)
  return table, png
