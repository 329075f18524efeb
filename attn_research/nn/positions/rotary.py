"""RoPE, rotary position embedding (`model.position=rotary`; Su et al. 2021)."""
from __future__ import annotations

import jax.numpy as jnp

from attn_research.kernels import relative
from attn_research.nn.positions.base import Position, register_positional


@register_positional("rotary")
class RotaryPosition(Position):
  """Queries and keys rotated by their positions, so their dot product depends only on
  the offset. No parameters; any length. Cached keys are stored rotated when decoding."""

  def in_attention(self, q_BTHD, k_BSHD, *, causal):
    q = relative.apply_rope(q_BTHD, jnp.arange(q_BTHD.shape[1]))
    return q, relative.apply_rope(k_BSHD, jnp.arange(k_BSHD.shape[1])), None

  def decode_rotate(self, x_BHD, t):
    return relative.apply_rope(x_BHD[:, None], jnp.reshape(t, (1,)))[:, 0]
