"""MNIST-1D's baseline table with the paper's own models and recipe (Greydanus and Kobak
2020, arXiv 2011.14439), beside this project's families and a Transformer over patches.

Config: experiments/repro/mnist1d2020.py, three comparisons (its words): the official
baselines (models/mnist1d_official.py, the recipe of the official code), this project's
families ("ours") and the patched Transformer ("transformer"), each under the same
recipe. Every run trains on the paper's 4,000 training signals, keeps its best
checkpoint by accuracy on 400 fresh signals of the same generator (validation), and
that checkpoint alone is
scored on the paper's 1,000 test signals (common.train_and_test). Runs:
runs/<tier>/<comparison>/<model>/seed_<s>/ (resumed, never overwritten). The criterion
below is fixed before any run; the verdict is computed from it.
"""
from __future__ import annotations

from attn_research.reproduce import common, protocol
from attn_research.reproduce.base import Report, markdown_table, register_reproduction
from attn_research.report.plotting import pyplot, save
from attn_research.report.stats import summarize

PAPER = {"logistic": 0.32, "mlp": 0.68, "cnn": 0.94, "gru": 0.91}
TOLERANCE = 0.03  # 3 percentage points, the target
# Comparisons of the config file (its words) and the models a smoke run keeps of each
# (None: the comparison is left out of the smoke tier; "ours" runs the same code path).
COMPARISONS = {"official": "", "ours": "ours", "transformer": "transformer"}
SMOKE_MODELS = {"official": ("logistic",), "ours": None, "transformer": ("transformer",)}
CRITERION = (
    "Judged on the test accuracy of each official baseline's best-on-validation checkpoint "
    "(logistic regression, MLPBase, ConvBase, GRUBase, trained with the official recipe), "
    "mean and 95 % CI over the seeds, against the paper's 32 / 68 / 94 / 91 %. Supported if "
    "every baseline's mean lies within 3 percentage points of the paper's number. Not "
    "supported if any baseline's mean lies more than 3 points from it and that baseline's "
    "95 % CI lies entirely outside the paper's number ± 3 points. Inconclusive otherwise "
    "(including a baseline that did not run). This project's families and the Transformer "
    "are extra rows and do not enter the verdict.")


def verdict(models: dict) -> str:
  """The criterion applied to {name: {"mean", "ci95"}} (accuracies as fractions) of the
  official baselines (PAPER's names)."""
  if any(models.get(name, {}).get("mean") is None for name in PAPER):
    return "inconclusive"
  off = {name: abs(models[name]["mean"] - paper) > TOLERANCE + 1e-9
         for name, paper in PAPER.items()}
  if not any(off.values()):
    return "supported"
  for name, outside in off.items():
    ci = models[name]["ci95"]
    if outside and ci is not None:
      low, high = models[name]["mean"] - ci, models[name]["mean"] + ci
      if low > PAPER[name] + TOLERANCE or high < PAPER[name] - TOLERANCE:
        return "not supported"
  return "inconclusive"


def comparison_config(tier: str, comparison: str, num_seeds: int):
  """experiments/repro/mnist1d2020.py with the tier's and the comparison's words."""
  from attn_research.config import load_config
  words = ["tiny,smoke" if tier == "smoke" else tier] + ([COMPARISONS[comparison]]
                                                          if COMPARISONS[comparison] else [])
  path = common.ROOT / "experiments" / "repro" / "mnist1d2020.py"
  config = load_config(f"{path}:{','.join(words)}", [("num_seeds", str(num_seeds))])
  if tier == "smoke":
    with config.unlocked():
      for model in [m for m in config.models if m not in SMOKE_MODELS[comparison]]:
        del config.models[model]
  return config


def run_comparison(tier, out_dir, comparison, seeds):
  """Trains one comparison (every model x seed) and scores test once per run; returns
  ({model: measured dict}, config, {model: [workdir per seed]})."""
  from attn_research.modes.comparison import comparison_runs
  from attn_research.workdir import read_metrics
  config = comparison_config(tier, comparison, len(seeds))
  workdir = common.runs_dir(out_dir, tier) / comparison
  trained = common.train_and_test(config, workdir)
  where = {key: w for key, (_, w) in comparison_runs(config, workdir).items()}
  measured, dirs = {}, {}
  for name, runs in trained.items():
    if [r["seed"] for r in runs] != list(seeds):
      raise RuntimeError(f"{name}: seeds {[r['seed'] for r in runs]}, expected {list(seeds)}")
    dirs[name] = [where[name, r["seed"]] for r in runs]
    plateaus = [protocol.plateaued(read_metrics(d, "eval"), "accuracy") for d in dirs[name]]
    test = [r["test"]["accuracy"] for r in runs]
    s = summarize(test)
    measured[name] = dict(
        comparison=comparison, family=config.models[name].name,
        params=runs[0]["summary"]["params"], steps=config.train.num_steps,
        paper=PAPER.get(name), test_accuracy=test, mean=s.mean, ci95=s.ci95, n=s.n,
        distance=None if name not in PAPER else s.mean - PAPER[name],
        validation_accuracy=[r["summary"]["best_eval"]["accuracy"] for r in runs],
        chosen_step=[r["test"]["step"] for r in runs],
        plateau=[p["plateau"] for p in plateaus], gain_last=[p["gain_last"] for p in plateaus],
        wall_time_s=[r["summary"]["wall_time_s"] for r in runs])
  return measured, config, dirs


def label_rates(config) -> dict:
  """Chance and majority rates of the test split, and the validation split's majority."""
  from attn_research.data import get_task
  test = get_task(dict(config.data, eval_split="test"))
  rates = protocol.label_rates(test.evaluation["targets"], test.info.num_classes)
  validation = get_task(dict(config.data))
  rates["validation_majority"] = protocol.label_rates(
      validation.evaluation["targets"], validation.info.num_classes)["majority"]
  rates["validation_examples"] = int(len(validation.evaluation["targets"]))
  return rates


def plot(path, dirs: dict):
  """Validation accuracy against step, mean over seeds, dotted at the paper's numbers."""
  import numpy as np
  plt = pyplot()
  fig, ax = plt.subplots(figsize=(7, 4.5))
  for name, workdirs in dirs.items():
    curves = [common.eval_curve(d) for d in workdirs]
    steps = curves[0][0]
    values = np.array([acc for s, acc in curves if s == steps])
    line, = ax.plot(steps, values.mean(0), ".-" if name in PAPER else "--", lw=1.2,
                    label=f"{name} (n={len(values)})")
    if name in PAPER:
      ax.axhline(PAPER[name], color=line.get_color(), ls=":", lw=1)
  ax.set(xlabel="step", ylabel="validation accuracy (400 signals)", ylim=(0, 1),
         title="MNIST-1D: mean validation accuracy over seeds\n(dotted: the paper's test "
               "accuracy; dashed: extra rows)")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7, ncol=2)
  save(fig, path, dpi=120)


def pts(x, sign=False) -> str:
  """A fraction in percentage points with two decimals ('n/a' for None)."""
  if x is None:
    return "n/a"
  return f"{x * 100:+.2f}" if sign else f"{x * 100:.2f}"


def plateau_cell(r) -> str:
  known = [p for p in r["plateau"] if p is not None]
  if not known:
    return "n/a (too few evaluations)"
  return f"{sum(known)} of {len(known)}"


def tables(models: dict, rates: dict) -> list:
  head = markdown_table(
      ("model", "family", "parameters", "steps", "test accuracy % (mean ± 95 % CI)", "n",
       "paper %", "mean - paper (points)", "plateaued on validation (seeds)"),
      [(name, r["family"], f"{r['params']:,}", f"{r['steps']:,}",
        f"{pts(r['mean'])} ± {pts(r['ci95'])}", r["n"],
        "-" if r["paper"] is None else f"{r['paper'] * 100:.0f}",
        "-" if r["distance"] is None else pts(r["distance"], sign=True), plateau_cell(r))
       for name, r in models.items()])
  rows = []
  for name, r in models.items():
    for i, seed in enumerate(r["seeds"]):
      gain = r["gain_last"][i]
      rows.append((name, seed, pts(r["test_accuracy"][i]), pts(r["validation_accuracy"][i]),
                   f"{r['chosen_step'][i]:,}", "n/a" if gain is None else pts(gain),
                   f"{r['wall_time_s'][i]:.0f}"))
  per_seed = markdown_table(
      ("model", "seed", "test accuracy %", "best validation accuracy %", "chosen step",
       "validation gain in the last quarter of evaluations (points)", "run wall time (s)"),
      rows)
  caption = (f"Test accuracy of each run's best-on-validation checkpoint on the paper's "
             f"{rates['examples']:,} test signals (scored once). Chance {pts(rates['chance'])} "
             f"%, majority class (class {rates['majority_class']}) {pts(rates['majority'])} "
             f"%; on the {rates['validation_examples']:,} validation signals the majority "
             f"rate is {pts(rates['validation_majority'])} %. 'Plateaued' is protocol.plateaued on "
             "the validation "
             "accuracy (the best of the last quarter of evaluations improves on the best "
             "before by under 1 point).")
  return [f"{caption}\n\n{head}",
          f"Per seed (the chosen step is the best-on-validation checkpoint's):\n\n{per_seed}"]


@register_reproduction("mnist1d2020")
def run(tier, out_dir):
  seeds = protocol.seeds_for(tier)
  models, dirs, configs = {}, {}, {}
  for comparison in COMPARISONS:
    if tier == "smoke" and SMOKE_MODELS[comparison] is None:
      continue
    measured, configs[comparison], d = run_comparison(tier, out_dir, comparison, seeds)
    for name in measured:
      measured[name]["seeds"] = list(seeds)
    models.update(measured)
    dirs.update(d)
  rates = label_rates(configs["official"])
  plot(out_dir / "validation_accuracy.png", dirs)
  label = verdict(models)
  official = [n for n in PAPER if n in models]
  extra = [n for n in models if n not in PAPER]
  tc = configs["official"].train
  extra_steps = sorted({models[n]["steps"] for n in extra})
  detail = "; ".join(
      f"{n} {pts(models[n]['mean'])} ± {pts(models[n]['ci95'])} % against the paper's "
      f"{PAPER[n] * 100:.0f} % ({pts(models[n]['distance'], sign=True)} points)"
      for n in official)
  not_plateaued = [n for n, r in models.items() if any(p is False for p in r["plateau"])]
  patch = configs.get("transformer")
  n_all, n_val = configs["official"].data.train_size, rates["validation_examples"]
  return Report(
      claim="On MNIST-1D (4,000 training / 1,000 test signals of 40 samples), logistic "
            "regression reaches 32 %, an MLP 68 %, a CNN 94 % and a GRU about 91 % test "
            "accuracy (Greydanus and Kobak 2020, arXiv 2011.14439): a small dataset that "
            "separates architectures by their inductive biases.",
      tables=tables(models, rates),
      paper="Logistic regression 32 %, MLP 68 %, CNN 94 %, GRU about 91 % test accuracy "
            "(the paper's baseline table, as recorded in ANCHORS.md), from the official "
            "code's models (greydanus/mnist1d models.py: LinearBase, MLPBase, ConvBase, "
            "GRUBase) trained with Adam, learning rate 1e-2, no weight decay, batch 100, "
            "6,000 steps at a constant learning rate; no Transformer.",
      differences=(
          f"Validation: {n_val:,} fresh signals of the same generator (another chunk's "
          f"draws), so every model trains on all {n_all:,} training signals, as the "
          "official code does; the reported checkpoint is the one best on validation "
          f"(evaluated every {tc.eval_every} steps), where the official code reports its "
          "test accuracy at the last step, with no validation set. (A first tiny run "
          "carved its validation split out of the 4,000, training on 3,600: the MLP "
          "reached 63.0 ± 1.5 %, 5 points under the paper; it was replaced by this "
          "faithful split before this run.) Steps: "
          f"{tc.num_steps:,} for the official models, as ANCHORS.md records the paper's "
          "recipe; the official notebooks/train.py we read defaults to 8,000 (the "
          "plateau column shows whether more would change anything). Batches are drawn "
          "from a fresh permutation each epoch (the official code walks one fixed order). The "
          "models are the official architectures rebuilt in Flax with PyTorch's default "
          "initialisation (and its GRU's recurrent bias), so the draws differ but not the "
          "distributions. The data are the package's make_dataset at its default "
          "arguments and seed 42, generated offline: the paper's split. "
          + (f"This project's families and the Transformer trained {', '.join(map(str, extra_steps))} "
             f"steps instead of {tc.num_steps:,} at this tier (a Transformer or our CNN "
             "step costs 5 to 10 times an official model's on 2 CPU cores); otherwise the "
             "same recipe, not tuned for them. " if extra_steps and extra_steps != [tc.num_steps]
             else "")
          + (f"The Transformer reads patches of {patch.data.patch} samples "
             f"({40 // patch.data.patch} vectors; the other models read single samples) "
             f"and trains at learning rate {patch.train.learning_rate:g}, chosen on "
             "validation accuracy after 600 steps (1e-2, the recipe's, gave 0.638; 3e-3 "
             "0.773; 1e-3 0.790; one seed, experiments/repro/mnist1d2020.py). "
             if patch is not None else "")
          + (f"Not plateaued on validation for every seed: {', '.join(not_plateaued)}. "
             if not_plateaued else "")
          + "Without checkpoint selection: trained on all 4,000 and scored at the "
          "last step, the official protocol (experiments/repro/mnist1d2020.py:tiny,"
          "paper_protocol, measured once outside this report, 3 seeds), the MLP reached "
          "65.4 / 64.5 / 67.6 % and the CNN 92.0 / 92.6 / 93.8 % test accuracy."),
      results=dict(criterion=CRITERION, verdict_label=label, models=models, rates=rates,
                   seeds=list(seeds)),
      figures=["validation_accuracy.png"],
      verdict=f"{detail}; criterion: every official baseline within 3 points of "
              f"the paper (n = {len(seeds)} seeds each).",
      criterion=CRITERION, verdict_label=label)
