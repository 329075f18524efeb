"""One position at a time through the causal Transformer's layers: a KV cache or an RNN state.

A decoder-only Transformer that generates token t only needs position t's row of every
layer: the rows of earlier positions never change (the model is causal). Each layer
keeps what later positions will read of its past, and a decode step adds position t:

  softmax (and additive) attention, KV cache: the keys and values of every earlier
    position in a preallocated [B, T_max, H, D] pair per layer, written at t with
    lax.dynamic_update_slice; query t attends the filled part through a validity mask
    (keys j <= t). Static shapes, so a loop over t compiles once. Per token: time
    O(T_max H D) (the whole buffer is read, masked) and memory O(T_max H D) per layer.
  linear attention, RNN state ("Transformers are RNNs", Katharopoulos et al. 2020,
    arXiv 2006.16236, section 3.4): S = sum_j phi(k_j) v_j^T [B, H, D, D] and
    z = sum_j phi(k_j) [B, H, D] per layer, updated by kernels.linear_attention_step.
    Per token: time and memory O(H D^2), independent of t.

Positions (nn/positional.py), at position t: `none`, `sinusoidal` and `learned` add
row t of their table to the token's embedding; `rotary` rotates q_t and k_t by t
(cached keys are stored rotated); `alibi` and `relative` (T5) give the bias row of
query t over the cache. Other encodings, kernels (performer, linformer, gat, ...) and
windowed attention are refused with a ValueError (`check_decodable`).

These functions read the modules' own submodules and parameters (query, key, value,
out, position, LayerNorms, MLP) and change nothing in them; dropout is off (inference).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from attn_research import kernels
from attn_research.kernels import linear as linear_lib
from attn_research.kernels import relative
from attn_research.kernels.positional import sinusoidal_encoding
from attn_research.nn import positional
from attn_research.nn.attention import (AdditiveKernel, LinearKernel, MultiHeadSelfAttention,
                                        SoftmaxKernel)
from attn_research.nn.transformer import EncoderBlock

# What each decoding mode can run: kernel modules -> the mode that decodes them.
CACHE_KERNELS = {SoftmaxKernel: "softmax", AdditiveKernel: "additive"}
STATE_KERNELS = {LinearKernel: "linear"}
DECODABLE_POSITIONS = {
    positional.NoPosition: "none", positional.SinusoidalPosition: "sinusoidal",
    positional.LearnedPosition: "learned", positional.RotaryPosition: "rotary",
    positional.AlibiPosition: "alibi", positional.RelativeBiasPosition: "relative"}


def decode_mode(attn: MultiHeadSelfAttention) -> str:
  """"cache" (softmax, additive) or "state" (linear) for the layer's kernel; ValueError
  for a kernel, position encoding or window that token-by-token decoding cannot run."""
  kernel_type = type(attn.kernel)
  supported = sorted([*CACHE_KERNELS.values(), *STATE_KERNELS.values()])
  if kernel_type in CACHE_KERNELS:
    mode = "cache"
  elif kernel_type in STATE_KERNELS:
    mode = "state"
  else:
    raise ValueError(f"token-by-token decoding supports model.attention in {supported}; "
                     f"got kernel {kernel_type.__name__} (method='recompute' runs any "
                     "causal model)")
  if not attn.causal:
    raise ValueError("token-by-token decoding needs a causal (decoder-only) attention layer; "
                     "this one is bidirectional")
  if attn.window is not None:
    raise ValueError(f"token-by-token decoding does not support windowed attention "
                     f"(window={attn.window}); use window=None")
  if attn.position is not None and type(attn.position) not in DECODABLE_POSITIONS:
    raise ValueError(f"token-by-token decoding supports model.position in "
                     f"{sorted(DECODABLE_POSITIONS.values())}; got "
                     f"{type(attn.position).__name__}")
  return mode


def init_layer_cache(attn: MultiHeadSelfAttention, batch: int, capacity: int,
                     dtype=jnp.float32):
  """The empty cache of one layer: (keys, values) [batch, capacity, H, D] zeros for the
  cache mode, the linear-attention state (S, z) zeros for the state mode."""
  H, D = attn.num_heads, attn.head_dim
  if decode_mode(attn) == "state":
    return linear_lib.init_state(batch, H, D, D, dtype)
  if capacity < 1:
    raise ValueError(f"a KV cache needs capacity >= 1 positions; got {capacity}")
  zeros = jnp.zeros((batch, capacity, H, D), dtype)
  return zeros, zeros


def add_position(position, x_BD, t):
  """The absolute encoding of position t added to the token vectors x_BD (scalar int t);
  the identity for `none` and for the encodings that act inside attention."""
  if isinstance(position, positional.LearnedPosition):
    return x_BD + jax.lax.dynamic_index_in_dim(position.table_LD[...], t, 0,
                                               keepdims=False).astype(x_BD.dtype)
  if isinstance(position, positional.SinusoidalPosition):
    pe_D = sinusoidal_encoding(jnp.reshape(t, (1,)), position.d_model)[0]
    return x_BD + pe_D.astype(x_BD.dtype)
  return x_BD


def _rotate(position, x_BHD, t):
  if not isinstance(position, positional.RotaryPosition):
    return x_BHD
  return relative.apply_rope(x_BHD[:, None], jnp.reshape(t, (1,)))[:, 0]


def _score_bias(position, num_heads, t, capacity):
  """Query t's bias over keys 0..capacity-1, [1, H, 1, capacity], or None."""
  q_pos, k_pos = jnp.reshape(t, (1,)), jnp.arange(capacity)
  if isinstance(position, positional.AlibiPosition):
    return relative.alibi_bias(num_heads, q_pos, k_pos, causal=True)
  if isinstance(position, positional.RelativeBiasPosition):
    buckets_1S = relative.t5_relative_bucket(
        relative.relative_positions(q_pos, k_pos), bidirectional=False,
        num_buckets=position.NUM_BUCKETS, max_distance=position.MAX_DISTANCE)
    return relative.relative_bias(position.table_NH[...], buckets_1S)
  return None


def attention_step(attn: MultiHeadSelfAttention, cache, x_BD, t):
  """Self-attention output of position t (the layer's input x_BD at t); (cache, y_BD).

  cache is init_layer_cache's (keys, values) or (S, z), holding positions < t.
  """
  q_BHD, k_BHD, v_BHD = attn.query(x_BD), attn.key(x_BD), attn.value(x_BD)
  q_BHD, k_BHD = _rotate(attn.position, q_BHD, t), _rotate(attn.position, k_BHD, t)
  if decode_mode(attn) == "state":
    cache, out_BHD = kernels.linear_attention_step(cache, q_BHD, k_BHD, v_BHD)
    return cache, attn.out(out_BHD)
  k_cache, v_cache = cache
  at_t = (0, t, 0, 0)
  k_cache = jax.lax.dynamic_update_slice(k_cache, k_BHD[:, None].astype(k_cache.dtype), at_t)
  v_cache = jax.lax.dynamic_update_slice(v_cache, v_BHD[:, None].astype(v_cache.dtype), at_t)
  capacity = k_cache.shape[1]
  valid_11S = (jnp.arange(capacity) <= t)[None, None, None, :]  # filled: positions 0..t
  bias = _score_bias(attn.position, attn.num_heads, t, capacity)
  q_B1HD = q_BHD[:, None]
  # One query row: "reference" forms a [B, H, 1, T_max] score row, the cheapest form.
  if isinstance(attn.kernel, AdditiveKernel):
    out = kernels.additive_attention(q_B1HD, k_cache, v_cache, attn.kernel.w_HD[...],
                                     mask=valid_11S, bias=bias, impl="reference")
  else:
    out = kernels.dot_product_attention(q_B1HD, k_cache, v_cache, mask=valid_11S, bias=bias,
                                        impl="reference")
  return (k_cache, v_cache), attn.out(out[:, 0])


def block_step(block: EncoderBlock, cache, x_BD, t):
  """EncoderBlock at position t: x + MHSA(LN(x)), then x + MLP(LN(x)); (cache, x_BD)."""
  cache, h_BD = attention_step(block.attn, cache, block.ln_attn(x_BD), t)
  x_BD = x_BD + h_BD
  return cache, x_BD + block.mlp(block.ln_mlp(x_BD), train=False)
