"""Performer / FAVOR+ (`model.attention=performer` or `performer:M`; Choromanski et al. 2020)."""
from __future__ import annotations

from flax import nnx

from attn_research.kernels import linear as linear_lib
from attn_research.kernels import performer as performer_lib
from attn_research.nn.attention.base import (AttentionKernel, key_padding_mask,
                                             positive_int_setting, refuse_window_and_weights,
                                             register_attention)


@register_attention("performer")
class PerformerKernel(AttentionKernel):
  """Softmax attention estimated with M positive orthogonal random features, computed as
  linear attention in O(T M D).

  `performer:M` sets M (default 256). The projection [M, head_dim] is drawn once, at
  construction, from rngs.params() and shared by the heads of the layer; it is stored as
  a non-trainable nnx.Variable (not an nnx.Param: no gradient, not counted as a
  parameter, not in checkpoints; the same seed draws the same features on resumption).
  Features are fixed: never redrawn during training (the paper's redrawing is not done).
  """
  accepts_bias = False
  setting_defaults = dict(num_features=performer_lib.DEFAULT_FEATURES)

  def __init__(self, num_heads, head_dim, impl, *, settings=None, rngs):
    del num_heads
    if impl not in linear_lib.LINEAR_IMPLS:
      raise ValueError(f"model.attention_impl={impl!r} is not a linear attention form "
                       f"(performer runs as linear attention); valid: {linear_lib.LINEAR_IMPLS}")
    self.impl = impl
    num_features = positive_int_setting(type(self), "performer", settings,
                                        "the number of random features")
    self.projection_MD = nnx.Variable(performer_lib.orthogonal_gaussian(
        rngs.params(), num_features, head_dim))

  def __call__(self, q, k, v, *, mask, bias, causal, window, return_weights):
    del bias  # never given: MultiHeadSelfAttention refuses bias encodings (accepts_bias)
    refuse_window_and_weights("performer", window, False, "")
    key_mask = key_padding_mask(mask, k, "performer")
    if return_weights:  # attention maps: the parallel (reference) form's estimated matrix
      out = performer_lib.performer_attention(q, k, v, self.projection_MD[...], mask=key_mask,
                                              causal=causal, impl="parallel")
      return out, performer_lib.performer_weights(q, k, self.projection_MD[...], mask=key_mask,
                                                  causal=causal)
    return performer_lib.performer_attention(
        q, k, v, self.projection_MD[...], mask=key_mask, causal=causal, impl=self.impl)
