"""One way back from a workdir: the state of a run's latest checkpoint.

`restore_state(prepared)` restores a prepared run's objective state (what the loop
checkpoints) from its workdir; extrapolation and `load_trained` both go through it.
`load_trained(workdir)` rebuilds a trained model from the workdir alone: the config it
was trained with (config.json) and the parameters of its latest checkpoint, for
evaluation, attention maps and reports. (The loop itself restores through the same
Checkpointer, which it keeps open to save.)
"""
from __future__ import annotations

import pathlib
import types

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from attn_research.data import get_task
from attn_research.models import get_model
from attn_research.objectives import get_objective
from attn_research.objectives.base import check_one_network
from attn_research.workdir import CHECKPOINTS, CONFIG, read_config
from attn_research.workdir import checkpoint as ckpt_lib


def restore_state(p, abstract=None):
  """The latest checkpointed state of prepared run p (train/loop.prepare), restored onto
  the run's devices; abstract: its shape skeleton when already known."""
  if abstract is None:
    abstract = p.dp.abstract(p.objective.abstract_state())
  checkpointer = ckpt_lib.Checkpointer(p.workdir / CHECKPOINTS,
                                       p.config.train.keep_checkpoints)
  try:
    return checkpointer.restore(abstract)
  finally:
    checkpointer.close()


def load_trained(workdir, *, data_overrides=None):
  """(config, task, model, step) with the model's parameters from the latest checkpoint.

  data_overrides: settings of config.data to change for evaluation (e.g. a longer
  length); the model is still built for the task it was trained on.
  """
  workdir = pathlib.Path(workdir)
  stored = read_config(workdir)
  if stored is None or not ckpt_lib.has_checkpoint(workdir):
    raise ValueError(f"{workdir} is not a trained run (needs {CONFIG} and {CHECKPOINTS}/)")
  config = ml_collections.ConfigDict(stored)
  check_one_network(config.get("objective", "classification"), f"reading {workdir} back")
  train_task = get_task(config.data)
  model = nnx.eval_shape(lambda: get_model(config.model, train_task.info,
                                           rngs=nnx.Rngs(params=0, dropout=1)))
  objective = get_objective(config, model)
  abstract = objective.abstract_state()
  checkpointer = ckpt_lib.Checkpointer(workdir / CHECKPOINTS,
                                       config.train.keep_checkpoints)
  try:
    # A reader leaves the workdir as it is (a run may be writing it): unreadable steps
    # are skipped and reported, not moved aside.
    state = checkpointer.restore(abstract, move_aside=False)
  finally:
    checkpointer.close()
  rest = jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), objective.rest)
  model = nnx.merge(objective.graphdef, state["params"], rest)
  task = train_task
  if data_overrides:
    with config.unlocked():
      data_cfg = ml_collections.ConfigDict(dict(config.data, **data_overrides))
    task = get_task(data_cfg)
  return types.SimpleNamespace(config=config, task=task, model=model, step=int(state["step"]))
