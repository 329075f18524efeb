"""Bahdanau's additive attention (`model.attention=additive`)."""
from __future__ import annotations

from flax import nnx

from attn_research import kernels
from attn_research.nn.attention.base import CachedKernel, register_attention


@register_attention("additive")
class AdditiveKernel(CachedKernel):
  """Additive scores w . tanh(q_i + k_j), one score vector w per head. Decodes with a KV
  cache."""

  def __init__(self, num_heads, head_dim, impl, *, rngs):
    kernels.check_impl(impl)
    self.impl = impl
    self.w_HD = nnx.Param(nnx.initializers.normal(head_dim ** -0.5)(
        rngs.params(), (num_heads, head_dim)))

  def __call__(self, q, k, v, *, mask, bias, causal, window, return_weights):
    impl = "reference" if return_weights else self.impl
    return kernels.additive_attention(q, k, v, self.w_HD[...], mask=mask, bias=bias,
                                      causal=causal, window=window, impl=impl,
                                      return_weights=return_weights)

  def attend_row(self, q_B1HD, k_BSHD, v_BSHD, *, mask, bias):
    return kernels.additive_attention(q_B1HD, k_BSHD, v_BSHD, self.w_HD[...], mask=mask,
                                      bias=bias, impl="reference")
