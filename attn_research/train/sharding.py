"""Sharding rules: which mesh axes each array of a training state is split over.

The mesh (train/parallel.py, `config.mesh`) has four axes:
  data    the batch is split over it; every array of the state is whole on each slice
  fsdp    the batch is split over it too, and every parameter (with its optimizer state)
          is split along one dimension (fully sharded data parallel, ZeRO-3 style): XLA
          gathers a parameter where a layer needs it and reduce-scatters its gradient
  tensor  attention heads and MLP width are split over it (Megatron style): each device
          holds some heads' q/k/v/out projections and a slice of the MLP's hidden units
  sequence  the batch's length axis is split over it (sequence or context parallelism,
          train/sequence.py); no rule names it, so the state is whole on every slice of it

Rules are written as in big_vision: an ordered list of (regex, PartitionSpec) pairs over
"/"-joined paths ("params/blocks/0/mlp/up/kernel"); the first rule that matches a path
gives that array's tensor-parallel spec. A rule's regex matches the END of a path (it is
tried as `(.*/)?REGEX` against the whole path), so the rule "mlp/up/kernel" covers the
parameter and Adam's moments of it alike ("opt_state/1/0/mu/blocks/0/mlp/up/kernel"):
optax states hold one array per parameter under the parameter's own path, with its
shape. The rules read paths only, never the objective's layout, so a state with several
parameter groups (a GAN's generator and discriminator) is sharded the same way; arrays no
rule matches (norms, embeddings, heads, counters, anything an objective adds) get no
tensor axis.

FSDP is a rule on shapes, applied after the tensor rules to every array with a dimension
left free: the largest free dimension whose size the fsdp axis divides is split over
"fsdp" (the first such one on a tie); an array without one stays whole. An array the
optimizer mirrors gets the same choice as its parameter because the choice reads only
the shape and the free dimensions.

Activations get no rules: the batch is split over (data, fsdp) (and its length axis over
sequence) where it enters the jitted step and XLA's SPMD partitioner propagates the rest
from the parameters' shardings.
"""
from __future__ import annotations

import re

import jax
from jax.sharding import PartitionSpec as P

from attn_research.objectives.optim import path_name

# Laid out in this order, data outermost: a tensor group and a sequence ring (which pass
# activations every layer) sit on neighbouring devices.
AXES = ("data", "fsdp", "sequence", "tensor")
SEQUENCE_AXIS = "sequence"  # the batch's length axis (dimension 1) is split over it
BATCH_AXES = ("data", "fsdp")  # the batch dimension is split over both

# (regex, spec, what the split dimension is: named in errors). The projections are
# nnx.LinearGeneral of nn/attention/multi_head.py and nn/cross_attention.py: query, key and
# value kernels [D, H, Dh] with biases [H, Dh], the output kernel [H, Dh, D]; the MLP is
# nn/transformer.MLP: up [D, F] (+ bias [F]) then down [F, D].
_ATTN = r"(attn|self_attn|cross_attn)"
_HEADS = "attention heads (model.num_heads)"
_WIDTH = "MLP width (model.mlp_ratio x model.d_model)"
TENSOR_RULES = (
    (_ATTN + r"/(query|key|value)/kernel", P(None, "tensor", None), _HEADS),
    (_ATTN + r"/(query|key|value)/bias", P("tensor", None), _HEADS),
    (_ATTN + r"/out/kernel", P("tensor", None, None), _HEADS),
    (r"mlp/up/kernel", P(None, "tensor"), _WIDTH),
    (r"mlp/up/bias", P("tensor"), _WIDTH),
    (r"mlp/down/kernel", P("tensor", None), _WIDTH),
)
_COMPILED = tuple((re.compile(r"(?:.*/)?" + regex), spec, what)
                  for regex, spec, what in TENSOR_RULES)


def tensor_rule(path: str, ndim: int):
  """(spec, what) of the first tensor rule matching path with ndim dimensions, or None."""
  for regex, spec, what in _COMPILED:
    if len(spec) == ndim and regex.fullmatch(path):
      return spec, what
  return None


def leaf_spec(path: str, shape, sizes: dict) -> P:
  """The PartitionSpec of one array (see the module docstring); sizes: {axis: size}.
  Raises ValueError when a tensor rule matches but the tensor axis does not divide the
  dimension it splits."""
  spec = [None] * len(shape)
  tensor, fsdp = sizes.get("tensor", 1), sizes.get("fsdp", 1)
  if tensor > 1:
    rule = tensor_rule(path, len(shape))
    if rule is not None:
      rule_spec, what = rule
      for dim, axis in enumerate(rule_spec):
        if axis is None:
          continue
        if shape[dim] % tensor:
          valid = [d for d in range(1, shape[dim] + 1) if shape[dim] % d == 0]
          raise ValueError(f"mesh.tensor={tensor} must divide the {what} = {shape[dim]} "
                           f"(dimension {dim} of {path}, shape {tuple(shape)}); mesh.tensor "
                           f"values that divide it: {valid}")
        spec[dim] = axis
  if fsdp > 1:
    free = [d for d in range(len(shape)) if spec[d] is None and shape[d] % fsdp == 0]
    if free:
      spec[max(free, key=lambda d: (shape[d], -d))] = "fsdp"
  return P(*spec)


def state_specs(tree, sizes: dict):
  """The PartitionSpec of every array of tree (arrays or ShapeDtypeStructs), same
  structure."""
  return jax.tree_util.tree_map_with_path(
      lambda path, x: leaf_spec(path_name(path), x.shape, sizes), tree)


def check_axes_used(tree, sizes: dict, what: str):
  """Refuses a mesh axis > 1 that shards nothing of tree (a tensor axis on a model without
  attention or MLP projections, an fsdp axis that divides no dimension): it would only
  replicate the work. what names the tree in the message ("model transformer")."""
  specs = jax.tree.leaves(state_specs(tree, sizes), is_leaf=lambda x: isinstance(x, P))
  used = {a for spec in specs for a in spec if a is not None}
  for axis in ("fsdp", "tensor"):
    if sizes.get(axis, 1) > 1 and axis not in used:
      hint = (f"no parameter path of {what} matches a tensor rule "
              f"({', '.join(r for r, _, _ in TENSOR_RULES)})" if axis == "tensor" else
              f"no parameter of {what} has a dimension divisible by {sizes[axis]}")
      raise ValueError(f"mesh.{axis}={sizes[axis]} shards nothing: {hint}; set "
                       f"--config.mesh.{axis}=1")
