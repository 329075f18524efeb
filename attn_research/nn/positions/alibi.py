"""ALiBi, attention with linear biases (`model.position=alibi`; Press et al. 2021)."""
from __future__ import annotations

import jax.numpy as jnp

from attn_research.kernels import relative
from attn_research.nn.positions.base import Position, register_positional


@register_positional("alibi")
class AlibiPosition(Position):
  """A head-specific linear penalty -m_h |i - j| on the scores (no parameters)."""
  needs_bias = True

  def __init__(self, d_model, max_length, num_heads, *, rngs):
    self.num_heads = num_heads

  def in_attention(self, q_BTHD, k_BSHD, *, causal):
    bias = relative.alibi_bias(self.num_heads, jnp.arange(q_BTHD.shape[1]),
                               jnp.arange(k_BSHD.shape[1]), causal=causal)
    return q_BTHD, k_BSHD, bias

  def decode_bias(self, t, capacity):
    return relative.alibi_bias(self.num_heads, jnp.reshape(t, (1,)), jnp.arange(capacity),
                               causal=True)
