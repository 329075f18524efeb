"""Linear attention (`model.attention=linear`; Katharopoulos et al. 2020)."""
from __future__ import annotations

import jax.numpy as jnp

from attn_research import kernels
from attn_research.kernels import linear as linear_lib
from attn_research.nn.attention.base import AttentionKernel, key_padding_mask, register_attention


@register_attention("linear")
class LinearKernel(AttentionKernel):
  """Softmax replaced by the feature map elu(x) + 1, so causal attention is an RNN with a
  d x d state and costs O(T). Decodes with that state ("Transformers are RNNs", arXiv
  2006.16236, section 3.4): S = sum_j phi(k_j) v_j^T [B, H, D, D] and z = sum_j phi(k_j)
  [B, H, D] per layer; per token time and memory O(H D^2), independent of t."""
  accepts_bias = False
  decode_mode = "state"

  def __init__(self, num_heads, head_dim, impl, *, rngs):
    del num_heads, head_dim, rngs
    if impl not in linear_lib.LINEAR_IMPLS:
      raise ValueError(f"model.attention_impl={impl!r} is not a linear attention form; "
                       f"valid: {linear_lib.LINEAR_IMPLS}")
    self.impl = impl

  def __call__(self, q, k, v, *, mask, bias, causal, window, return_weights):
    del bias  # never given: MultiHeadSelfAttention refuses bias encodings (accepts_bias)
    if window is not None:
      raise ValueError(f"linear attention has no window (got window={window}); "
                       "use attention='softmax' for truncated attention")
    key_mask = key_padding_mask(mask, k, "linear")
    if return_weights:  # attention maps: the parallel (reference) form's matrix
      out = linear_lib.linear_attention(q, k, v, mask=key_mask, causal=causal, impl="parallel")
      return out, linear_lib.linear_attention_weights(q, k, mask=key_mask, causal=causal)
    return linear_lib.linear_attention(q, k, v, mask=key_mask, causal=causal, impl=self.impl)

  def init_decode_cache(self, batch, capacity, num_heads, head_dim, dtype=jnp.float32):
    del capacity  # the state's size does not grow with the sequence
    return linear_lib.init_state(batch, num_heads, head_dim, head_dim, dtype)

  def decode_step(self, cache, q_BHD, k_BHD, v_BHD, *, t, bias_fn):
    del t, bias_fn  # the state holds positions < t; no bias (accepts_bias)
    return kernels.linear_attention_step(cache, q_BHD, k_BHD, v_BHD)
