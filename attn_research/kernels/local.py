"""Local (truncated) softmax attention, computed block-banded: O(T * window), not O(T^2).

Why: the lecture's example is speech. An utterance is a long sequence of short frames
(100 per second, so T runs into the thousands) and the full [T, T] attention matrix
becomes the bottleneck: its memory and time grow as T^2. But recognising a phone needs
only the frames around it, so "truncated self-attention" lets query i look only at keys
inside a window around it, i - left <= j <= i + right (Zhang et al., "Transformer
transducer", and the lecture). `dot_product_attention(window=...)` gives the same answer,
but its reference form still builds all T x T scores and masks most of them away; this
kernel never computes a score outside the band, so the cost follows the window.

How: the sequence is cut into query blocks of `block` positions. Query block n (positions
[n*block, (n+1)*block)) needs exactly the keys [n*block - left, (n+1)*block - 1 + right],
a slab of C = block + left + right keys. K and V are padded by `left` in front (and up to
whole blocks at the end) and every slab is assembled from ceil(C / block) neighbouring
key blocks with static slices (no gather, so the backward pass is plain padding). Scores
are [B * n_blocks, H, block, C]; inside the band the exact window, causal and key-padding
masks are applied (positions outside the sequence count as padding), the softmax runs in
float32 and the output comes back in v's dtype. A row that sees no key returns zeros, as
the reference does.

Cost, for B batch, H heads, head dims D and Dv:
  time    O(B H T (block + left + right) (D + Dv))   vs O(B H T^2 (D + Dv)) for the reference
  memory  O(B H T (block + left + right))  scores,  O(B T (block + left + right) / block
          H (D + Dv))  key/value slabs; with gradients the same order (nothing T x T).
causal=True makes right = 0: the future half of the band is neither computed nor stored.

block: default max(16, max(left, right) rounded up to a multiple of 8), so a query block
needs at most its own and the two neighbouring key blocks (C <= 3 * block). Smaller blocks
waste fewer scores on the corners of the band (C / (left + right + 1) computed per allowed
key) but copy K and V more often (C / block times); around block ~ sqrt(2 D (left + right))
the two costs balance. A block longer than the sequence is cut to the sequence length
(one block: every allowed score is computed, at no saving over the dense form); a window
side longer than the sequence is cut to T - 1 (it already covers every key), so a fixed
window works for any length.
"""
from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from attn_research.kernels import masks as masks_lib
from attn_research.kernels.checks import check_key_mask, check_qkv
# The same masked softmax as the reference: identical handling of rows without keys.
from attn_research.kernels.softmax import masked_softmax_parts
from attn_research.kernels.scores import dot_scores

MIN_BLOCK = 16


def _is_int(x):
  return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _check_args(q, k, v, window, mask, scale, block):
  """Raises ValueError naming the bad value; runs at trace time (static shapes)."""
  B, T, S, H, D = check_qkv(q, k, v)
  if T != S:
    raise ValueError(f"local attention is self-attention: needs as many queries as keys; "
                     f"got T={T} (q {q.shape}) and S={S} (k {k.shape})")
  if (not isinstance(window, (tuple, list)) or len(window) != 2
      or not all(_is_int(w) for w in window)):
    raise ValueError(f"window must be a pair of ints (left, right); got {window!r}")
  if not (window[0] >= 0 and window[1] >= 0):
    raise ValueError(f"window={tuple(window)} must satisfy left >= 0 and right >= 0")
  check_key_mask(mask, B, S)
  if scale is not None:
    is_number = isinstance(scale, (int, float, np.number)) and not isinstance(scale, bool)
    if not (is_number or (hasattr(scale, "shape") and scale.shape == ())):
      raise ValueError(f"scale must be a positive number (or a scalar array) or None; "
                       f"got {scale!r}")
    if is_number and not scale > 0:
      raise ValueError(f"scale must be a positive number or None; got {scale!r}")
  if block is not None and not (_is_int(block) and block >= 1):
    raise ValueError(f"block must be a positive int or None; got {block!r}")


def default_block(window) -> int:
  """The block size used when block=None (see the module docstring)."""
  return max(MIN_BLOCK, -(-max(window) // 8) * 8)


def _slabs(x, left, block, n_blocks, n_parts):
  """x [B, T, ...] -> [B, n_blocks, n_parts * block, ...]: slab n starts at n*block - left.

  Pads x (zeros / False) by `left` in front and to (n_blocks + n_parts - 1) whole blocks,
  then puts n_parts consecutive blocks side by side with static slices.
  """
  B, T = x.shape[:2]
  total = (n_blocks + n_parts - 1) * block
  pad = [(0, 0), (left, total - left - T)] + [(0, 0)] * (x.ndim - 2)
  x_blocks = jnp.pad(x, pad).reshape((B, n_blocks + n_parts - 1, block) + x.shape[2:])
  return jnp.concatenate([x_blocks[:, p:p + n_blocks] for p in range(n_parts)], axis=2)


def local_attention(q, k, v, *, window, mask=None, causal=False, scale=None, block=None):
  """Softmax self-attention restricted to a window, at O(T * window) cost and memory.

  Equals dot_product_attention(q, k, v, window=window, causal=causal,
  mask=mask[:, None, None, :], scale=scale, impl="reference") (to float32 rounding).

  Args:
    q, k: [B, T, H, D]; v: [B, T, H, Dv]. Self-attention: q and k have the same length.
    window: (left, right) non-negative ints: query i attends keys i - left <= j <= i + right
      (sides longer than the sequence cover it all).
    mask: [B, T] bool key padding mask, True = real key; or None.
    causal: also j <= i (the band's right side is then not computed at all).
    scale: score scale; default 1 / sqrt(D).
    block: query block length (a performance knob: the result does not depend on it);
      default `default_block(window)`, cut to T.
  Returns:
    [B, T, H, Dv] in v's dtype; queries that see no key get zeros.
  """
  _check_args(q, k, v, window, mask, scale, block)
  B, T, H, D = q.shape
  Dv = v.shape[-1]
  if T == 0:
    return jnp.zeros((B, 0, H, Dv), v.dtype)
  if scale is None:
    scale = 1.0 / math.sqrt(D)
  # Sides wider than the sequence change nothing; causal drops the right side.
  left = min(int(window[0]), T - 1)
  right = 0 if causal else min(int(window[1]), T - 1)
  block = min(default_block((left, right)) if block is None else int(block), T)
  n_blocks = -(-T // block)
  slab = block + left + right  # keys a query block needs
  n_parts = -(-slab // block)  # key blocks that cover them

  q_NQHD = jnp.pad(q, [(0, 0), (0, n_blocks * block - T), (0, 0), (0, 0)])
  q_NQHD = q_NQHD.reshape(B * n_blocks, block, H, D)
  k_NCHD = _slabs(k, left, block, n_blocks, n_parts)[:, :, :slab].reshape(
      B * n_blocks, slab, H, D)
  v_NCHE = _slabs(v, left, block, n_blocks, n_parts)[:, :, :slab].reshape(
      B * n_blocks, slab, H, Dv)
  s_NHQC = dot_scores(q_NQHD, k_NCHD, scale)

  # Real keys: inside the sequence (the slabs' padding is False) and not padded out.
  valid_BT = jnp.ones((B, T), bool) if mask is None else mask
  valid_NC = _slabs(valid_BT, left, block, n_blocks, n_parts)[:, :, :slab].reshape(-1, slab)
  # In a slab, query r sits at key index left + r, so the band pattern is the same for
  # every block: key c is allowed when -left <= c - (left + r) <= right (and <= 0 if causal).
  band_QC = masks_lib.positional_allowed(left + jnp.arange(block), jnp.arange(slab),
                                         causal=causal, window=(left, right))
  allowed_N1QC = band_QC[None, None] & valid_NC[:, None, None, :]

  p, _, l = masked_softmax_parts(s_NHQC, allowed_N1QC)
  weights_NHQC = p / jnp.where(l == 0, 1.0, l)[..., None]
  out_NQHE = jnp.einsum("nhqc,nche->nqhe", weights_NHQC.astype(v.dtype), v_NCHE,
                        preferred_element_type=jnp.float32)
  return out_NQHE.reshape(B, n_blocks * block, H, Dv)[:, :T].astype(v.dtype)
