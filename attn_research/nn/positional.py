"""Positional encodings, chosen by name (`--config.model.position=NAME`).

Self-attention alone is permutation-equivariant: without positions a Transformer sees
a set, not a sequence. An encoding acts in one or both of two places:
  __call__(x_BTD)                 absolute: added to the input vectors
                                  (none, sinusoidal, learned)
  in_attention(q, k, causal)      relative: rotates queries and keys, or returns a
                                  bias added to the scores (rotary, alibi, relative)
  layer_encodings(T)              per layer: [num_layers, T, D] vectors that the model
                                  adds before each block (floater, nn/floater.py)
One module is shared by every layer of a model. `needs_bias` marks the encodings
that need the score matrix (a bias), which linear attention never forms. An encoding
with `takes_settings` reads settings written after its name (`floater:KEY=VALUE,...`).
"""
from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from attn_research.kernels import relative
from attn_research.kernels.positional import sinusoidal_encoding
from attn_research.registry import Registry

POSITIONAL = Registry("model.position")
register_positional = POSITIONAL.register


def get_positional(name: str, d_model: int, max_len: int, num_heads: int, *, rngs: nnx.Rngs,
                   num_layers: int = 1):
  """NAME, or NAME:SETTINGS for an encoding that takes settings."""
  cls = POSITIONAL.get(name)
  base, _, settings = name.partition(":")
  if not cls.takes_settings:
    if settings:
      raise ValueError(f"model.position={name!r}: {base!r} takes no settings after ':'")
    return cls(d_model, max_len, num_heads, rngs=rngs)
  return cls(d_model, max_len, num_heads, rngs=rngs, num_layers=num_layers, settings=settings)


class Position(nnx.Module):
  """The identity in every place; encodings override one of them."""
  needs_bias = False
  takes_settings = False

  def __init__(self, d_model, max_len, num_heads, *, rngs):
    del d_model, max_len, num_heads, rngs

  def __call__(self, x_BTD):
    return x_BTD

  def in_attention(self, q_BTHD, k_BSHD, *, causal: bool):
    del causal
    return q_BTHD, k_BSHD, None

  def layer_encodings(self, length: int):
    """[num_layers, length, D] added before each block, or None (nothing per layer)."""
    del length
    return None


@register_positional("none")
class NoPosition(Position):
  """No positional information: the model sees a set of vectors."""


@register_positional("sinusoidal")
class SinusoidalPosition(Position):
  """Fixed sin/cos encoding of the Transformer paper (no parameters; any length)."""

  def __init__(self, d_model, max_len, num_heads, *, rngs):
    self.d_model = d_model

  def __call__(self, x_BTD):
    pe_TD = sinusoidal_encoding(jnp.arange(x_BTD.shape[1]), self.d_model)
    return x_BTD + pe_TD.astype(x_BTD.dtype)


@register_positional("learned")
class LearnedPosition(Position):
  """One learned vector per position up to max_len (BERT/ViT style)."""

  def __init__(self, d_model, max_len, num_heads, *, rngs):
    self.max_len = max_len
    self.table_LD = nnx.Param(nnx.initializers.normal(stddev=0.02)(rngs.params(),
                                                                   (max_len, d_model)))

  def __call__(self, x_BTD):
    T = x_BTD.shape[1]
    if T > self.max_len:
      raise ValueError(f"learned positions cover {self.max_len} positions; got a sequence of {T}")
    return x_BTD + self.table_LD[...][:T].astype(x_BTD.dtype)


@register_positional("rotary")
class RotaryPosition(Position):
  """RoPE (Su et al. 2021): queries and keys rotated by their positions, so their dot
  product depends only on the offset. No parameters; any length."""

  def in_attention(self, q_BTHD, k_BSHD, *, causal):
    q = relative.apply_rope(q_BTHD, jnp.arange(q_BTHD.shape[1]))
    return q, relative.apply_rope(k_BSHD, jnp.arange(k_BSHD.shape[1])), None


@register_positional("alibi")
class AlibiPosition(Position):
  """ALiBi (Press et al. 2021): a head-specific linear penalty -m_h |i - j| on the scores."""
  needs_bias = True

  def __init__(self, d_model, max_len, num_heads, *, rngs):
    self.num_heads = num_heads

  def in_attention(self, q_BTHD, k_BSHD, *, causal):
    bias = relative.alibi_bias(self.num_heads, jnp.arange(q_BTHD.shape[1]),
                               jnp.arange(k_BSHD.shape[1]), causal=causal)
    return q_BTHD, k_BSHD, bias


@register_positional("relative")
class RelativeBiasPosition(Position):
  """T5's relative position bias (Raffel et al. 2020): a learned scalar per head and
  log-spaced bucket of the offset j - i (32 buckets up to distance 128)."""
  needs_bias = True
  NUM_BUCKETS, MAX_DISTANCE = 32, 128

  def __init__(self, d_model, max_len, num_heads, *, rngs):
    self.table_NH = nnx.Param(jnp.zeros((self.NUM_BUCKETS, num_heads), jnp.float32))

  def in_attention(self, q_BTHD, k_BSHD, *, causal):
    offsets = relative.relative_positions(jnp.arange(q_BTHD.shape[1]),
                                          jnp.arange(k_BSHD.shape[1]))
    buckets = relative.t5_relative_bucket(offsets, bidirectional=not causal,
                                          num_buckets=self.NUM_BUCKETS,
                                          max_distance=self.MAX_DISTANCE)
    return q_BTHD, k_BSHD, relative.relative_bias(self.table_NH[...], buckets)


from attn_research.nn import floater  # noqa: E402,F401  (registers "floater"; imports this module)
