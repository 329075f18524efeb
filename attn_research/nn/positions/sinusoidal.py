"""The Transformer paper's fixed sin/cos encoding (`model.position=sinusoidal`).

Scale: nnx.Embed starts token vectors at std 1/sqrt(d) per component (norm ~1), while
the sin/cos vector has norm sqrt(d/2) (5.7 at d = 64) and neighbouring positions are
nearly parallel (cosine 0.97), so added to raw tokens the encoding swamps what the
token is. The paper multiplies the token embeddings by sqrt(d_model) (Vaswani et al.
2017, section 3.4); `sinusoidal:scale_tokens` does that (tokens ~ std 1, encoding ~ std
0.7 per component). The default keeps the unscaled sum that earlier runs used.
"""
from __future__ import annotations

import math

import jax.numpy as jnp

from attn_research import args
from attn_research.kernels.positional import sinusoidal_encoding
from attn_research.nn.positions.base import Position, register_positional

DEFAULTS = dict(scale_tokens=False)


def token_scale(d_model: int, scale_tokens: bool) -> float:
  """sqrt(d_model) when the tokens are scaled to the sin/cos encoding's size, else 1."""
  return math.sqrt(d_model) if scale_tokens else 1.0


@register_positional("sinusoidal")
class SinusoidalPosition(Position):
  """Fixed sin/cos encoding of the Transformer paper (no parameters; any length).
  Setting: scale_tokens (bool, default false): tokens x sqrt(d_model) before the sum."""
  setting_defaults = DEFAULTS

  def __init__(self, d_model, max_length, num_heads, *, rngs, settings=""):
    s = args.parse_arg(settings, where="model.position", what="sinusoidal setting", **DEFAULTS)
    self.d_model, self.scale = d_model, token_scale(d_model, s["scale_tokens"])

  def __call__(self, x_BTD):
    pe_TD = sinusoidal_encoding(jnp.arange(x_BTD.shape[1]), self.d_model)
    return x_BTD * self.scale + pe_TD.astype(x_BTD.dtype)

  def decode_add(self, x_BD, t):
    pe_D = sinusoidal_encoding(jnp.reshape(t, (1,)), self.d_model)[0]
    return x_BD * self.scale + pe_D.astype(x_BD.dtype)
