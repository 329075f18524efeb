"""The pre-LayerNorm Transformer encoder block: x + MHSA(LN(x)), then x + MLP(LN(x))."""
from __future__ import annotations

import jax
from flax import nnx

from attn_research.nn.attention import MultiHeadSelfAttention


class MLP(nnx.Module):
  def __init__(self, d_model: int, hidden: int, dropout: float, *, rngs: nnx.Rngs):
    self.up = nnx.Linear(d_model, hidden, rngs=rngs)
    self.down = nnx.Linear(hidden, d_model, rngs=rngs)
    self.dropout = nnx.Dropout(dropout, rngs=rngs)

  def __call__(self, x, *, train: bool):
    return self.down(self.dropout(jax.nn.gelu(self.up(x)), deterministic=not train))


class EncoderBlock(nnx.Module):
  """Pre-LN block (Xiong et al. 2020): stable without learning-rate warm-up tricks.

  causal=True turns it into a decoder-only (GPT-style) block. max_length (the longest
  sequence, optional) reaches kernels that size parameters by it (linformer).
  """

  def __init__(self, d_model: int, num_heads: int, mlp_ratio: int, dropout: float, *,
               kernel: str = "softmax", impl: str = "auto", causal: bool = False,
               window=None, position=None, max_length=None, rngs: nnx.Rngs):
    self.ln_attn = nnx.LayerNorm(d_model, rngs=rngs)
    self.attn = MultiHeadSelfAttention(d_model, num_heads, kernel=kernel, impl=impl,
                                       causal=causal, window=window, position=position,
                                       max_length=max_length, rngs=rngs)
    self.ln_mlp = nnx.LayerNorm(d_model, rngs=rngs)
    self.mlp = MLP(d_model, mlp_ratio * d_model, dropout, rngs=rngs)
    self.dropout = nnx.Dropout(dropout, rngs=rngs)

  def __call__(self, x_BTD, mask_BT=None, *, attn_mask_BTT=None, train: bool = False,
               return_weights: bool = False):
    h = self.attn(self.ln_attn(x_BTD), mask_BT, attn_mask_BTT=attn_mask_BTT,
                  return_weights=return_weights)
    h, weights = h if return_weights else (h, None)
    x_BTD = x_BTD + self.dropout(h, deterministic=not train)
    x_BTD = x_BTD + self.dropout(self.mlp(self.ln_mlp(x_BTD), train=train),
                                 deterministic=not train)
    return (x_BTD, weights) if return_weights else x_BTD
