"""Models by name: `get_model(config.model, task_info)`.

A model family registers a builder and its default settings. The defaults are the
complete set of keys the family reads, so a config for one family cannot carry a
setting that only another family would use (the config is locked on these keys).

Every family also reads the precision settings, applied here once for all of them:
  dtype        the computation dtype: "auto" (bfloat16 on a TPU or a GPU that has it,
               float32 on a CPU), "float32" or "bfloat16"
  param_dtype  the storage dtype of the parameters (and so of their gradients and the
               optimizer's moments): "float32" (mixed precision) or "bfloat16"
get_model builds the family in float32, then sets `dtype` and `param_dtype` on every Flax
layer (nnx.Linear, LinearGeneral, Conv, Embed, LayerNorm, GroupNorm, the RNN cells: the
layers that take them) and casts the parameters to param_dtype. Matmuls and
convolutions then run in dtype; what needs range stays float32: the attention kernels
form scores and softmax in float32 (kernels/attention.py), Flax's normalisation layers
compute their statistics in at least float32, and the objectives take the loss of float32
logits. float32 with float32 changes nothing (the model is returned as built). bfloat16
on a device without it (a GPU before Ampere) is refused before anything compiles.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from attn_research.registry import Registry, check_choice

MODELS = Registry("model.name")
PRECISION_DEFAULTS = dict(dtype="auto", param_dtype="float32")
COMPUTE_DTYPES = ("auto", "float32", "bfloat16")
PARAM_DTYPES = ("float32", "bfloat16")


def register_model(name: str, defaults: dict):
  """Decorator: builder(cfg, task_info, rngs) -> nnx.Module called as model(inputs, mask, train=).
  The precision settings (module docstring) are added to defaults."""
  return MODELS.register(name, dict(defaults, **PRECISION_DEFAULTS))


def _bfloat16_problem(device) -> str | None:
  """Why device cannot compute in bfloat16, or None."""
  if device.platform == "gpu":
    capability = getattr(device, "compute_capability", None)
    if capability is not None and float(capability) < 8.0:
      return (f"{device.device_kind} (compute capability {capability}) has no bfloat16 "
              "arithmetic (it needs 8.0, Ampere, or newer)")
    return None
  if device.platform not in ("cpu", "tpu"):
    return f"backend {device.platform!r} is not known to compute in bfloat16"
  return None


def resolve_dtypes(cfg, device=None) -> tuple[str, str]:
  """(computation dtype, parameter dtype) names for a model section, "auto" resolved for
  device (default: the first device); ValueError naming the value and the valid ones."""
  device = device or jax.devices()[0]
  compute, param = cfg.get("dtype", "auto"), cfg.get("param_dtype", "float32")
  check_choice("model.dtype", compute, COMPUTE_DTYPES)
  check_choice("model.param_dtype", param, PARAM_DTYPES)
  if compute == "auto":  # bfloat16 where the accelerator computes in it
    compute = ("bfloat16" if device.platform in ("gpu", "tpu")
               and _bfloat16_problem(device) is None else "float32")
  for key, value in (("dtype", compute), ("param_dtype", param)):
    if value == "bfloat16":
      problem = _bfloat16_problem(device)
      if problem:
        raise ValueError(f"model.{key}=bfloat16 is refused: {problem}; use model.{key}="
                         "float32" + (" (or auto)" if key == "dtype" else ""))
  return compute, param


def set_precision(model, compute: str, param: str):
  """Sets dtype and param_dtype on every Flax layer of model and casts its floating
  parameters to param (module docstring); model is changed in place and returned."""
  model.compute_dtype, model.param_dtype_name = compute, param
  if compute == param == "float32":
    return model
  for _, node in nnx.iter_graph(model):
    if isinstance(node, nnx.Module) and hasattr(node, "dtype") and hasattr(node, "param_dtype"):
      node.dtype, node.param_dtype = jnp.dtype(compute), jnp.dtype(param)
  params = nnx.state(model, nnx.Param)
  nnx.update(model, jax.tree.map(
      lambda x: x.astype(param) if jnp.issubdtype(x.dtype, jnp.floating) else x, params))
  return model


def model_defaults(name: str) -> dict:
  """The default settings of a family (a fresh dict), for building configs."""
  return MODELS.defaults(name)


def get_model(model_cfg, task_info, *, rngs: nnx.Rngs | None = None):
  """Builds the model named model_cfg.name for the task. Raises before any compilation."""
  builder, cfg = MODELS.resolve(model_cfg)
  compute, param = resolve_dtypes(cfg)
  builder_cfg = {k: v for k, v in cfg.items() if k not in PRECISION_DEFAULTS}
  model = builder(builder_cfg, task_info, rngs if rngs is not None else nnx.Rngs(0))
  return set_precision(model, compute, param)


def count_params(model) -> int:
  return sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
