"""Linformer (`model.attention=linformer` or `linformer:K`; Wang et al. 2020)."""
from __future__ import annotations

from flax import nnx

from attn_research import kernels
from attn_research.kernels import linformer as linformer_lib
from attn_research.nn.attention.base import (AttentionKernel, key_padding_mask,
                                             positive_int_setting, refuse_window_and_weights,
                                             register_attention)


@register_attention("linformer")
class LinformerKernel(AttentionKernel):
  """Keys and values projected along the length axis to k positions by learned E, F
  [k, max_length] shared by the layer's heads ("headwise" sharing), then softmax
  attention over the k projected keys: O(T k) time and memory.

  `linformer:K` sets k (default min(64, max_length)). Non-causal only; needs the model's
  max_length; takes a key padding mask only (zeroed before the projection).
  """
  accepts_bias = False
  setting_defaults = dict(k=(None, int))  # None: min(64, max_length)
  needs_max_length = True

  def __init__(self, num_heads, head_dim, impl, *, settings=None, max_length=None, rngs):
    del num_heads, head_dim
    kernels.check_impl(impl)
    if impl == "local":
      raise ValueError("model.attention_impl='local' needs a window, which linformer "
                       f"attention has none of; valid: {kernels.IMPLS}")
    if isinstance(max_length, bool) or not (isinstance(max_length, int) and max_length >= 1):
      raise ValueError(f"linformer attention needs max_length (the longest sequence) to size "
                       f"its [k, max_length] projections; got max_length={max_length!r}")
    self.impl = impl
    k = positive_int_setting(type(self), "linformer", settings, "the projected length k")
    k = min(64, max_length) if k is None else k
    init = nnx.initializers.xavier_uniform()  # variance 2 / (k + max_length)
    self.e_KN = nnx.Param(init(rngs.params(), (k, max_length)))
    self.f_KN = nnx.Param(init(rngs.params(), (k, max_length)))

  def __call__(self, q, k, v, *, mask, bias, causal, window, return_weights):
    del bias  # never given: MultiHeadSelfAttention refuses bias encodings (accepts_bias)
    refuse_window_and_weights("linformer", window, return_weights,
                              "weighs k projected keys (mixtures of positions), not positions")
    return linformer_lib.linformer_attention(
        q, k, v, self.e_KN[...], self.f_KN[...], mask=key_padding_mask(mask, k, "linformer"),
        causal=causal, impl=self.impl)
