"""Run mode `transfer`: pretrain an encoder without labels, then fine-tune it with a
share of the labels, against the same model trained from scratch (the data-efficiency
curve of BERT-style pretraining).

The config is the fine-tuning run (task, model, train) plus `transfer`:
  pretrain          {data, train, objective, masking}: the pretraining run's task,
                    training settings and objective: masked_lm (the default; per-vector
                    tokens, e.g. kjv_mlm, with `masking`) or classification (a labelled
                    source task, e.g. rendered_digits before scikit-learn's digits); its
                    model is config.model (a new head is drawn for the fine-tuning task)
  label_fractions   shares of the labelled training set (data.label_fraction)
  num_steps         optional, one per label fraction: that share's fine-tuning steps
                    (every arm alike), so a larger labelled set can train to its
                    plateau; () = train.num_steps for every share
  num_seeds         seeds seed, seed + 1, ...: each draws its own label subset
                    (data.seed), head initialisation and batch order, the same for
                    every arm, so arms compare in pairs
  arms              from "scratch" (fresh initialisation), "finetune" (init_from the
                    pretrained run, everything trains), "probe" (init_from it, the
                    parameters matching probe_frozen frozen: a linear probe on the
                    frozen encoder)
  probe_frozen, probe_learning_rate   the probe's train.frozen and learning rate
  test_examples     examples of the test split scored per run (0 = all), for tasks
                    with a num_eval setting (kjv_books); others score their whole test split

`transfer_runs` turns that into complete single-run configs once; every run goes through
train/loop.run (locked, resumable, one workdir each):
  WORKDIR/pretrain/  WORKDIR/<arm>/labels_<fraction>/seed_<s>/
The fine-tuning runs evaluate on the task's validation split and keep their best
checkpoint by validation accuracy (train.keep_best); that checkpoint alone is scored
on the test split, once, into test_eval.json (a later call reads the file back).
transfer.json gathers every run's numbers, chance and majority rates, and
report/transfer.py draws the table and the curve from it.
"""
from __future__ import annotations

import copy
import json
import pathlib

import jax
import ml_collections

from attn_research.data import get_task
from attn_research.modes.base import register_mode
from attn_research.report.stats import label_rates
from attn_research.report.transfer import write_transfer
from attn_research.train.loop import evaluate, prepare, run
from attn_research.workdir import CHECKPOINTS_BEST, write_json
from attn_research.workdir import checkpoint as ckpt_lib

ARMS = ("scratch", "finetune", "probe")
PRETRAIN_OBJECTIVES = ("masked_lm", "classification")
# The data settings that fix the chapter split: the pretraining task must share them,
# or pretraining could read the fine-tuning task's validation and test text.
SPLIT_KEYS = ("heldout_chapters", "split_seed", "source", "max_length")
TEST_EVAL = "test_eval.json"
RESULTS = "transfer.json"


def check(config):
  """Refuses a transfer section that cannot run, before anything is built."""
  t = config.transfer
  fractions = tuple(t.label_fractions)
  if not fractions or any(not 0 < f <= 1 for f in fractions) or len(set(fractions)) != len(
      fractions):
    raise ValueError(f"transfer.label_fractions={fractions} must be distinct shares in (0, 1]")
  steps = tuple(t.get("num_steps", ()) or ())
  if steps and (len(steps) != len(fractions)
                or any(not isinstance(n, int) or isinstance(n, bool) or n < 1 for n in steps)):
    raise ValueError(f"transfer.num_steps={steps} must be () or one positive int per label "
                     f"fraction {fractions}")
  if not (isinstance(t.num_seeds, int) and t.num_seeds >= 1):
    raise ValueError(f"transfer.num_seeds={t.num_seeds!r} must be a positive int")
  bad = [a for a in t.arms if a not in ARMS]
  if bad or not t.arms or len(set(t.arms)) != len(t.arms):
    raise ValueError(f"transfer.arms={tuple(t.arms)}: {bad or 'empty or repeated'}; valid: "
                     f"distinct names from {ARMS}")
  lacking = [k for k in ("label_fraction", "eval_split") if k not in config.data]
  if lacking:
    raise ValueError(f"mode='transfer' fine-tunes on a labelled task with data.label_fraction "
                     f"and a validation split (kjv_books, digits); data.name="
                     f"{config.data.name!r} has no {' or '.join(lacking)}")
  objective = t.pretrain.get("objective", "masked_lm")
  if objective not in PRETRAIN_OBJECTIVES:
    raise ValueError(f"transfer.pretrain.objective={objective!r}; valid: {PRETRAIN_OBJECTIVES}")
  if (objective == "masked_lm") != ("masking" in t.pretrain):
    raise ValueError(f"transfer.pretrain.masking is {'missing' if objective == 'masked_lm' else 'set'}"
                     f": it goes with objective 'masked_lm' only (got {objective!r})")
  mismatched = [f"{k}: pretrain {t.pretrain.data.get(k)!r}, fine-tune {config.data.get(k)!r}"
                for k in SPLIT_KEYS
                if k in config.data and t.pretrain.data.get(k) != config.data.get(k)]
  if mismatched:
    raise ValueError("transfer.pretrain.data must split the text as data does (else "
                     "pretraining may read held-out text): " + "; ".join(mismatched))


def _single(config, **changes):
  """A copy of config as one run: no transfer section, mode single, `changes` applied
  (dotted keys)."""
  single = copy.deepcopy(config)
  with single.unlocked():
    if "transfer" in single:
      del single["transfer"]
    single.mode = "single"
    for key, value in changes.items():
      node, *path = key.split(".")
      target = single
      for part in [node, *path][:-1]:
        target = target[part]
      target[[node, *path][-1]] = value
  single.lock()
  return single


def pretrain_config(config):
  t = config.transfer.pretrain
  single = _single(config, objective=t.get("objective", "masked_lm"))
  with single.unlocked():
    single.data = ml_collections.ConfigDict(t.data.to_dict())
    single.train = ml_collections.ConfigDict(t.train.to_dict())
    if "masking" in t:
      single.masking = ml_collections.ConfigDict(t.masking.to_dict())
  single.lock()
  return single


def run_dir(workdir, arm, fraction, seed) -> pathlib.Path:
  return pathlib.Path(workdir) / arm / f"labels_{fraction:g}" / f"seed_{seed}"


def transfer_runs(config, workdir) -> dict:
  """{(arm, fraction, seed): (complete single-run config, workdir)}, built once."""
  t, source = config.transfer, str(pathlib.Path(workdir) / "pretrain")
  runs = {}
  steps = tuple(t.get("num_steps", ()) or ()) or (config.train.num_steps,) * len(
      t.label_fractions)
  for arm in t.arms:
    for fraction, num_steps in zip(t.label_fractions, steps):
      for seed in range(config.seed, config.seed + t.num_seeds):
        changes = {"seed": seed, "data.seed": seed, "data.label_fraction": float(fraction),
                   "data.eval_split": "validation", "train.num_steps": int(num_steps)}
        if arm != "scratch":
          changes["init_from"] = source
        if arm == "probe":
          changes.update({"train.frozen": t.probe_frozen,
                          "train.learning_rate": float(t.probe_learning_rate)})
        runs[arm, fraction, seed] = (_single(config, **changes),
                                     run_dir(workdir, arm, fraction, seed))
  return runs


def test_data(data, test_examples: int):
  """The data settings of the test split (test_examples of it where the task samples)."""
  data = copy.deepcopy(data)
  with data.unlocked():
    data.eval_split = "test"
    if "num_eval" in data:
      data.num_eval = test_examples
  return data


def test_eval(p, test_examples: int) -> dict:
  """The best-on-validation checkpoint of prepared run p scored on the test split, once:
  written to WORKDIR/test_eval.json and read back on later calls."""
  path = p.workdir / TEST_EVAL
  if path.exists():
    return json.loads(path.read_text())
  task = get_task(test_data(p.config.data, test_examples))
  best = p.config.train.keep_best
  directory = p.workdir / (CHECKPOINTS_BEST if best else ckpt_lib.CHECKPOINTS)
  checkpointer = ckpt_lib.Checkpointer(directory, 1 if best else p.config.train.keep_checkpoints)
  try:
    state = checkpointer.restore(p.dp.abstract(p.objective.abstract_state()), move_aside=False)
    step = checkpointer.restored_step
  finally:
    checkpointer.close()
  metrics = evaluate(p, jax.jit(p.objective.eval_step), state, task=task)
  labels = task.evaluation["targets"]
  result = dict(metrics, step=int(step), split="test", examples=int(len(labels)),
                chosen_by=f"validation {best}" if best else "the last step")
  write_json(path, result)
  return result


def rates(task) -> dict:
  """Chance (uniform guess) and majority (always the commonest label) accuracy of the
  task's evaluation set, the majority class by name where the task names its classes."""
  out = label_rates(task.evaluation["targets"], task.info.num_classes)
  names = getattr(task, "class_names", None)
  if names:
    out["majority_class"] = names[out["majority_class"]]
  return out


def run_transfer(config, workdir, *, progress: bool = True) -> dict:
  """Pretrains, fine-tunes every (arm, fraction, seed), scores each on the test split;
  writes WORKDIR/transfer.json and returns its content. Everything that can be checked
  without the pretrained parameters (every config, the frozen pattern) is checked
  before the first step."""
  check(config)
  workdir = pathlib.Path(workdir)
  t = config.transfer
  runs = transfer_runs(config, workdir)
  pre = prepare(pretrain_config(config), workdir / "pretrain")
  # The runs of one arm differ only in seed and label share (checked above): one of each
  # arm is built before training, without the source it cannot read yet (prepare writes
  # nothing, so the directory it is given stays absent).
  first = {}
  for (arm, _, _), (single, _) in runs.items():
    first.setdefault(arm, single)
  for single in first.values():
    prepare(_single(single, init_from=""), workdir / ".check")
  pre_summary = run(pre.config, pre.workdir, progress=progress, desc="pretrain", prepared=pre)
  rows, test_rates = [], None
  for (arm, fraction, seed), (single, where) in runs.items():
    p = prepare(single, where)
    summary = run(p.config, p.workdir, progress=progress,
                  desc=f"{arm} {fraction:g} seed {seed}", prepared=p)
    test = test_eval(p, t.test_examples)
    if test_rates is None:
      test_rates = rates(get_task(test_data(single.data, t.test_examples)))
    rows.append(dict(arm=arm, fraction=float(fraction), seed=seed, workdir=str(where),
                     labels=p.task.info.train_size, params=summary["params"],
                     steps=summary["step"],
                     validation=summary["best_eval"] or summary["final_eval"], test=test,
                     wall_time_s=summary["wall_time_s"]))
  results = dict(task=config.data.name, pretrain=dict(
      workdir=str(pre.workdir), task=pre.config.data.name, steps=pre_summary["step"],
      objective=pre.config.get("objective", "masked_lm"),
      final_eval=pre_summary["final_eval"], params=pre_summary["params"],
      wall_time_s=pre_summary["wall_time_s"]), test_rates=test_rates, runs=rows)
  write_json(workdir / RESULTS, results)
  return results


@register_mode("transfer")
def transfer_mode(config, workdir, *, progress: bool = True) -> str:
  run_transfer(config, workdir, progress=progress)
  table, png = write_transfer(workdir)
  return f"\n{table}\n\ncurve: {png}\ntable: {pathlib.Path(workdir) / 'transfer.md'}"
