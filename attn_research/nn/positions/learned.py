"""One learned vector per position (`model.position=learned`, BERT/ViT style).

`init` sets the table's starting scale: "bert" (default) draws it at std 0.02 as BERT
does, where BERT's token embeddings are at 0.02 too; here nnx.Embed starts tokens at std
1/sqrt(d_model) (0.125 at d = 64), six times larger, so positions start nearly invisible.
"tokens" draws the table at the tokens' std, 1/sqrt(d_model), so both start equal.
"""
from __future__ import annotations

import math

import jax
from flax import nnx

from attn_research import args
from attn_research.nn.positions.base import Position, register_positional
from attn_research.registry import check_choice

DEFAULTS = dict(init="bert")
INITS = ("bert", "tokens")


def table_std(d_model: int, init: str) -> float:
  """The std the table is drawn at: 0.02 (BERT) or nnx.Embed's 1/sqrt(d_model) (tokens)."""
  check_choice("model.position learned init", init, INITS)
  return 0.02 if init == "bert" else 1.0 / math.sqrt(d_model)


@register_positional("learned")
class LearnedPosition(Position):
  """One learned vector per position up to max_length; longer sequences are refused."""
  setting_defaults = DEFAULTS

  def __init__(self, d_model, max_length, num_heads, *, rngs, settings=""):
    s = args.parse_arg(settings, where="model.position", what="learned setting", **DEFAULTS)
    self.max_length = max_length
    std = table_std(d_model, s["init"])
    self.table_LD = nnx.Param(nnx.initializers.normal(stddev=std)(rngs.params(),
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
