"""Absolute positional encodings, added to the input vectors. Chosen by name.

Self-attention alone is permutation-equivariant: without these a Transformer sees
a set, not a sequence. More encodings (relative, rotary, ALiBi, FLOATER) act inside
attention and arrive with the attention zoo.
"""
from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from attn_research.kernels.positional import sinusoidal_encoding
from attn_research.registry import Registry

POSITIONAL = Registry("model.position")
register_positional = POSITIONAL.register


def get_positional(name: str, d_model: int, max_len: int, *, rngs: nnx.Rngs):
  return POSITIONAL.get(name)(d_model, max_len, rngs=rngs)


@register_positional("none")
class NoPosition(nnx.Module):
  """No positional information: the model sees a set of vectors."""

  def __init__(self, d_model, max_len, *, rngs):
    del d_model, max_len, rngs

  def __call__(self, x_BTD):
    return x_BTD


@register_positional("sinusoidal")
class SinusoidalPosition(nnx.Module):
  """Fixed sin/cos encoding (no parameters; any length)."""

  def __init__(self, d_model, max_len, *, rngs):
    del max_len, rngs
    self.d_model = d_model

  def __call__(self, x_BTD):
    pe_TD = sinusoidal_encoding(jnp.arange(x_BTD.shape[1]), self.d_model)
    return x_BTD + pe_TD.astype(x_BTD.dtype)


@register_positional("learned")
class LearnedPosition(nnx.Module):
  """One learned vector per position up to max_len (BERT/ViT style)."""

  def __init__(self, d_model, max_len, *, rngs):
    self.max_len = max_len
    self.table_LD = nnx.Param(nnx.initializers.normal(stddev=0.02)(rngs.params(), (max_len, d_model)))

  def __call__(self, x_BTD):
    T = x_BTD.shape[1]
    if T > self.max_len:
      raise ValueError(f"learned positions cover {self.max_len} positions; got a sequence of {T}")
    return x_BTD + self.table_LD[...][:T].astype(x_BTD.dtype)
