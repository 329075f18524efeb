"""T5's learned relative position bias (`model.position=relative`; Raffel et al. 2020)."""
from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from attn_research.kernels import relative
from attn_research.nn.positions.base import Position, register_positional


@register_positional("relative")
class RelativeBiasPosition(Position):
  """A learned scalar per head and log-spaced bucket of the offset j - i (32 buckets up
  to distance 128), added to the scores."""
  needs_bias = True
  NUM_BUCKETS, MAX_DISTANCE = 32, 128

  def __init__(self, d_model, max_length, num_heads, *, rngs):
    self.table_NH = nnx.Param(jnp.zeros((self.NUM_BUCKETS, num_heads), jnp.float32))

  def _bias(self, q_positions, k_positions, causal):
    """[1, H, len(q), len(k)]: the table's entry for each offset's bucket."""
    buckets = relative.t5_relative_bucket(
        relative.relative_positions(q_positions, k_positions), bidirectional=not causal,
        num_buckets=self.NUM_BUCKETS, max_distance=self.MAX_DISTANCE)
    return relative.relative_bias(self.table_NH[...], buckets)

  def in_attention(self, q_BTHD, k_BSHD, *, causal):
    bias = self._bias(jnp.arange(q_BTHD.shape[1]), jnp.arange(k_BSHD.shape[1]), causal)
    return q_BTHD, k_BSHD, bias

  def decode_bias(self, t, capacity):
    return self._bias(jnp.reshape(t, (1,)), jnp.arange(capacity), causal=True)
