"""Starting a run from another run's parameters: `--config.init_from=WORKDIR[:STEP]`.

The source is read through the workdir package: its config.json says what model it
trained (family, settings, task), from which its parameter shapes are built abstractly
(nnx.eval_shape: nothing is computed or compiled) and its objective's checkpointed state
is restored from checkpoints/ (the latest readable step, or STEP), keeping the params.

Every parameter of the new model whose path matches config.init_skip (a regular
expression over paths such as "head/proj/kernel"; by default the output head) keeps its
fresh initialisation; every other one is loaded and must exist in the source with the
same shape, and every source parameter must be loaded or skipped: a parameter that is
missing on either side, or differs in shape, is an error naming it, so a source of
another depth or width is refused, never half-loaded. What is loaded, skipped and newly
initialised is printed by name and shape.

A run resuming from its own checkpoints never reads the source again (the loop restores
its state over the loaded one anyway; the source may have moved since).
"""
from __future__ import annotations

import pathlib
import re

import jax
import numpy as np
from flax import nnx

from attn_research.data import get_task
from attn_research.models import get_model
from attn_research.objectives import get_objective
from attn_research.objectives.base import check_one_network
from attn_research.objectives.optim import param_paths
from attn_research.workdir import CHECKPOINTS, CONFIG, read_config
from attn_research.workdir import checkpoint as ckpt_lib


def parse(spec: str):
  """"WORKDIR" -> (Path, None); "WORKDIR:STEP" -> (Path, STEP) (a trailing ":digits")."""
  m = re.fullmatch(r"(.+):(\d+)", spec)
  if m and not pathlib.Path(spec).exists():
    return pathlib.Path(m.group(1)), int(m.group(2))
  return pathlib.Path(spec), None


def check(config) -> dict:
  """The source's stored config; refuses, from its files alone (nothing built or
  compiled), a source that is not a trained run or trained another family or width."""
  spec = config.init_from
  workdir, _ = parse(spec)
  if not workdir.is_dir():
    raise ValueError(f"init_from={spec!r}: {workdir} is not a directory")
  stored = read_config(workdir)
  if stored is None or not ckpt_lib.has_checkpoint(workdir):
    found = sorted(p.name for p in workdir.iterdir())[:10]
    raise ValueError(f"init_from={spec!r}: {workdir} is not a trained run: it needs {CONFIG} "
                     f"and {CHECKPOINTS}/ with a step; found {found or 'nothing'}")
  check_family(spec, stored.get("model", {}), config.model)
  for objective, whose in ((stored.get("objective", "classification"), "the source"),
                           (config.get("objective", "classification"), "this run")):
    check_one_network(objective, f"init_from={spec!r} ({whose})")
  try:
    re.compile(config.get("init_skip", "head/.*"))
  except re.error as e:
    raise ValueError(f"init_skip={config.init_skip!r} is not a regular expression: {e}") from None
  return stored


def read_source(spec: str, stored: dict):
  """(source config, {path: array} of its parameters, step) of init_from=spec, whose
  config.json is `stored` (see check)."""
  import ml_collections  # here, not at import: the loop imports this module, and a GPU
  # machine without ml_collections must still import the loop (benchmarks/accelerator.py)
  workdir, step = parse(spec)
  config = ml_collections.ConfigDict(stored)
  info = get_task(config.data).info
  model = nnx.eval_shape(lambda: get_model(config.model, info, rngs=nnx.Rngs(0)))
  abstract = get_objective(config, model).abstract_state()
  checkpointer = ckpt_lib.Checkpointer(workdir / CHECKPOINTS, config.train.keep_checkpoints)
  try:
    try:
      state = checkpointer.restore(abstract, move_aside=False, step=step)
    except ckpt_lib.UnreadableCheckpointsError as e:
      raise ValueError(f"init_from={spec!r}: {e}") from None
    restored = checkpointer.restored_step
  finally:
    checkpointer.close()
  return config, param_paths(state["params"]), restored


def _shape(x) -> str:
  return "x".join(map(str, np.shape(x))) or "scalar"


def check_family(spec, source_model, model_cfg):
  """Refuses a source of another family or width, naming both."""
  for key in ("name", "d_model"):
    if key in model_cfg and source_model.get(key) != model_cfg[key]:
      raise ValueError(f"init_from={spec!r} is a run of model.{key}="
                       f"{source_model.get(key)!r}; this run has model.{key}="
                       f"{model_cfg[key]!r}: its parameters cannot be loaded")


def plan(source: dict, target: dict, skip: re.Pattern, spec: str):
  """(loaded, new, skipped) path lists; raises ValueError at the first parameter that
  is missing on one side or differs in shape."""
  loaded, new, skipped = [], [], []
  for path, leaf in target.items():
    if skip.fullmatch(path):
      new.append(path)
    elif path not in source:
      raise ValueError(f"init_from={spec!r}: parameter {path} ({_shape(leaf)}) of this model "
                       "is not in the source run; add it to init_skip to initialise it "
                       "afresh, or start from a run of the same architecture")
    elif np.shape(source[path]) != np.shape(leaf):
      raise ValueError(f"init_from={spec!r}: parameter {path} is {_shape(source[path])} in the "
                       f"source run but {_shape(leaf)} in this model")
    else:
      loaded.append(path)
  for path in source:
    if path not in target or skip.fullmatch(path):
      if path not in target and not skip.fullmatch(path):
        raise ValueError(f"init_from={spec!r}: the source's parameter {path} "
                         f"({_shape(source[path])}) has no place in this model (another "
                         "depth or architecture?); add it to init_skip to leave it out")
      skipped.append(path)
  return loaded, new, skipped


def apply(config, model):
  """Loads the source's parameters into model (in place) as the module docstring says;
  prints what happened. Runs before the objective splits the model (train/loop.prepare
  has run check() before building the model)."""
  spec = config.init_from
  stored = check(config)
  skip = re.compile(config.get("init_skip", "head/.*"))
  workdir, _ = parse(spec)
  source_config, source, step = read_source(spec, stored)
  params = nnx.state(model, nnx.Param)
  target = param_paths(params)
  loaded, new, skipped = plan(source, target, skip, spec)
  values = [np.asarray(source[p]) if p in loaded else None for p in target]
  leaves, treedef = jax.tree.flatten(params)
  nnx.update(model, jax.tree.unflatten(treedef, [
      jax.numpy.asarray(v, leaf.dtype) if v is not None else leaf
      for v, leaf in zip(values, leaves)]))
  n_loaded = sum(int(np.size(source[p])) for p in loaded)
  lines = [f"[init_from] {workdir} step {step} ({source_config.model.name}, trained on "
           f"{source_config.data.name}): loaded {len(loaded)} parameters ({n_loaded:,} "
           f"values), newly initialised {len(new)} (init_skip={skip.pattern!r}), skipped "
           f"{len(skipped)} of the source's"]
  lines += [f"  loaded   {p} {_shape(target[p])}" for p in loaded]
  lines += [f"  new      {p} {_shape(target[p])}" for p in new]
  lines += [f"  skipped  {p} {_shape(source[p])} (source)" for p in skipped]
  print("\n".join(lines), flush=True)
  return {"loaded": loaded, "new": new, "skipped": skipped, "step": step}
