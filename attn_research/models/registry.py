"""Models by name: `get_model(config.model, task_info)`.

A model family registers a builder and its default settings. The defaults are the
complete set of keys the family reads, so a config for one family cannot carry a
setting that only another family would use (the config is locked on these keys).
"""
from __future__ import annotations

import jax
from flax import nnx

from attn_research.registry import Registry

MODELS = Registry("model.name")


def register_model(name: str, defaults: dict):
  """Decorator: builder(cfg, task_info, rngs) -> nnx.Module called as model(inputs, mask, train=)."""
  return MODELS.register(name, defaults)


def model_defaults(name: str) -> dict:
  """The default settings of a family (a fresh dict), for building configs."""
  return MODELS.defaults(name)


def get_model(model_cfg, task_info, *, rngs: nnx.Rngs | None = None):
  """Builds the model named model_cfg.name for the task. Raises before any compilation."""
  builder, cfg = MODELS.resolve(model_cfg)
  return builder(cfg, task_info, rngs if rngs is not None else nnx.Rngs(0))


def count_params(model) -> int:
  return sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
