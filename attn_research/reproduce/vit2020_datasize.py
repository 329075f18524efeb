"""Accuracy against training-set size: a CNN wins with little data, self-attention catches up.

Dosovitskiy et al. 2020 (arXiv 2010.11929), at CPU scale on MNIST-1D (Greydanus and Kobak
2020). Config: experiments/repro/vit2020_datasize.py (one arm per comparison config: the
ViT over patches, the ViT over single samples, the official ConvBase CNN).

The protocol: at every size the last min(20 %, 1,000) of the training signals are the
validation set, each run keeps its best-on-validation checkpoint, and that checkpoint is
scored once on MNIST-1D's fixed 1,000 test signals (common.train_and_test). Training
length is a number of epochs per size capped in steps (steps_for); whether validation
accuracy plateaued is measured per run (protocol.plateaued). Accuracy is fitted against
log10 N per arm and seed (reproduce/datasize_fit.py); the CRITERION below was fixed
before the tiny tier ran and `verdict` applies it to results.json's numbers.
"""
from __future__ import annotations

import math

import numpy as np

from attn_research.config import load_config
from attn_research.reproduce import common, datasize_fit
from attn_research.reproduce.base import Report, markdown_table, register_reproduction
from attn_research.reproduce.protocol import (format_ci, format_p, label_rates, plateaued,
                                              seeds_for)
from attn_research.report.plotting import pyplot, save
from attn_research.workdir import read_metrics

ARMS = ("vit_patches", "vit_samples", "cnn")
DECIDING, BASELINE = "vit_patches", "cnn"
LABELS = {"vit_patches": "ViT, patches of 4 samples", "vit_samples": "ViT, one vector per sample",
          "cnn": "CNN (official ConvBase)"}
SIZES = {"smoke": (500, 1000), "tiny": (1000, 4000, 16000, 32000),
         "full": (1000, 3000, 10000, 30000, 100000)}
# Epochs per size, capped in steps (per arm: the ViT over 40 samples costs ~4x the
# patches' CPU time per example), and how many validation evaluations per run.
SCHEDULE = {
    "smoke": dict(epochs=1, cap={}, default_cap=4, evals=2),
    "tiny": dict(epochs=100, cap={"vit_samples": 600}, default_cap=3000, evals=12),
    "full": dict(epochs=200, cap={}, default_cap=10000, evals=20),
}
VALIDATION_SHARE, VALIDATION_MAX = 0.2, 1000
ALPHA = 0.05
CRITERION = (
    "Decided on the ViT over patches of 4 samples (the paper's tokenisation) against the "
    "CNN (MNIST-1D's official ConvBase), by the test accuracy of each run's best-on-"
    "validation checkpoint, paired over seeds. Supported if (a) the CNN leads at the "
    "smallest size (CNN minus ViT: mean > 0, one-sided paired t-test p < 0.05) and (b) the "
    "ViT's gap narrows with N: the per-seed least-squares slope of test accuracy against "
    "log10 N (per decade) is larger for the ViT than for the CNN (paired difference: mean "
    "> 0, one-sided p < 0.05). Not supported if the mean of (a) or of (b) is <= 0 (the ViT "
    "does not trail with little data, or its gap does not narrow). Inconclusive otherwise, "
    "and whenever training was too short to judge: if at any size the ViT's or the CNN's "
    "validation accuracy had not plateaued (protocol.plateaued: < 1 point gained in the last "
    "quarter of its evaluations) in a majority of seeds, a supported or not-supported "
    "outcome is reported as inconclusive (compute-limited, not data-limited). The ViT over "
    "single samples gets the same numbers in the tables but does not decide.")


def split_sizes(size: int) -> tuple[int, int]:
  """(training signals, validation signals) of a data budget of `size` signals."""
  validation = min(int(round(VALIDATION_SHARE * size)), VALIDATION_MAX)
  return size - validation, validation


def steps_for(size: int, tier: str, arm: str, batch_size: int) -> dict:
  """The run length at one size: `epochs` passes over the training signals, capped at
  the arm's step cap; rounded to a whole number of evaluations ("evals" per run)."""
  s = SCHEDULE[tier]
  n_train, _ = split_sizes(size)
  cap = s["cap"].get(arm, s["default_cap"])
  wanted = min(cap, math.ceil(s["epochs"] * n_train / batch_size))
  every = max(1, round(wanted / s["evals"]))
  steps = every * s["evals"]
  return dict(steps=steps, eval_every=every, cap=cap, capped=wanted == cap,
              epochs=steps * batch_size / n_train, batch_size=batch_size)


def arm_config(tier: str, arm: str, size: int):
  words = ("tiny,smoke" if tier == "smoke" else tier) + f",{arm}"
  _, validation = split_sizes(size)
  config = load_config(f"{common.ROOT / 'experiments' / 'repro' / 'vit2020_datasize.py'}:{words}",
                       [("data.train_size", str(size)),
                        ("data.validation_fraction", repr(validation / size)),
                        ("num_seeds", str(len(seeds_for(tier))))])
  plan = steps_for(size, tier, arm, config.train.batch_size)
  config.train.update(num_steps=plan["steps"], eval_every=plan["eval_every"],
                      log_every=plan["eval_every"], checkpoint_every=plan["steps"],
                      warmup_steps=min(config.train.warmup_steps, plan["steps"] - 1))
  return config, plan


def train_arm(tier: str, arm: str, size: int, out_dir) -> tuple[dict, dict]:
  """Trains one arm at one size (every seed) and scores it once on the test split;
  returns (plan, {"test": [...], "plateau": [...], "best_step": [...], ...})."""
  from attn_research.modes.comparison import comparison_runs
  config, plan = arm_config(tier, arm, size)
  workdir = common.runs_dir(out_dir, tier) / f"size_{size}" / arm
  runs = common.train_and_test(config, workdir)[arm]
  where = {seed: path for (_, seed), (_, path) in comparison_runs(config, workdir).items()}
  cell = dict(test=[], test_examples=[], plateau=[], best_step=[], wall_time_s=[], params=None)
  for r in runs:
    cell["test"].append(r["test"]["accuracy"])
    cell["test_examples"].append(r["test"]["examples"])
    cell["best_step"].append(r["test"]["step"])
    cell["plateau"].append(plateaued(read_metrics(where[r["seed"]], "eval"), "accuracy")["plateau"])
    cell["wall_time_s"].append(r["summary"]["wall_time_s"])
    cell["params"] = r["summary"]["params"]
  return plan, cell


def test_rates(tier: str) -> dict:
  """Chance and majority-class accuracy of the fixed test signals."""
  from attn_research.data import get_task
  config, _ = arm_config(tier, BASELINE, SIZES[tier][0])
  data = config.data.to_dict()
  data["eval_split"] = "test"
  return label_rates(get_task(data).evaluation["targets"], 10)


def majority(flags) -> bool:
  return sum(bool(f) for f in flags) * 2 > len(flags)


def analyse(accuracy: dict, plateau: dict, sizes) -> dict:
  """The fits, gaps, slope differences and crossovers of measured accuracies
  ({arm: {size: [per seed]}}) and plateau flags (the same shape)."""
  out = dict(fits={}, gaps={}, slope_difference={}, cnn_lead_smallest={}, crossover={},
             plateau_majority={})
  for arm, by_size in accuracy.items():
    slopes = datasize_fit.seed_slopes(by_size, sizes)
    out["fits"][arm] = dict(datasize_fit.mean_line(by_size, sizes), seed_slopes=slopes)
    out["plateau_majority"][arm] = {n: majority(plateau[arm][n]) for n in sizes}
  base = accuracy.get(BASELINE)
  for arm in (a for a in accuracy if a != BASELINE and base is not None):
    gaps = datasize_fit.gap_tests(accuracy[arm], base, sizes)
    out["gaps"][arm] = gaps
    smallest = gaps[sizes[0]]
    out["cnn_lead_smallest"][arm] = dict(
        smallest, mean=-smallest["mean"], differences=[-d for d in smallest["differences"]],
        p_one_sided=None if smallest["p_one_sided"] is None else 1 - smallest["p_one_sided"])
    out["slope_difference"][arm] = datasize_fit.slope_difference(accuracy[arm], base, sizes)
    out["crossover"][arm] = datasize_fit.crossover(out["fits"][arm], out["fits"][BASELINE],
                                                   sizes)
  return out


def verdict(results) -> str:
  """CRITERION applied to results (the numbers of results.json)."""
  lead = results["cnn_lead_smallest"].get(DECIDING)
  slope = results["slope_difference"].get(DECIDING)
  if lead is None or slope is None or lead["mean"] is None or slope["mean"] is None:
    return "inconclusive"
  if lead["mean"] <= 0 or slope["mean"] <= 0:
    outcome = "not supported"
  elif all(t["p_one_sided"] is not None and t["p_one_sided"] < ALPHA for t in (lead, slope)):
    outcome = "supported"
  else:
    return "inconclusive"
  trained = all(all(results["plateau_majority"][arm].values()) for arm in (DECIDING, BASELINE))
  return outcome if trained else "inconclusive"


def plot(path, sizes, accuracy, analysis, rates):
  plt = pyplot()
  fig, (ax, gx) = plt.subplots(1, 2, figsize=(11, 4))
  x = np.log10(sizes)
  for arm, by_size in accuracy.items():
    means = [np.mean(by_size[n]) for n in sizes]
    line = ax.plot(sizes, means, "o", label=LABELS[arm])[0]
    for n in sizes:
      ax.plot([n] * len(by_size[n]), by_size[n], ".", color=line.get_color(), alpha=0.4)
    fit = analysis["fits"][arm]
    ax.plot(sizes, fit["intercept"] + fit["slope"] * x, "--", color=line.get_color(),
            label=f"{arm} fit: {fit['slope']:+.3f} per decade")
  ax.axhline(rates["majority"], color="grey", lw=0.8, ls=":", label="majority class")
  ax.set(xscale="log", xlabel="training-set size N (train + validation signals)",
         ylabel="test accuracy (1,000 signals)", title="MNIST-1D: accuracy against N")
  for arm, gaps in analysis["gaps"].items():
    means = [gaps[n]["mean"] for n in sizes]
    errs = [gaps[n]["ci95"] or 0.0 for n in sizes]
    gx.errorbar(sizes, means, yerr=errs, marker="o", capsize=3,
                label=f"{LABELS[arm]} minus CNN")
  gx.axhline(0, color="k", lw=0.8)
  gx.set(xscale="log", xlabel="training-set size N", ylabel="test accuracy gap (95 % CI)",
         title="ViT minus CNN, paired over seeds")
  for a in (ax, gx):
    a.grid(alpha=0.3, which="both")
    a.legend(fontsize=7)
  save(fig, path, dpi=120)


def _num(x, spec=".3f") -> str:
  return "n/a" if x is None else f"{x:{spec}}"


def _test(t, spec=".3f") -> str:
  """A paired test as 'mean ± CI (n=k), p = ...'."""
  if t["mean"] is None:
    return "n/a"
  ci = "" if t["ci95"] is None else f" ± {t['ci95']:{spec}}"
  return f"{t['mean']:+{spec}}{ci} (n={t['n']}), p = {format_p(t['p_one_sided'])}"


def _plateaus(flags) -> str:
  return f"{sum(bool(f) for f in flags)}/{len(flags)}"


def strip_differences(tree):
  """Paired tests without their per-seed difference lists (the per-seed table shows the
  values they are differences of)."""
  if isinstance(tree, dict):
    return {k: strip_differences(v) for k, v in tree.items() if k != "differences"}
  return tree


def tables(sizes, seeds, plans, cells, analysis, rates):
  arms = list(cells)
  acc_rows = [[LABELS[a], f"{cells[a][sizes[0]]['params']:,}"]
              + [format_ci(cells[a][n]["test"]) for n in sizes] for a in arms]
  acc = markdown_table(["arm", "parameters"] + [f"N = {n:,}" for n in sizes], acc_rows)
  plan_rows = [[LABELS[a]] + [_plan_cell(plans[a][n], cells[a][n]) for n in sizes] for a in arms]
  split = ", ".join(f"{n:,} = {split_sizes(n)[0]:,} + {split_sizes(n)[1]:,}" for n in sizes)
  plan = markdown_table(["arm"] + [f"N = {n:,}" for n in sizes], plan_rows)
  fit_rows = []
  for a in arms:
    f = analysis["fits"][a]
    row = [LABELS[a], f"{f['intercept']:.3f}", f"{f['slope']:+.3f}",
           format_ci(f["seed_slopes"], "+.3f")]
    if a in analysis["slope_difference"]:
      row += [_test(analysis["slope_difference"][a]),
              datasize_fit.describe_crossover(analysis["crossover"][a], a, BASELINE, sizes)]
    else:
      row += ["(baseline)", ""]
    fit_rows.append(row)
  fits = markdown_table(["arm", "intercept", "slope per decade (mean line)",
                         "slope per decade over seeds", "slope minus CNN's (paired)",
                         "crossover of the fitted lines"], fit_rows)
  gap_rows = [[LABELS[a]] + [_test(analysis["gaps"][a][n]) for n in sizes]
              for a in analysis["gaps"]]
  gaps = markdown_table(["ViT minus CNN"] + [f"N = {n:,}" for n in sizes], gap_rows)
  leads = "; ".join(f"{LABELS[a]}: {_test(t)}" for a, t in analysis["cnn_lead_smallest"].items())
  per_seed = [[LABELS[a], f"{n:,}", str(s), f"{cells[a][n]['test'][i]:.3f}",
               f"{cells[a][n]['best_step'][i]:,}", str(cells[a][n]["plateau"][i]),
               f"{cells[a][n]['wall_time_s'][i]:.2f}"]
              for a in arms for n in sizes for i, s in enumerate(seeds)]
  slopes = [[LABELS[a], str(s), f"{analysis['fits'][a]['seed_slopes'][i]:+.4f}"]
            for a in arms for i, s in enumerate(seeds)]
  return [
      f"Test accuracy of the best-on-validation checkpoint on the fixed {rates['examples']:,} "
      f"test signals, mean ± 95 % CI over seeds (n). Chance {rates['chance']:.3f}, majority "
      f"class ({rates['majority_class']}) {rates['majority']:.3f}.\n\n{acc}",
      f"Steps of {plans[arms[0]][sizes[0]]['batch_size']} signals per run (epochs over the "
      f"training signals; 'capped' where the step cap cut the epochs short) and how many "
      f"seeds' validation accuracy plateaued. N = training + validation signals: {split}."
      f"\n\n{plan}",
      f"Least-squares lines of test accuracy against log10 N: the line through the means, "
      f"the per-seed slopes (mean ± 95 % CI), the paired slope difference against the CNN "
      f"(one-sided p for > 0) and where the ViT's line meets the CNN's.\n\n{fits}",
      f"The gap at each size (ViT minus CNN, same seed): mean ± 95 % CI (n), one-sided p "
      f"for ViT ahead. The CNN's lead at N = {sizes[0]:,} (CNN minus ViT, one-sided p for "
      f"CNN ahead): {leads}.\n\n{gaps}",
      "Every run:\n\n" + markdown_table(["arm", "N", "seed", "test accuracy",
                                         "best validation step", "plateaued",
                                         "wall time (s)"], per_seed),
      "Per-seed slopes per decade:\n\n" + markdown_table(["arm", "seed", "slope"], slopes),
  ]


def _plan_cell(plan, cell) -> str:
  capped = f", capped at {plan['cap']:,}" if plan["capped"] else ""
  return (f"{plan['steps']:,} steps ({plan['epochs']:.1f} epochs{capped}), eval every "
          f"{plan['eval_every']:,}; plateau {_plateaus(cell['plateau'])}")


@register_reproduction("vit2020_datasize")
def run(tier, out_dir):
  sizes, seeds = list(SIZES[tier]), list(seeds_for(tier))
  plans, cells = {}, {}
  for arm in ARMS:
    for size in sizes:
      plans.setdefault(arm, {})[size], cells.setdefault(arm, {})[size] = train_arm(
          tier, arm, size, out_dir)
  rates = test_rates(tier)
  accuracy = {a: {n: cells[a][n]["test"] for n in sizes} for a in ARMS}
  plateau = {a: {n: cells[a][n]["plateau"] for n in sizes} for a in ARMS}
  analysis = analyse(accuracy, plateau, sizes)
  results = dict(sizes=sizes, seeds=seeds, rates=rates, plans=plans,
                 params={a: cells[a][sizes[0]]["params"] for a in ARMS},
                 runs={a: {n: {k: v for k, v in cells[a][n].items() if k != "params"}
                           for n in sizes} for a in ARMS},
                 accuracy=accuracy, **strip_differences(analysis))
  label = verdict(results)
  results["verdict_label"] = label
  plot(out_dir / "accuracy_vs_size.png", sizes, accuracy, analysis, rates)
  lead, slope = analysis["cnn_lead_smallest"][DECIDING], analysis["slope_difference"][DECIDING]
  untrained = [f"{a} at {n:,}" for a in (DECIDING, BASELINE) for n in sizes
               if not analysis["plateau_majority"][a][n]]
  detail = (f"ViT over patches vs CNN: CNN lead at N = {sizes[0]:,} {_test(lead)}; ViT's slope "
            f"per decade minus the CNN's {_test(slope)}; "
            + datasize_fit.describe_crossover(analysis["crossover"][DECIDING], DECIDING,
                                              BASELINE, sizes)
            + (f"; validation had not plateaued (majority of seeds) for "
               f"{', '.join(untrained)}" if untrained else
               "; validation plateaued in a majority of seeds for both deciding arms at every "
               "size (the criterion's test)")
            + ".")
  first = plans[BASELINE][sizes[0]]
  return Report(
      claim="Without the inductive biases of convolution, self-attention needs more data: "
            "CNNs win on small training sets and ViT catches up and overtakes them as the "
            "data grows (Dosovitskiy et al. 2020, arXiv 2010.11929, Figures 3-4).",
      tables=tables(sizes, seeds, plans, cells, analysis, rates),
      paper="ViT paper: pre-trained on ImageNet-1k, ViT-L/16 reaches 76.5 % (below "
            "ViT-B/16, 77.9 %); with ImageNet-21k 85.2 %, with JFT-300M 87.1 %; BiT ResNets "
            "win on the small pre-training sets and ViT from about 90M images. MNIST-1D's "
            "paper: ConvBase 94 % at 4,000 training signals (ANCHORS.md).",
      differences=f"MNIST-1D ({sizes[0]:,} to {sizes[-1]:,} generated signals) instead of "
                  "ImageNet/JFT pre-training and transfer; accuracy trained and tested on one "
                  "task, not few-shot or fine-tuned transfer; tiny models (the ViT at about "
                  "the CNN's parameter count, 2 layers of width 16) instead of ViT-B/L and "
                  "BiT ResNets; one recipe for every arm (Adam, learning rate 1e-2 as the "
                  f"official MNIST-1D code, batch {first['batch_size']}, no weight decay, a "
                  "50-step warm-up, then constant; no decay) instead of each paper's own; "
                  "training ends after a number of epochs per size, capped in steps, and the "
                  "best-on-validation checkpoint is scored (the official MNIST-1D code trains "
                  "6,000 steps on all 4,000 signals and scores the last step). The ViT over "
                  "single samples has a lower step cap at the tiny tier for its CPU cost.",
      results=results, figures=["accuracy_vs_size.png"], verdict=detail,
      criterion=CRITERION, verdict_label=label)
