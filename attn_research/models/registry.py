"""Models by name: `get_model(config.model, task_info)`.

A model family registers a builder and its default settings. The defaults are the
complete set of keys the family reads, so a config for one family cannot carry a
setting that only another family would use (the config is locked on these keys).
"""
from __future__ import annotations

import jax
from flax import nnx

MODELS = {}


def register_model(name: str, defaults: dict):
  """Decorator: builder(cfg, task_info, rngs) -> nnx.Module called as model(inputs, mask, train=)."""
  def wrap(builder):
    MODELS[name] = (builder, dict(defaults, name=name))
    return builder
  return wrap


def model_defaults(name: str) -> dict:
  """The default settings of a family (a fresh dict), for building configs."""
  _check_name(name)
  return dict(MODELS[name][1])


def _check_name(name):
  if name not in MODELS:
    raise ValueError(f"model name {name!r} is not registered; valid: {sorted(MODELS)}")


def get_model(model_cfg, task_info, *, rngs: nnx.Rngs | None = None):
  """Builds the model named model_cfg.name for the task. Raises before any compilation."""
  name = model_cfg["name"]
  _check_name(name)
  builder, defaults = MODELS[name]
  unknown = sorted(set(model_cfg.keys()) - set(defaults))
  if unknown:
    raise ValueError(f"model {name!r} does not use {unknown}; its settings are {sorted(defaults)}")
  cfg = dict(defaults, **dict(model_cfg.items()))
  return builder(cfg, task_info, rngs if rngs is not None else nnx.Rngs(0))


def count_params(model) -> int:
  return sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
