"""Building blocks for experiment config files (experiments/*.py).

Every config file defines get_config(arg) -> ml_collections.ConfigDict. `arg` is the
text after the colon in `experiments/x.py:arg`, a comma-separated list of words; the
word `smoke` shrinks any config to a few seconds (tiny model, three steps) for tests.
"""
from __future__ import annotations

import ml_collections

from attn_research import args
from attn_research.data import task_defaults, task_smoke
from attn_research.models import model_defaults

TRAIN_DEFAULTS = dict(
    batch_size=64, eval_batch_size=256, num_steps=1000,
    optimizer="adamw", learning_rate=1e-3, weight_decay=0.01, grad_clip=1.0,
    schedule="cosine", warmup_steps=50, decay_fraction=0.3,
    log_every=50, eval_every=250, checkpoint_every=250, keep_checkpoints=3,
    # > 1: trim each batch's padding to one of this many lengths (one compile each).
    length_buckets=1,
    # N > 1: each step runs the batch as N microbatches and adds their gradients (the
    # memory of batch_size / N, the update of batch_size); must divide the per-device batch.
    accumulate_steps=1,
    # A regular expression over parameter paths ("blocks/0/mlp/up/kernel"): parameters
    # whose whole path matches are frozen (no update, no optimizer state); "" freezes none.
    frozen="",
    # "accuracy" (higher is better) or "loss" (lower is better): also keep the best eval
    # step's checkpoint in checkpoints_best/ and its metrics in summary.json's best_eval;
    # "" keeps none.
    keep_best="")

# train/parallel.MESH_DEFAULTS, spelled here: configs import no train/ module.
MESH_DEFAULTS = dict(data=-1, fsdp=1, sequence=1, tensor=1)

REPORT_DEFAULTS = dict(
    # True: after training, attention maps of the first eval example (per-head heat maps,
    # rollout, mean attention distance) go into the workdir (modes/attention_maps.py).
    attention_maps=False)

SMOKE_TRAIN = dict(batch_size=8, eval_batch_size=64, num_steps=3, warmup_steps=1,
                   log_every=1, eval_every=3, checkpoint_every=3)
SMOKE_MODEL = dict(d_model=16, num_layers=1, num_heads=2)


def base_config(task: str = "digits", model: str = "transformer", **task_settings):
  """The shared defaults: one model, one task, the training settings (unlocked)."""
  config = ml_collections.ConfigDict()
  config.mode = "single"              # what `run` does: attn_research/modes/
  config.objective = "classification"  # what training minimises: attn_research/objectives/
  config.seed = 0
  config.resume = True
  # WORKDIR or WORKDIR:STEP of another run: start from its parameters (the latest or that
  # step's checkpoint) but those whose path matches init_skip (newly initialised: the
  # output head by default); train/init_from.py. "" starts from a fresh initialisation.
  config.init_from = ""
  config.init_skip = "head/.*"
  config.data = ml_collections.ConfigDict(dict(task_defaults(task), **task_settings))
  config.model = ml_collections.ConfigDict(model_defaults(model))
  config.train = ml_collections.ConfigDict(TRAIN_DEFAULTS)
  # How the devices are arranged (train/parallel.py, train/sharding.py): the batch is split
  # over data x fsdp, parameters and optimizer state over fsdp, attention heads and MLP
  # width over tensor, the batch's length axis over sequence (with
  # model.attention_impl=ring, train/sequence.py); -1 = the devices the other axes leave.
  # The default is plain data parallelism. Changes how a step is computed, not what: a
  # workdir resumes on any mesh.
  config.mesh = ml_collections.ConfigDict(MESH_DEFAULTS)
  # What is drawn after training (never changes the training; a workdir resumes across it).
  config.report = ml_collections.ConfigDict(REPORT_DEFAULTS)
  return config


# A comparison's fairness settings (modes/comparison.py): budget.params or budget.flops > 0
# solves every model's d_model for that target within `tolerance`; models whose sizes
# spread wider than `max_spread` refuse to run unless `enforce` is False.
BUDGET_DEFAULTS = dict(params=0, flops=0, tolerance=0.05, max_spread=0.10, enforce=True)


def family_models(spec: dict) -> dict:
  """{name: (family, settings)} -> {name: the family's defaults updated by settings}."""
  return {name: dict(model_defaults(family), **settings)
          for name, (family, settings) in spec.items()}


def make_comparison(config, models: dict, **budget):
  """Turns a one-model config into a comparison: config.models = {name: complete model
  section}, config.budget = BUDGET_DEFAULTS updated by budget."""
  unknown = sorted(set(budget) - set(BUDGET_DEFAULTS))
  if unknown:
    raise ValueError(f"unknown budget settings {unknown}; valid: {sorted(BUDGET_DEFAULTS)}")
  del config.model
  config.mode = "comparison"
  config.models = ml_collections.ConfigDict(models)
  config.budget = ml_collections.ConfigDict(dict(BUDGET_DEFAULTS, **budget))
  return config


def parse_arg(arg: str | None):
  """The words of `experiments/x.py:ARG` that are on ("copy,smoke" -> ["copy", "smoke"];
  "smoke=false" -> []), in the grammar of every NAME:ARG (attn_research/args.py);
  finalize checks them against the words the config knows."""
  return args.parse_flags(arg, what="config argument")


def shrink_model(model_cfg):
  for key, value in SMOKE_MODEL.items():
    if key in model_cfg:
      model_cfg[key] = value


def smoke(config):
  """Shrinks config in place to a three-step run of a tiny model."""
  config.train.update(SMOKE_TRAIN)
  config.data.update(task_smoke(config.data.name))
  for model_cfg in (config.models.values() if config.mode == "comparison" else [config.model]):
    shrink_model(model_cfg)
  if "budget" in config:
    # Tiny models test the plumbing, not fairness: no width solving, no refusal.
    config.budget.update(params=0, enforce=False)
    if "flops" in config.budget:
      config.budget.flops = 0
  return config


def finalize(config, words, known=()):
  """Applies `smoke`; rejects words the config does not know (with the valid ones)."""
  flags = args.parse_arg(",".join(words), what="config argument",
                         **dict.fromkeys(["smoke", *known], False))
  return smoke(config) if flags["smoke"] else config
