"""Optimizer and learning-rate schedule from config.train (optax)."""
from __future__ import annotations

import optax

from attn_research.registry import check_choice

OPTIMIZERS = ("adamw", "adam", "radam", "sgd")
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


def make_optimizer(tc):
  """(optax.GradientTransformation, schedule) for config.train."""
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
  else:
    opt = optax.chain(optax.add_decayed_weights(tc.weight_decay), optax.sgd(schedule, momentum=0.9))
  if tc.grad_clip < 0:
    raise ValueError(f"train.grad_clip={tc.grad_clip} must be >= 0 (0 = no clipping)")
  if tc.grad_clip:
    opt = optax.chain(optax.clip_by_global_norm(tc.grad_clip), opt)
  return opt, schedule
