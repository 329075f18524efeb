"""Cross-entropy on integer labels: one label per sequence, a label per vector,
next tokens (decoder-only sequence outputs) and seq2seq targets alike.

Which targets count: the batch's target_mask if it has one, else its input mask for
per-vector outputs, else every example. Loss and accuracy are means over the counted
targets, so padding and unscored tokens never move them.
"""
from __future__ import annotations

import jax.numpy as jnp
import optax

from attn_research.objectives.base import Objective, register_objective


def target_weights(batch, logits):
  """1.0 where a target is scored, 0.0 elsewhere (see the module docstring)."""
  if "target_mask" in batch:
    return batch["target_mask"].astype(jnp.float32)
  if logits.ndim == 3:
    return batch["mask"].astype(jnp.float32)
  return jnp.ones(batch["targets"].shape, jnp.float32)


def loss_sums(logits, batch):
  """Summed cross-entropy, summed correct predictions and the count of scored targets."""
  w = target_weights(batch, logits)
  ce = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32),
                                                       batch["targets"])
  correct = (jnp.argmax(logits, -1) == batch["targets"]).astype(jnp.float32)
  return {"loss": (ce * w).sum(), "accuracy": (correct * w).sum(), "count": w.sum()}


@register_objective("classification")
class Classification(Objective):
  """The default objective: softmax cross-entropy, accuracy as the metric."""

  def loss_and_sums(self, logits, batch):
    sums = loss_sums(logits, batch)
    return sums["loss"] / jnp.maximum(sums["count"], 1.0), sums
