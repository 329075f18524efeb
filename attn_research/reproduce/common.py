"""Helpers the training reproductions share: their configs live in experiments/repro/,
their runs under reports/NAME/runs/<tier>/ (resumed, never overwritten)."""
from __future__ import annotations

import pathlib

from attn_research.config import load_config
from attn_research.workdir import read_metrics, read_summary
from attn_research.report.plotting import pyplot, save
from attn_research.report.stats import summarize

ROOT = pathlib.Path(__file__).resolve().parents[2]


def repro_config(name: str, tier: str, overrides=(), *, smoke_models=None):
  """experiments/repro/NAME.py with the tier as its argument ('smoke' -> 'tiny,smoke').

  The smoke tier keeps only `smoke_models` (names of config.models) when given: it tests
  the code path in seconds, and every model costs a compilation.
  """
  arg = "tiny,smoke" if tier == "smoke" else tier
  config = load_config(f"{ROOT / 'experiments' / 'repro' / name}.py:{arg}", list(overrides))
  if tier == "smoke" and smoke_models:
    with config.unlocked():
      for model in [m for m in config.models if m not in smoke_models]:
        del config.models[model]
  return config


def runs_dir(out_dir, tier: str) -> pathlib.Path:
  return pathlib.Path(out_dir) / "runs" / tier


def train_models(config, workdir) -> dict:
  """Trains every model of a comparison config (workdir/<model>/ each, resumed when
  present); returns {model: summary}."""
  from attn_research.modes.comparison import run_comparison
  run_comparison(config, workdir, progress=False)
  return {name: read_summary(pathlib.Path(workdir) / name) for name in config.models}


def eval_accuracy(summary) -> float | None:
  return (summary.get("final_eval") or {}).get("accuracy")


def eval_curve(workdir, metric="accuracy"):
  rows = read_metrics(workdir, "eval")
  return [r["step"] for r in rows], [r[metric] for r in rows]


def train_over_seeds(name: str, tier: str, out_dir, seeds, *, seed_key="seed", overrides=(),
                     smoke_models=None, subdir=""):
  """Trains the comparison experiments/repro/NAME.py once per seed (seed_key = each seed,
  runs under runs/<tier>/[subdir/]seed_<s>/<model>/); returns (config, {model: [summary
  per seed]})."""
  by_model = {}
  for seed in seeds:
    config = repro_config(name, tier, [*overrides, (seed_key, str(seed))],
                          smoke_models=smoke_models)
    workdir = runs_dir(out_dir, tier) / subdir / f"seed_{seed}"
    for model, summary in train_models(config, workdir).items():
      by_model.setdefault(model, []).append(summary)
  return config, by_model


def mean_of(by_name: dict, name: str):
  """Mean of by_name[name]'s values, or None when the model did not run (smoke tier)."""
  return summarize(by_name.get(name, [])).mean


def pct(x) -> str:
  return "n/a" if x is None else f"{x:.1%}"


def plot_curves(path, workdirs: dict, *, title: str, metric="loss", log_y=True):
  """Train (line) and eval (markers) curves of `metric` for each named workdir."""
  plt = pyplot()

  fig, ax = plt.subplots(figsize=(6.5, 4))
  for label, workdir in workdirs.items():
    train = read_metrics(workdir, "train")
    line, = ax.plot([r["step"] for r in train], [r[metric] for r in train], label=f"{label} train")
    steps, values = eval_curve(workdir, metric)
    ax.plot(steps, values, "o--", color=line.get_color(), label=f"{label} eval")
  ax.set(xlabel="step", ylabel=metric, title=title, yscale="log" if log_y else "linear")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7)
  save(fig, path, dpi=120)


def train_and_test(config, workdir, *, test_examples: int = 0) -> dict:
  """The protocol's training path for a comparison config (config.models x its
  num_seeds): every run trains with data.eval_split="validation" and train.keep_best set,
  then its best-on-validation checkpoint is scored on the test split once
  (protocol.test_eval). Returns {model: [{"seed", "summary", "workdir", "test"} per
  seed]}; runs and
  test scores found on disk are reused."""
  from attn_research.modes.comparison import apply_budget, comparison_runs
  from attn_research.reproduce.protocol import test_eval
  from attn_research.train.loop import prepare, run
  if config.data.get("eval_split") != "validation" or not config.train.get("keep_best"):
    raise ValueError("train_and_test needs data.eval_split='validation' (got "
                     f"{config.data.get('eval_split')!r}) and train.keep_best set (got "
                     f"{config.train.get('keep_best')!r}): the test split is scored once, "
                     "by the checkpoint chosen on validation")
  apply_budget(config)
  prepared = {key: prepare(single, where)
              for key, (single, where) in comparison_runs(config, workdir).items()}
  out = {}
  for (name, seed), p in prepared.items():
    summary = run(p.config, p.workdir, progress=False, desc=f"{name} seed {seed}", prepared=p)
    out.setdefault(name, []).append(dict(seed=seed, summary=summary, workdir=p.workdir,
                                         test=test_eval(p, test_examples)))
  return out
