"""Pre-LN Transformer blocks: x + MHSA(LN(x)), then x + MLP(LN(x)) (Xiong et al. 2020:
stable without learning-rate warm-up tricks).

  EncoderBlock      bidirectional self-attention: every vector sees every real vector
  DecoderOnlyBlock  causal self-attention (a GPT-style decoder): vector t sees 0..t, and
                    decode_step runs it one position at a time for generation
The encoder-decoder's block, with cross-attention, is nn/cross_attention.DecoderBlock.

The residual structure is written once (SelfAttentionBlock._residual): the whole
sequence (__call__) and one position (decode_step) differ only in how attention runs.

run_blocks runs a stack of blocks with rematerialisation (model.remat): training keeps
every intermediate of the forward pass for the backward pass, which dominates memory at
long lengths (the [B, H, T, T] scores of every layer with materialised attention).
  none   keep everything (fastest)
  block  each block under nnx.remat (jax.checkpoint): only block inputs are kept; the
         backward pass recomputes one block at a time (about one extra forward)
  full   the whole stack under one more checkpoint around the per-block ones: only the
         stack's input is kept; the backward pass recomputes the stack keeping block
         inputs, then each block (about two extra forwards, the least memory)
Gradients are unchanged (recomputation is the same arithmetic); only training pays:
evaluation and decoding never rematerialise.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from attn_research.nn.attention import MultiHeadSelfAttention
from attn_research.registry import check_choice

REMAT = ("none", "block", "full")


def check_remat(remat: str) -> str:
  check_choice("model.remat", remat, REMAT)
  return remat


def run_blocks(blocks, x, call, *, remat: str, train: bool):
  """x through every block in order, call(block, x) -> x, rematerialised as `remat` says
  (the module docstring) when train is True."""
  if not train or remat == "none":
    for block in blocks:
      x = call(block, x)
    return x
  step = nnx.remat(call)

  def stack(blocks, x):
    for block in blocks:
      x = step(block, x)
    return x

  return (nnx.remat(stack) if remat == "full" else stack)(blocks, x)


class MLP(nnx.Module):
  def __init__(self, d_model: int, hidden: int, dropout: float, *, rngs: nnx.Rngs):
    self.up = nnx.Linear(d_model, hidden, rngs=rngs)
    self.down = nnx.Linear(hidden, d_model, rngs=rngs)
    self.dropout = nnx.Dropout(dropout, rngs=rngs)

  def __call__(self, x, *, train: bool):
    return self.down(self.dropout(jax.nn.gelu(self.up(x)), deterministic=not train))


class SelfAttentionBlock(nnx.Module):
  """The pre-LN block; subclasses fix whether its attention is causal.

  max_length (the longest sequence, optional) reaches kernels that size parameters by it
  (linformer). Parameters: ln_attn, attn, ln_mlp, mlp (the same paths in both kinds).
  """
  causal = False

  def __init__(self, d_model: int, num_heads: int, mlp_ratio: int, dropout: float, *,
               kernel: str = "softmax", impl: str = "auto", window=None, position=None,
               max_length=None, rngs: nnx.Rngs):
    self.ln_attn = nnx.LayerNorm(d_model, rngs=rngs)
    self.attn = MultiHeadSelfAttention(d_model, num_heads, kernel=kernel, impl=impl,
                                       causal=self.causal, window=window, position=position,
                                       max_length=max_length, rngs=rngs)
    self.ln_mlp = nnx.LayerNorm(d_model, rngs=rngs)
    self.mlp = MLP(d_model, mlp_ratio * d_model, dropout, rngs=rngs)
    self.dropout = nnx.Dropout(dropout, rngs=rngs)

  def _residual(self, x, attend, *, train: bool):
    """x + attend(LN(x)), then x + MLP(LN(x)); attend returns (h, extra), extra passed
    through: the attention weights of a sequence, or the cache of a decode step."""
    h, extra = attend(self.ln_attn(x))
    x = x + self.dropout(h, deterministic=not train)
    x = x + self.dropout(self.mlp(self.ln_mlp(x), train=train), deterministic=not train)
    return x, extra

  def __call__(self, x_BTD, mask_BT=None, *, attn_mask_BTT=None, train: bool = False,
               return_weights: bool = False):
    def attend(h_BTD):
      y = self.attn(h_BTD, mask_BT, attn_mask_BTT=attn_mask_BTT, return_weights=return_weights)
      return y if return_weights else (y, None)

    x_BTD, weights = self._residual(x_BTD, attend, train=train)
    return (x_BTD, weights) if return_weights else x_BTD


class EncoderBlock(SelfAttentionBlock):
  """Bidirectional: the encoder of BERT, ViT and the encoder-decoder."""
  causal = False


class DecoderOnlyBlock(SelfAttentionBlock):
  """Causal: position t sees positions 0..t only (GPT-style). Generation runs it one
  position at a time through decode_step, with the same sublayers."""
  causal = True

  def decode_mode(self) -> str:
    """"cache" or "state" (the attention kernel's); ValueError when it cannot decode."""
    return self.attn.decode_mode()

  def init_decode_cache(self, batch: int, capacity: int, dtype=jnp.float32):
    return self.attn.init_decode_cache(batch, capacity, dtype)

  def decode_step(self, cache, x_BD, t):
    """The block at position t (a scalar int), given the cache of positions < t:
    (cache holding positions <= t, x_BD). Inference: dropout off."""
    def attend(h_BD):
      new_cache, y_BD = self.attn.decode_step(cache, h_BD, t)
      return y_BD, new_cache

    x_BD, cache = self._residual(x_BD, attend, train=False)
    return cache, x_BD
