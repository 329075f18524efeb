"""Boolean attention masks. True means "query i may attend key j".

Masks are built lazily from position indices so that the chunked kernel can build
only the block it needs; `full_mask` materialises the [T, S] pattern for the
reference kernel and for users who want to look at it.
"""
from __future__ import annotations

import jax.numpy as jnp


def positional_allowed(q_pos, k_pos, *, causal: bool = False, window=None):
  """Allowed pattern from position vectors: [len(q_pos), len(k_pos)] bool, or None.

  causal: key j is allowed for query i when j <= i.
  window=(left, right): key j is allowed when i - left <= j <= i + right.
  """
  if not causal and window is None:
    return None
  offset = k_pos[None, :] - q_pos[:, None]  # j - i
  allowed = jnp.ones(offset.shape, dtype=bool)
  if causal:
    allowed &= offset <= 0
  if window is not None:
    left, right = window
    allowed &= (offset >= -left) & (offset <= right)
  return allowed


def full_mask(num_queries: int, num_keys: int, *, causal: bool = False, window=None):
  """[T, S] boolean mask for causal and/or windowed attention (None when unrestricted)."""
  return positional_allowed(jnp.arange(num_queries), jnp.arange(num_keys),
                            causal=causal, window=window)


def padding_mask(valid_BS):
  """[B, S] True-for-real-vector mask -> [B, 1, 1, S] key mask broadcastable to [B, H, T, S]."""
  return valid_BS[:, None, None, :]


def prefix_lengths(valid_BS):
  """(lengths [B] int32, is_prefix scalar bool) of a [B, S] key padding mask: is_prefix
  says every row is a run of Trues then Falses (padding on the right), the form fused
  kernels take as sequence lengths instead of a dense mask."""
  lengths = jnp.sum(valid_BS, axis=-1, dtype=jnp.int32)
  prefix = jnp.arange(valid_BS.shape[-1], dtype=jnp.int32)[None, :] < lengths[:, None]
  return lengths, jnp.all(prefix == valid_BS)


def key_padding(mask, batch: int, num_keys: int):
  """The [B, S] key padding mask inside mask when mask restricts keys only ([B or 1,
  1, 1, S]); None for any other pattern (per query or per head)."""
  if mask is None or mask.ndim != 4 or mask.shape[1] != 1 or mask.shape[2] != 1:
    return None
  return jnp.broadcast_to(mask[:, 0, 0, :], (batch, num_keys))


def as_4d(x):
  """Left-pads a mask or bias with unit dims up to [B, H, T, S] (numpy broadcasting)."""
  return None if x is None else x.reshape((1,) * (4 - x.ndim) + x.shape)


def combine(*masks):
  """Logical AND of the masks that are not None (None when all are None)."""
  out = None
  for m in masks:
    if m is not None:
      out = m if out is None else out & m
  return out
