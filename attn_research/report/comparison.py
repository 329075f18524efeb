"""The comparison table and plot of several models, each run with one or more seeds
(reads their workdirs only).

A model's row aggregates its seeds: eval accuracy as mean ± sample standard deviation
(n - 1 in the denominator) with n shown, train examples/s and wall time as means.
Parameters, FLOPs per example and peak memory depend on the settings, not the seed.
"""
from __future__ import annotations

import os
import pathlib

from attn_research.workdir import read_config, read_metrics, read_summary
from attn_research.report.plotting import pyplot, save
from attn_research.report.stats import summarize
from attn_research.report.table import markdown_table

COLUMNS = ("model", "parameters", "MFLOPs/example", "peak train-step memory (MiB)",
           "train examples/s", "MFU (%)", "eval accuracy (mean ± std)", "wall time (s)")
MIB = 2**20


def _fmt(x, spec):
  return "n/a" if x is None else format(x, spec)


def _mean(values):
  return summarize(values).mean


def _runs_by_model(runs: dict) -> dict:
  """{model: run dir or [run dirs]} -> {model: [Path, ...]}."""
  return {name: [pathlib.Path(d) for d in ([dirs] if isinstance(dirs, (str, os.PathLike))
                                           else dirs)]
          for name, dirs in runs.items()}


def model_stats(run_dirs) -> dict:
  """One model's numbers aggregated over its runs (seeds)."""
  summaries = [read_summary(d) for d in run_dirs]
  first = summaries[0]
  accuracy = [(s.get("final_eval") or {}).get("accuracy") for s in summaries]
  peaks = [s.get("train_step_peak_bytes") for s in summaries if s.get("train_step_peak_bytes")]
  # Summaries written before FLOPs unrolled loops lack train_step_peak_bytes and may
  # count FLOPs otherwise (n/a for loops): the current count wins when there is one.
  current_first = sorted(summaries, key=lambda s: "train_step_peak_bytes" not in s)
  flops = next((s["flops_per_example"] for s in current_first
                if s.get("flops_per_example") is not None), None)
  return {"params": first["params"], "flops_per_example": flops,
          "train_step_peak_bytes": max(peaks) if peaks else None,
          "train_examples_per_second": _mean(s.get("train_examples_per_second")
                                             for s in summaries),
          # Summaries written before utilisation was recorded have no mfu: n/a.
          "mfu": _mean(s.get("mfu") for s in summaries),
          "accuracy": accuracy, "wall_time_s": _mean(s.get("wall_time_s") for s in summaries)}


def comparison_rows(runs: dict):
  rows = []
  for name, run_dirs in _runs_by_model(runs).items():
    st = model_stats(run_dirs)
    flops, peak = st["flops_per_example"], st["train_step_peak_bytes"]
    rows.append((name, f"{st['params']:,}", _fmt(None if flops is None else flops / 1e6, ".2f"),
                 _fmt(None if peak is None else peak / MIB, ",.1f"),
                 _fmt(st["train_examples_per_second"], ",.0f"),
                 _fmt(None if st["mfu"] is None else 100 * st["mfu"], ".2f"),
                 summarize(st["accuracy"]).format(show_n=True),
                 _fmt(st["wall_time_s"], ".1f")))
  return rows


def mean_curve(run_dirs, split, key):
  """(steps, mean, std) of a metric over the runs, at the steps every run logged."""
  per_run = [{r["step"]: r[key] for r in read_metrics(d, split) if key in r} for d in run_dirs]
  steps = sorted(set.intersection(*(set(c) for c in per_run))) if per_run else []
  stats = [summarize([c[s] for c in per_run]) for s in steps]
  return steps, [st.mean for st in stats], [st.std or 0.0 for st in stats]


def plot_comparison(runs: dict, path):
  """Loss curves, eval accuracy curves (mean over seeds, ± std shaded) and eval accuracy
  against FLOPs per example (log x; error bar: std over seeds)."""
  plt = pyplot()
  from matplotlib import ticker

  by_model = _runs_by_model(runs)
  fig, (ax_loss, ax_acc, ax_flops) = plt.subplots(1, 3, figsize=(16, 4))
  missing = []
  for name, run_dirs in by_model.items():
    steps, loss, _ = mean_curve(run_dirs, "train", "loss")
    line, = ax_loss.plot(steps, loss, label=f"{name} train")
    color = line.get_color()
    steps, loss, _ = mean_curve(run_dirs, "eval", "loss")
    ax_loss.plot(steps, loss, "o--", color=color, label=f"{name} eval")
    steps, acc, std = mean_curve(run_dirs, "eval", "accuracy")
    ax_acc.plot(steps, acc, "o-", color=color, label=name)
    if len(run_dirs) > 1:
      ax_acc.fill_between(steps, [a - s for a, s in zip(acc, std)],
                          [a + s for a, s in zip(acc, std)], color=color, alpha=0.2)
    st = model_stats(run_dirs)
    final = summarize(st["accuracy"])
    if st["flops_per_example"] is None or final.mean is None:
      missing.append(name)
      continue
    ax_flops.errorbar([st["flops_per_example"]], [final.mean], yerr=[final.std or 0.0],
                      fmt="o", capsize=4, color=color, label=f"{name} (n={final.n})")
  n_seeds = max(len(d) for d in by_model.values())
  ax_loss.set(xlabel="step", ylabel="cross-entropy", yscale="log",
              title="loss" + (f" (mean of {n_seeds} seeds)" if n_seeds > 1 else ""))
  ax_acc.set(xlabel="step", ylabel="accuracy", ylim=(0, 1),
             title="eval accuracy" + (" (mean ± std over seeds)" if n_seeds > 1 else ""))
  ax_flops.set(xlabel="FLOPs per example (forward)", ylabel="final eval accuracy",
               xscale="log", title="accuracy vs compute"
               + (f" (no FLOPs: {', '.join(missing)})" if missing else ""))
  if len(missing) < len(by_model):  # pad to a readable range; label 1, 2, 5 x 10^k
    lo, hi = ax_flops.get_xlim()
    ax_flops.set_xlim(min(lo, hi / 4), max(hi, lo * 4))
    ax_flops.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax_flops.xaxis.set_major_formatter(ticker.EngFormatter())
    ax_flops.xaxis.set_minor_formatter(ticker.NullFormatter())
  for ax in (ax_loss, ax_acc, ax_flops):
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  save(fig, path, dpi=120)


def write_comparison(workdir, runs: dict):
  """Writes comparison.md and comparison.png into workdir; runs maps each model to its
  run dir or to a list of run dirs (one per seed). Returns (table text, png path)."""
  workdir = pathlib.Path(workdir)
  by_model = _runs_by_model(runs)
  first_dir = next(iter(by_model.values()))[0]
  first = read_summary(first_dir)
  seeds = [(read_config(d) or {}).get("seed") for d in next(iter(by_model.values()))]
  table = markdown_table(COLUMNS, comparison_rows(by_model))
  header = (
      f"# Comparison on `{first['task']}`\n\nSame data, steps and optimizer for every model; "
      f"eval metrics at the final step ({first['step']}); seeds "
      f"{', '.join(str(s) for s in seeds)}. Device: {first['device']['kind']} "
      f"x{first['device']['count']}.\n\n"
      "Eval accuracy: mean ± sample standard deviation over the n seeds. Train examples/s "
      "(first, compiling step excluded) and wall time (compiling included): means over the "
      "seeds. MFLOPs/example: the forward pass of one example (XLA cost analysis, loops "
      "unrolled). Peak memory: XLA's compile-time estimate for the train step (arguments + "
      "outputs + temporaries - donated buffers). MFU: model FLOPs per train step (3 x "
      "forward FLOPs per example x batch) x steps/s over the device's peak FLOP/s ("
      f"{first.get('peak_flops_source') or 'not recorded'}), mean over the seeds.\n\n")
  (workdir / "comparison.md").write_text(header + table + "\n")
  png = workdir / "comparison.png"
  plot_comparison(by_model, png)
  return table, png
