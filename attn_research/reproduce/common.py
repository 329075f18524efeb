"""Helpers the training reproductions share: their configs live in experiments/repro/,
their runs under reports/NAME/runs/<tier>/ (resumed, never overwritten)."""
from __future__ import annotations

import pathlib

from attn_research.config import load_config
from attn_research.report.files import read_metrics, read_summary

ROOT = pathlib.Path(__file__).resolve().parents[2]


def repro_config(name: str, tier: str, overrides=()):
  """experiments/repro/NAME.py with the tier as its argument ('smoke' -> 'tiny,smoke')."""
  arg = "tiny,smoke" if tier == "smoke" else tier
  return load_config(f"{ROOT / 'experiments' / 'repro' / name}.py:{arg}", list(overrides))


def runs_dir(out_dir, tier: str) -> pathlib.Path:
  return pathlib.Path(out_dir) / "runs" / tier


def train_models(config, workdir) -> dict:
  """Trains every model of a comparison config (workdir/<model>/ each, resumed when
  present); returns {model: summary}."""
  from attn_research.train.compare import run_comparison
  run_comparison(config, workdir, progress=False)
  return {name: read_summary(pathlib.Path(workdir) / name) for name in config.models}


def eval_accuracy(summary) -> float | None:
  return (summary.get("final_eval") or {}).get("accuracy")


def eval_curve(workdir, metric="accuracy"):
  rows = read_metrics(workdir, "eval")
  return [r["step"] for r in rows], [r[metric] for r in rows]
