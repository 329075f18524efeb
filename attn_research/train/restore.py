"""A trained model back from its workdir: the config it was trained with (config.json)
and the parameters of its latest checkpoint, for evaluation, attention maps and reports."""
from __future__ import annotations

import json
import pathlib
import types

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from attn_research.data import get_task
from attn_research.models import get_model
from attn_research.train import checkpoint as ckpt_lib
from attn_research.train.optim import make_optimizer


def load_trained(workdir, *, data_overrides=None):
  """(config, task, model) with the model's parameters from the latest checkpoint.

  data_overrides: settings of config.data to change for evaluation (e.g. a longer
  length); the model is still built for the task it was trained on.
  """
  workdir = pathlib.Path(workdir)
  config_path = workdir / "config.json"
  if not config_path.exists() or not ckpt_lib.has_checkpoint(workdir):
    raise ValueError(f"{workdir} is not a trained run (needs config.json and checkpoints/)")
  config = ml_collections.ConfigDict(json.loads(config_path.read_text()))
  train_task = get_task(config.data)
  model = nnx.eval_shape(lambda: get_model(config.model, train_task.info,
                                           rngs=nnx.Rngs(params=0, dropout=1)))
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  tx, _ = make_optimizer(config.train)
  abstract = {"step": jax.ShapeDtypeStruct((), jnp.int32), "params": params,
              "opt_state": jax.eval_shape(tx.init, params)}
  checkpointer = ckpt_lib.Checkpointer(workdir / "checkpoints", config.train.keep_checkpoints)
  try:
    state = checkpointer.restore(abstract)
  finally:
    checkpointer.close()
  rest = jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), rest)
  model = nnx.merge(graphdef, state["params"], rest)
  task = train_task
  if data_overrides:
    with config.unlocked():
      data_cfg = ml_collections.ConfigDict(dict(config.data, **data_overrides))
    task = get_task(data_cfg)
  return types.SimpleNamespace(config=config, task=task, model=model, step=int(state["step"]))

