"""Cross-attention and the Transformer decoder block (Vaswani et al. 2017, arXiv 1706.03762).

Cross-attention ("encoder-decoder attention") takes its queries from the decoder's T
vectors and its keys and values from the encoder's S output vectors, so every target
position can read every real source position: O(T S) time, and O(T S) memory with the
materialised ("reference") kernel. The decoder block is pre-LN (Xiong et al. 2020):
  x + causal self-attention(LN(x)),  x + cross-attention(LN(x), memory),  x + MLP(LN(x)).
"""
from __future__ import annotations

from flax import nnx

from attn_research import kernels
from attn_research.nn.attention import MultiHeadSelfAttention
from attn_research.nn.transformer import MLP


class MultiHeadCrossAttention(nnx.Module):
  """y = W^o concat_h attention(W^q_h x, W^k_h m, W^v_h m), softmax dot-product scores
  through kernels.dot_product_attention (impl by name)."""

  def __init__(self, d_model: int, num_heads: int, *, impl: str = "auto", rngs: nnx.Rngs):
    if num_heads < 1 or d_model % num_heads:
      raise ValueError(f"num_heads={num_heads} must be a positive divisor of d_model={d_model}")
    kernels.check_impl(impl)
    if impl == "local":
      raise ValueError("attention_impl='local' needs a window; cross-attention has none; "
                       f"valid: {tuple(i for i in kernels.IMPLS if i != 'local')}")
    self.impl = impl
    shape = (num_heads, d_model // num_heads)
    self.query = nnx.LinearGeneral(d_model, shape, rngs=rngs)
    self.key = nnx.LinearGeneral(d_model, shape, rngs=rngs)
    self.value = nnx.LinearGeneral(d_model, shape, rngs=rngs)
    self.out = nnx.LinearGeneral(shape, d_model, axis=(-2, -1), rngs=rngs)

  def __call__(self, x_BTD, memory_BSD, memory_mask_BS=None):
    """memory_mask_BS: which source vectors are real (padding is never attended)."""
    q_BTHD = self.query(x_BTD)
    k_BSHD, v_BSHD = self.key(memory_BSD), self.value(memory_BSD)
    mask = None if memory_mask_BS is None else kernels.padding_mask(memory_mask_BS)
    out_BTHD = kernels.dot_product_attention(q_BTHD, k_BSHD, v_BSHD, mask=mask, impl=self.impl)
    return self.out(out_BTHD)


class DecoderBlock(nnx.Module):
  """Pre-LN decoder block: causal self-attention, cross-attention to the encoder, MLP."""

  def __init__(self, d_model: int, num_heads: int, mlp_ratio: int, dropout: float, *,
               impl: str = "auto", rngs: nnx.Rngs):
    self.ln_self = nnx.LayerNorm(d_model, rngs=rngs)
    self.self_attn = MultiHeadSelfAttention(d_model, num_heads, impl=impl, causal=True,
                                            rngs=rngs)
    self.ln_cross = nnx.LayerNorm(d_model, rngs=rngs)
    self.cross_attn = MultiHeadCrossAttention(d_model, num_heads, impl=impl, rngs=rngs)
    self.ln_mlp = nnx.LayerNorm(d_model, rngs=rngs)
    self.mlp = MLP(d_model, mlp_ratio * d_model, dropout, rngs=rngs)
    self.dropout = nnx.Dropout(dropout, rngs=rngs)

  def __call__(self, x_BTD, memory_BSD, memory_mask_BS=None, *, train: bool = False):
    """Padding of the target comes last, so the causal mask alone keeps it out of every
    real position's view; no target mask is needed."""
    drop = lambda h: self.dropout(h, deterministic=not train)  # noqa: E731
    x_BTD = x_BTD + drop(self.self_attn(self.ln_self(x_BTD)))
    x_BTD = x_BTD + drop(self.cross_attn(self.ln_cross(x_BTD), memory_BSD, memory_mask_BS))
    return x_BTD + drop(self.mlp(self.ln_mlp(x_BTD), train=train))
