"""Input checks shared by the kernels: each raises ValueError naming the bad value, at
trace time (shapes are static), before anything compiles."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np


def check_qkv(q, k, v):
  """q [B, T, H, D], k [B, S, H, D], v [B, S, H, Dv] -> (B, T, S, H, D)."""
  for name, x in (("q", q), ("k", k), ("v", v)):
    if x.ndim != 4:
      raise ValueError(f"{name} must be [batch, length, heads, head_dim]; got shape {x.shape}")
  (B, T, H, D), (Bk, S, Hk, Dk), (Bv, Sv, Hv, _) = q.shape, k.shape, v.shape
  if not (B == Bk == Bv and H == Hk == Hv and S == Sv and D == Dk):
    raise ValueError(
        "q, k, v shapes disagree: need q [B, T, H, D], k [B, S, H, D], v [B, S, H, Dv]; "
        f"got q {q.shape}, k {k.shape}, v {v.shape}")
  return B, T, S, H, D


def check_key_mask(mask, batch: int, keys: int):
  """A [batch, keys] boolean key padding mask (True = real key), or None."""
  if mask is None:
    return
  if mask.shape != (batch, keys):
    raise ValueError(f"mask must be a [batch, keys] = {(batch, keys)} key padding mask "
                     f"(True = real key); got shape {mask.shape}")
  if mask.dtype != jnp.bool_:
    raise ValueError(f"mask must be boolean (True = real key); got dtype {mask.dtype}")


def check_mask_bias(mask, bias, target):
  """mask (boolean) and bias, each None or broadcastable to target = (B, H, T, S)."""
  for name, x in (("mask", mask), ("bias", bias)):
    if x is None:
      continue
    try:
      ok = x.ndim <= 4 and np.broadcast_shapes(x.shape, target) == target
    except ValueError:
      ok = False
    if not ok:
      raise ValueError(f"{name} of shape {x.shape} does not broadcast to "
                       f"[batch, heads, queries, keys] = {target}")
  if mask is not None and mask.dtype != jnp.bool_:
    raise ValueError(f"mask must be boolean (True = may attend); got dtype {mask.dtype}")
