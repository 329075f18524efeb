"""Optimizer and learning-rate schedule from config.train (optax), and freezing.

train.frozen is a regular expression over parameter paths ("blocks/0/attn/query/kernel",
"embed/embed/embedding", "head/proj/bias": the names `param_paths` gives, printed by
init_from); every parameter whose whole path matches is frozen. Freezing goes through
optax.multi_transform: frozen parameters get optax.set_to_zero (a zero update, so they
stay bit-identical) and no optimizer state at all (Adam's moments, weight decay and
gradient clipping see the trainable parameters only).
"""
from __future__ import annotations

import re

import jax
import optax

from attn_research.registry import check_choice

# adam_l2: Adam on the loss plus weight_decay / 2 * |params|^2 (the L2 term of GAT's and
# GCN's code, torch.optim.Adam's weight_decay): the decay passes through Adam's scaling,
# unlike adamw's decoupled decay.
OPTIMIZERS = ("adamw", "adam", "radam", "sgd", "adam_l2")
SCHEDULES = ("constant", "cosine", "step")


def make_schedule(tc):
  """Linear warm-up over warmup_steps, then constant, cosine decay to 0, or a drop to
  lr / 10 after decay_fraction of training (the "Transformers are RNNs" copy task)."""
  check_choice("train.schedule", tc.schedule, SCHEDULES)
  lr, warm, total = tc.learning_rate, tc.warmup_steps, tc.num_steps
  if not 0 <= warm < max(total, 1):
    raise ValueError(f"train.warmup_steps={warm} must be in [0, num_steps={total})")
  if tc.schedule == "constant":
    after = optax.constant_schedule(lr)
  elif tc.schedule == "cosine":
    after = optax.cosine_decay_schedule(lr, max(total - warm, 1))
  else:
    if not 0 < tc.decay_fraction < 1:
      raise ValueError(f"train.decay_fraction={tc.decay_fraction} must be in (0, 1)")
    after = optax.piecewise_constant_schedule(lr, {int(tc.decay_fraction * total) - warm: 0.1})
  if warm == 0:
    return after
  return optax.join_schedules([optax.linear_schedule(0.0, lr, warm), after], [warm])


def param_paths(params) -> dict:
  """{"blocks/0/attn/query/kernel": leaf, ...} of a parameter tree (nnx State or dict)."""
  flat, _ = jax.tree_util.tree_flatten_with_path(params)
  return {path_name(path): leaf for path, leaf in flat}


def path_name(path) -> str:
  """A jax key path as "a/0/b" (nnx's Variable wrapper, `.value`, is left out)."""
  parts = []
  for key in path:
    name = getattr(key, "key", getattr(key, "idx", getattr(key, "name", key)))
    if isinstance(key, jax.tree_util.GetAttrKey) and name == "value":
      continue
    parts.append(str(name))
  return "/".join(parts)


def frozen_pattern(pattern: str, params):
  """The compiled train.frozen, refused when it is not a regular expression, matches no
  parameter path, or matches every one (nothing would train)."""
  try:
    compiled = re.compile(pattern)
  except re.error as e:
    raise ValueError(f"train.frozen={pattern!r} is not a regular expression: {e}") from None
  paths = list(param_paths(params))
  frozen = [p for p in paths if compiled.fullmatch(p)]
  shown = ", ".join(paths[:12]) + (", ..." if len(paths) > 12 else "")
  if not frozen:
    raise ValueError(f"train.frozen={pattern!r} matches no parameter path (the whole path "
                     f"must match); the model's {len(paths)} paths: {shown}")
  if len(frozen) == len(paths):
    raise ValueError(f"train.frozen={pattern!r} matches all {len(paths)} parameters: nothing "
                     "would train; e.g. '^(?!head/).*' freezes all but the output head")
  return compiled


def freeze(tx, pattern: str, params):
  """tx on the parameters train.frozen does not match; a zero update and no state on the
  others (see the module docstring)."""
  compiled = frozen_pattern(pattern, params)

  def labels(tree):
    return jax.tree_util.tree_map_with_path(
        lambda path, _: "frozen" if compiled.fullmatch(path_name(path)) else "trainable", tree)

  return optax.multi_transform({"trainable": tx, "frozen": optax.set_to_zero()}, labels)


def stop_frozen(params, pattern: str):
  """params with the gradient stopped at the leaves train.frozen matches: their zero
  gradient lets XLA drop the backward pass into a frozen encoder (a linear probe costs
  about a forward pass); the optimizer leaves them unchanged either way."""
  if not pattern:
    return params
  compiled = re.compile(pattern)
  return jax.tree_util.tree_map_with_path(
      lambda path, x: jax.lax.stop_gradient(x) if compiled.fullmatch(path_name(path)) else x,
      params)


def make_optimizer(tc, params=None):
  """(optax.GradientTransformation, schedule) for config.train; params (the model's
  parameter tree) are needed when train.frozen is set, to check it before compiling."""
  check_choice("train.optimizer", tc.optimizer, OPTIMIZERS)
  if tc.learning_rate <= 0:
    raise ValueError(f"train.learning_rate={tc.learning_rate} must be > 0")
  schedule = make_schedule(tc)
  if tc.optimizer == "adamw":
    opt = optax.adamw(schedule, weight_decay=tc.weight_decay)
  elif tc.optimizer == "radam":
    opt = optax.chain(optax.scale_by_radam(), optax.add_decayed_weights(tc.weight_decay),
                      optax.scale_by_learning_rate(schedule))
  elif tc.optimizer == "adam":
    if tc.weight_decay:
      raise ValueError(f"train.optimizer='adam' has no weight decay (got weight_decay="
                       f"{tc.weight_decay}); use 'adamw' or set weight_decay=0")
    opt = optax.adam(schedule)
  elif tc.optimizer == "adam_l2":
    opt = optax.chain(optax.add_decayed_weights(tc.weight_decay), optax.adam(schedule))
  else:
    opt = optax.chain(optax.add_decayed_weights(tc.weight_decay), optax.sgd(schedule, momentum=0.9))
  if tc.grad_clip < 0:
    raise ValueError(f"train.grad_clip={tc.grad_clip} must be >= 0 (0 = no clipping)")
  if tc.grad_clip:
    opt = optax.chain(optax.clip_by_global_norm(tc.grad_clip), opt)
  pattern = tc.get("frozen", "")
  if pattern:
    if params is None:
      raise ValueError(f"train.frozen={pattern!r} needs the model's parameters to match")
    opt = freeze(opt, pattern, params)
  return opt, schedule
