"""Scaled dot-product attention (`model.attention=softmax`), the lecture's attention."""
from __future__ import annotations

from attn_research import kernels
from attn_research.nn.attention.base import CachedKernel, register_attention


@register_attention("softmax")
class SoftmaxKernel(CachedKernel):
  """Scaled dot-product scores, softmax, weighted sum of values. Decodes with a KV cache."""

  def __init__(self, num_heads, head_dim, impl, *, rngs):
    del num_heads, head_dim, rngs
    kernels.check_impl(impl)
    self.impl = impl

  def __call__(self, q, k, v, *, mask, bias, causal, window, return_weights):
    impl = "reference" if return_weights else self.impl
    return kernels.dot_product_attention(q, k, v, mask=mask, bias=bias, causal=causal,
                                         window=window, impl=impl,
                                         return_weights=return_weights)

  def attend_row(self, q_B1HD, k_BSHD, v_BSHD, *, mask, bias):
    # One query row: "reference" forms a [B, H, 1, S] score row, the cheapest form.
    return kernels.dot_product_attention(q_B1HD, k_BSHD, v_BSHD, mask=mask, bias=bias,
                                         impl="reference")
