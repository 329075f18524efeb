"""One learned vector per position (`model.position=learned`, BERT/ViT style)."""
from __future__ import annotations

import jax
from flax import nnx

from attn_research.nn.positions.base import Position, register_positional


@register_positional("learned")
class LearnedPosition(Position):
  """One learned vector per position up to max_length; longer sequences are refused."""

  def __init__(self, d_model, max_length, num_heads, *, rngs):
    self.max_length = max_length
    self.table_LD = nnx.Param(nnx.initializers.normal(stddev=0.02)(rngs.params(),
                                                                   (max_length, d_model)))

  def check_length(self, length, why=""):
    if length > self.max_length:
      raise ValueError(f"learned positions cover {self.max_length} positions; "
                       f"{why or f'got a sequence of {length}'}")

  def __call__(self, x_BTD):
    T = x_BTD.shape[1]
    self.check_length(T)
    return x_BTD + self.table_LD[...][:T].astype(x_BTD.dtype)

  def decode_add(self, x_BD, t):
    row_D = jax.lax.dynamic_index_in_dim(self.table_LD[...], t, 0, keepdims=False)
    return x_BD + row_D.astype(x_BD.dtype)
