"""impl="splash": JAX's Pallas TPU splash attention behind this project's attention contract.

Splash (jax.experimental.pallas.ops.tpu.splash_attention) is a block-sparse flash kernel
for TPUs: it takes one example as [H, T, D], does not scale the scores, expresses causal
and windowed patterns as lazy masks (so fully masked blocks are skipped, never loaded)
and padding as segment ids. This module converts:
  * layout: [B, T, H, D] -> vmap over the batch of [H, T, D] calls;
  * scale: multiplied into q before the kernel;
  * key padding ([B, 1, 1, S] mask): every query is in segment 1, real keys in segment 1
    and padded keys in segment 0, so each query sees exactly the real keys (padded queries
    too, as in reference);
  * causal: CausalMask; window (left, right): LocalMask (right clipped to 0 when causal);
  * rows with no allowed key: splash fills masked scores with a finite large negative
    number, so such a row averages the values; the contract (reference) is zeros. The
    allowed-key count per query is computed from a cumulative sum of the key padding
    (O(B S), no [T, S] matrix) and the output is zeroed where it is 0.
What splash cannot run (splash_problem) goes elsewhere: additive scores, a bias, masks
other than key padding, attention weights, lengths not multiples of 128 (its lane width,
which the segment-id path needs for its blocks), causal or windowed cross attention,
dtypes other than float32 / bfloat16, values shaped unlike the keys.

On a CPU the kernel runs only in Pallas interpret mode, for tests: splash_attention(...,
interpret=True) directly, or impl="splash" through dot_product_attention while the test
hook _INTERPRET is True. Interpret mode checks numerics, not TPU layout or speed.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

LANES = 128  # splash's block sizes are multiples of the TPU lane width
BLOCK_CHOICES = (512, 256, 128)  # the largest that divides the length is used
_INTERPRET = False  # test hook: run impl="splash" in Pallas interpret mode off a TPU


def splash_problem(q, k, v, mask, bias, window, causal, return_weights, additive):
  """Why splash cannot run this call, or None when it can (shapes and dtypes only; the
  backend is the caller's check)."""
  if additive:
    return "splash computes dot-product scores only (score='additive' asked)"
  if return_weights:
    return "splash does not return attention weights (return_weights=True asked)"
  if bias is not None:
    return f"splash takes no bias; got a bias of shape {bias.shape}"
  mask_4d = None if mask is None else (1,) * (4 - len(mask.shape)) + tuple(mask.shape)
  if mask_4d is not None and (len(mask_4d) != 4 or mask_4d[1:3] != (1, 1)):
    return (f"splash takes a key padding mask [B, 1, 1, S] only; got a mask of shape "
            f"{mask.shape}")
  if not q.dtype == k.dtype == v.dtype or q.dtype not in (jnp.float32, jnp.bfloat16):
    return (f"splash needs one dtype, float32 or bfloat16; got {q.dtype}, {k.dtype}, "
            f"{v.dtype}")
  if v.shape != k.shape:
    return f"splash needs values shaped like the keys; got {v.shape} and {k.shape}"
  T, S = q.shape[1], k.shape[1]
  if T % LANES or S % LANES:
    return f"splash needs query and key lengths that are multiples of {LANES}; got {T}, {S}"
  if (causal or window is not None) and T != S:
    return f"splash runs causal or windowed self-attention only; got {T} queries, {S} keys"
  return None


def _block(length: int) -> int:
  return next(b for b in BLOCK_CHOICES if length % b == 0)


@functools.lru_cache(maxsize=64)
def _kernel(heads: int, T: int, S: int, causal: bool, window, interpret: bool):
  """The splash kernel for one [H, T, D] example (mask metadata is built in numpy once per
  shape and pattern, hence the cache)."""
  from jax.experimental.pallas.ops.tpu.splash_attention import (
      splash_attention_kernel as kernel_lib, splash_attention_mask as mask_lib)
  if window is not None:
    pattern = mask_lib.LocalMask((T, S), (window[0], 0 if causal else window[1]), offset=0)
  elif causal:
    pattern = mask_lib.CausalMask((T, S))
  else:
    pattern = mask_lib.FullMask((T, S))
  bq, bkv = _block(T), _block(S)
  blocks = kernel_lib.BlockSizes(block_q=bq, block_kv=bkv, block_kv_compute=bkv,
                                 block_q_dkv=bq, block_kv_dkv=bkv, block_kv_dkv_compute=bkv,
                                 block_q_dq=bq, block_kv_dq=bkv)
  with jax.ensure_compile_time_eval():  # concrete mask metadata, safe to cache across traces
    return kernel_lib.make_splash_mha(mask_lib.MultiHeadMask([pattern] * heads),
                                      block_sizes=blocks, head_shards=1, q_seq_shards=1,
                                      interpret=interpret)


def _any_allowed(key_mask_BS, T, causal, window):
  """[B, T] bool: whether query t may see any real key, from a cumulative sum of the key
  padding over the query's allowed key range [lo_t, hi_t]."""
  B, S = key_mask_BS.shape
  t = np.arange(T)
  lo = np.maximum(t - window[0], 0) if window is not None else np.zeros(T, int)
  right = 0 if causal else (window[1] if window is not None else S - 1)
  hi = np.minimum(t + right, S - 1)
  count = jnp.concatenate([jnp.zeros((B, 1), jnp.int32),
                           jnp.cumsum(key_mask_BS.astype(jnp.int32), axis=1)], axis=1)
  return (count[:, hi + 1] - count[:, lo]) > 0


def splash_attention(q, k, v, *, key_mask_BS=None, causal=False, window=None, scale=None,
                     interpret=False):
  """softmax(scale * Q K^T, masked) V by splash; [B, T, H, D] in and out (v's dtype).

  key_mask_BS: [B, S] bool, True = a real key. The caller checks splash_problem first.
  """
  B, T, H, D = q.shape
  S = k.shape[1]
  scale = 1.0 / np.sqrt(D) if scale is None else scale
  window = None if window is None else tuple(int(w) for w in window)
  kernel = _kernel(H, T, S, bool(causal), window, bool(interpret))
  q_BHTD = jnp.swapaxes(q * jnp.asarray(scale, q.dtype), 1, 2)
  k_BHSD, v_BHSD = jnp.swapaxes(k, 1, 2), jnp.swapaxes(v, 1, 2)
  if key_mask_BS is None:
    out_BHTD = jax.vmap(kernel)(q_BHTD, k_BHSD, v_BHSD)
    return jnp.swapaxes(out_BHTD, 1, 2).astype(v.dtype)
  from jax.experimental.pallas.ops.tpu.splash_attention import SegmentIds
  segments = SegmentIds(q=jnp.ones((B, T), jnp.int32), kv=key_mask_BS.astype(jnp.int32))
  out_BTHD = jnp.swapaxes(jax.vmap(kernel)(q_BHTD, k_BHSD, v_BHSD, segment_ids=segments), 1, 2)
  seen_BT = _any_allowed(key_mask_BS, T, causal, window)
  return jnp.where(seen_BT[:, :, None, None], out_BTHD, 0).astype(v.dtype)
