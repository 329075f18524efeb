"""GAT's graph attention (`model.attention=gat`; Velickovic et al. 2018)."""
from __future__ import annotations

from flax import nnx

from attn_research.kernels import graph as graph_lib
from attn_research.nn.attention.base import AttentionKernel, register_attention


@register_attention("gat")
class GATKernel(AttentionKernel):
  """GAT's additive scores LeakyReLU(a_q . q_i + a_k . k_j), slope 0.2, softmax over the
  allowed keys (a graph's neighbours through the mask), one pair (a_q, a_k) of score
  vectors per head. Materialises the [T, S] scores."""

  def __init__(self, num_heads, head_dim, impl, *, rngs):
    if impl not in ("auto", "reference"):
      raise ValueError(f"model.attention_impl={impl!r}: gat attention materialises its "
                       "scores; valid: ('auto', 'reference')")
    init = nnx.initializers.normal(head_dim ** -0.5)
    self.a_q_HD = nnx.Param(init(rngs.params(), (num_heads, head_dim)))
    self.a_k_HD = nnx.Param(init(rngs.params(), (num_heads, head_dim)))

  def __call__(self, q, k, v, *, mask, bias, causal, window, return_weights):
    return graph_lib.gat_attention(q, k, v, self.a_q_HD[...], self.a_k_HD[...], mask=mask,
                                   bias=bias, causal=causal, window=window,
                                   return_weights=return_weights)
