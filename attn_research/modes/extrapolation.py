"""Run mode `extrapolation`: train at length L, evaluate at multiples of L, per position
encoding.

run_extrapolation(config, workdir) trains config.model once per encoding of
config.extrapolation.encodings (`model.position`, one workdir each, with the one training
loop, so every run is resumable), then evaluates each trained model on the same task
made factor times longer for every factor of config.extrapolation.factors, and writes
extrapolation.json, extrapolation.md and extrapolation.png (report/extrapolation.py).

The task must be one whose rule does not depend on its length; LENGTH_SETTINGS names the
data settings that are multiplied to make it longer (both the pairs and the queries of
associative recall, so the length is exactly factor x L; only the length of
associative_recall_filler, whose pairs and queries stay fixed while filler grows, so
only positions change).

train_and_test_lengths is the reproduction protocol's form (DESIGN.md): several seeds per
encoding, each trained on the validation split with train.keep_best, and its
best-on-validation checkpoint scored once on the test split at every length. Every model is built for the
longest evaluated length, so a learned absolute table has rows past L that training never
reaches (weight decay, if any, shrinks them): those rows are what such a model meets
at 2L and 4L, which is the honest result for learned positions.
"""
from __future__ import annotations

import copy
import json
import pathlib
import re

import jax
import ml_collections

from attn_research.data import get_task
from attn_research.modes.base import register_mode
from attn_research.nn.positions import POSITIONAL
from attn_research.report.extrapolation import write_extrapolation
from attn_research.train.loop import evaluate, prepare, run
from attn_research.train.restore import restore_state
from attn_research.workdir import CHECKPOINTS_BEST, read_metrics, write_json
from attn_research.workdir import checkpoint as ckpt_lib

# Data settings multiplied by the factor to make a task's sequences factor times longer.
LENGTH_SETTINGS = {"associative_recall": ("num_pairs", "num_queries"), "sort": ("length",),
                   "associative_recall_filler": ("length",), "kjv": ("max_length",)}
TEST_LENGTHS = "test_lengths.json"  # a run's test scores at every length (written once)


def scaled_data(data_cfg, factor: int):
  """The data config whose sequences are `factor` times longer (same vocabulary and rule)."""
  name = data_cfg.name
  if name not in LENGTH_SETTINGS:
    raise ValueError(f"data.name={name!r} has no length to scale for extrapolation; "
                     f"valid: {sorted(LENGTH_SETTINGS)}")
  scaled = copy.deepcopy(data_cfg)
  with scaled.unlocked():
    for key in LENGTH_SETTINGS[name]:
      scaled[key] = data_cfg[key] * factor
  return scaled


def encoding_config(config, encoding: str, factors):
  """The single-model config of one encoding. It records the factors (they set the
  model's length), so a workdir trained for other factors is refused, not mixed."""
  single = copy.deepcopy(config)
  with single.unlocked():
    single.model.position = encoding
    single.mode = "single"
    single.extrapolation = ml_collections.ConfigDict(dict(encodings=(encoding,),
                                                          factors=tuple(factors)))
  single.lock()
  return single


def encoding_dirname(encoding: str) -> str:
  return re.sub(r"[^A-Za-z0-9_.-]", "_", encoding)


def _check(encodings, factors):
  if not encodings or len(set(encodings)) != len(encodings):
    raise ValueError(f"extrapolation.encodings={tuple(encodings)} must be distinct and not empty")
  for name in encodings:
    if name not in POSITIONAL:
      raise ValueError(f"extrapolation.encodings: {name!r} is not registered; valid: "
                       f"{POSITIONAL.names()}")
  if (not factors or any(not isinstance(f, int) or f < 1 for f in factors)
      or list(factors) != sorted(set(factors)) or factors[0] != 1):
    raise ValueError(f"extrapolation.factors={tuple(factors)} must be increasing positive ints "
                     "starting at 1 (the training length)")


def run_extrapolation(config, workdir, encodings=None, factors=None, *, progress: bool = True):
  """Trains one model per encoding at length L and evaluates it at factor x L.

  encodings and factors default to config.extrapolation's; config.model.position is
  replaced by each encoding in turn. Every setting is checked and
  every model built before the first one trains. Returns (results, (table, png path)),
  results[encoding] = {"params", "train_length", "evals": [{factor, length, accuracy, loss}]}.
  """
  workdir = pathlib.Path(workdir)
  section = config.get("extrapolation") or {}
  encodings = tuple(section.get("encodings", ()) if encodings is None else encodings)
  factors = tuple(section.get("factors", ()) if factors is None else factors)
  _check(encodings, factors)
  tasks = {f: get_task(scaled_data(config.data, f)) for f in factors}
  train_length = tasks[1].info.max_length
  for f, task in tasks.items():
    if task.info.max_length != f * train_length:
      raise ValueError(f"data {config.data.name!r} scaled by {f} has length "
                       f"{task.info.max_length}, not {f} x {train_length}")
  prepared = {e: prepare(encoding_config(config, e, factors), workdir / encoding_dirname(e),
                         max_length=factors[-1] * train_length)
              for e in encodings}
  results = {}
  for encoding, p in prepared.items():
    summary = run(p.config, p.workdir, progress=progress, desc=encoding, prepared=p)
    # At L the run's own final evaluation (same task, same evaluation set) is the result.
    evals = [dict(factor=1, length=train_length, **summary["final_eval"])]
    if len(factors) > 1:
      state = restore_state(p)
      eval_step = jax.jit(p.objective.eval_step)
      evals += [dict(factor=f, length=task.info.max_length,
                     **evaluate(p, eval_step, state, task=task))
                for f, task in tasks.items() if f > 1]
    results[encoding] = {"workdir": str(p.workdir), "params": summary["params"],
                         "train_length": train_length, "steps": summary["step"],
                         "evals": evals}
  (workdir / "extrapolation.json").write_text(json.dumps(
      {"task": config.data.name, "num_classes": tasks[1].info.num_classes,
       "results": results}, indent=2) + "\n")
  return results, write_extrapolation(workdir)


def split_data(data_cfg, split: str):
  """The data config evaluating on `split` ("validation" or "test")."""
  out = copy.deepcopy(data_cfg)
  with out.unlocked():
    out.eval_split = split
  return out


def restore_best(p):
  """The best-on-validation checkpoint (train.keep_best) of prepared run p: (state, step)."""
  checkpointer = ckpt_lib.Checkpointer(p.workdir / CHECKPOINTS_BEST, 1)
  try:
    state = checkpointer.restore(p.dp.abstract(p.objective.abstract_state()), move_aside=False)
    return state, int(checkpointer.restored_step)
  finally:
    checkpointer.close()


def _check_protocol(config):
  if config.data.get("eval_split") != "validation" or not config.train.get("keep_best"):
    raise ValueError("train_and_test_lengths needs data.eval_split='validation' (got "
                     f"{config.data.get('eval_split')!r}) and train.keep_best set (got "
                     f"{config.train.get('keep_best')!r}): the test split is scored once, "
                     "by the checkpoint chosen on validation")


def train_and_test_lengths(config, workdir, seeds, encodings=None, factors=None, *,
                           progress: bool = False) -> dict:
  """Per encoding and seed (config.seed = seed): trains at L choosing the checkpoint on the
  validation split, then scores that checkpoint on the test split at every factor x L
  (WORKDIR/<encoding>/seed_<s>/test_lengths.json, written once and read back after).
  Every config is checked and every model built before the first step.

  Returns {encoding: [{"seed", "workdir", "summary", "eval_rows", "evals": [{factor,
  length, accuracy, loss, step}]} per seed]}.
  """
  workdir = pathlib.Path(workdir)
  section = config.get("extrapolation") or {}
  encodings = tuple(section.get("encodings", ()) if encodings is None else encodings)
  factors = tuple(section.get("factors", ()) if factors is None else factors)
  _check(encodings, factors)
  _check_protocol(config)
  if not seeds or len(set(seeds)) != len(seeds):
    raise ValueError(f"seeds={tuple(seeds)} must be distinct and not empty")
  tests = {f: get_task(split_data(scaled_data(config.data, f), "test")) for f in factors}
  train_length = tests[1].info.max_length
  prepared = {}
  for e in encodings:
    for seed in seeds:
      single = encoding_config(config, e, factors)
      with single.unlocked():
        single.seed = seed
      prepared[e, seed] = prepare(single, workdir / encoding_dirname(e) / f"seed_{seed}",
                                  max_length=factors[-1] * train_length)
  out = {}
  for (e, seed), p in prepared.items():
    summary = run(p.config, p.workdir, progress=progress, desc=f"{e} seed {seed}", prepared=p)
    path = p.workdir / TEST_LENGTHS
    if path.exists():
      evals = json.loads(path.read_text())
    else:
      state, step = restore_best(p)
      eval_step = jax.jit(p.objective.eval_step)
      evals = [dict(factor=f, length=task.info.max_length, step=step,
                    **evaluate(p, eval_step, state, task=task)) for f, task in tests.items()]
      write_json(path, evals)
    out.setdefault(e, []).append(dict(seed=seed, workdir=str(p.workdir), summary=summary,
                                      eval_rows=read_metrics(p.workdir, "eval"), evals=evals))
  return out


@register_mode("extrapolation")
def extrapolation_mode(config, workdir, *, progress: bool = True) -> str:
  _, (table, png) = run_extrapolation(config, workdir, progress=progress)
  return f"\n{table}\n\nplot: {png}\ntable: {pathlib.Path(workdir) / 'extrapolation.md'}"
