"""The Transformer paper's fixed sin/cos encoding (`model.position=sinusoidal`)."""
from __future__ import annotations

import jax.numpy as jnp

from attn_research.kernels.positional import sinusoidal_encoding
from attn_research.nn.positions.base import Position, register_positional


@register_positional("sinusoidal")
class SinusoidalPosition(Position):
  """Fixed sin/cos encoding of the Transformer paper (no parameters; any length)."""

  def __init__(self, d_model, max_length, num_heads, *, rngs):
    self.d_model = d_model

  def __call__(self, x_BTD):
    pe_TD = sinusoidal_encoding(jnp.arange(x_BTD.shape[1]), self.d_model)
    return x_BTD + pe_TD.astype(x_BTD.dtype)

  def decode_add(self, x_BD, t):
    pe_D = sinusoidal_encoding(jnp.reshape(t, (1,)), self.d_model)[0]
    return x_BD + pe_D.astype(x_BD.dtype)
