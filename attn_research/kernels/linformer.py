"""Linformer: self-attention with linear complexity (Wang et al. 2020, arXiv 2006.04768).

The paper observes that the T x T attention matrix is approximately low rank, and
replaces the keys and values by k << n_max learned combinations of positions before the
softmax: with E, F [k, n_max] projections along the length axis,

  out = softmax(Q (E K)^T / sqrt(D)) (F V),   E K, F V: [k, D] per batch element and head,

so each query attends k "projected keys" instead of T positions. Sharing: E and F are
shared by every head of a layer (the paper's "headwise" sharing); E and F are separate
(not the paper's further "key-value" sharing E = F). For a sequence of T <= n_max
positions the first T columns of E and F are used, so one pair of projections serves
every length up to n_max; a longer input raises ValueError.

Non-causal only: every projected key mixes all positions, the future included, so no
causal mask can be applied to it (causal=True raises ValueError). Padding: padded keys
and values are set to zero before the projection, so they add nothing to E K or F V; a
key padding mask cannot be applied after the projection, because each projected key is
a mixture of positions (and no other [T, S] mask, e.g. a graph's adjacency, can be applied
either). The softmax over the k projected keys is dot_product_attention (any of its impls).

Costs per batch element and head, T queries and keys, k projected length, head dim D:
projections O(T k D) time; attention O(T k D) time and O(T k) memory for the scores
(against O(T^2 D) and O(T^2) for softmax attention); parameters 2 k n_max per layer.
"""
from __future__ import annotations

import jax.numpy as jnp

from attn_research.kernels.attention import dot_product_attention
from attn_research.kernels.checks import check_key_mask, check_qkv


def _check_projection(name, p, other_shape=None):
  if getattr(p, "ndim", None) != 2:
    raise ValueError(f"{name} must be a [k, n_max] projection; got "
                     f"{getattr(p, 'shape', p)!r}")
  if not jnp.issubdtype(p.dtype, jnp.floating):
    raise ValueError(f"{name} must be floating-point; got dtype {p.dtype}")
  if other_shape is not None and p.shape != other_shape:
    raise ValueError(f"e_KN and f_KN must have one shape [k, n_max]; got {other_shape} "
                     f"and {p.shape}")


def project_length(x_BSHD, p_KN):
  """sum_n p[j, n] x[:, n]: [B, S, H, D] -> [B, k, H, D], using p's first S columns."""
  S = x_BSHD.shape[1]
  out = jnp.einsum("kn,bnhd->bkhd", p_KN[:, :S], x_BSHD,
                   preferred_element_type=jnp.float32)
  return out.astype(jnp.result_type(x_BSHD.dtype, p_KN.dtype))


def linformer_attention(q, k, v, e_KN, f_KN, *, mask=None, causal=False, scale=None,
                        impl="auto", return_weights=False):
  """softmax(scale Q (E K)^T) (F V), keys and values projected along the length axis.

  Args:
    q: [B, T, H, D] queries; k: [B, S, H, D] keys; v: [B, S, H, Dv] values, S <= n_max.
    e_KN, f_KN: [k, n_max] projections of keys and values, shared by all heads.
    mask: [B, S] bool key padding mask (True = real key) or None; padded keys and
      values are zeroed before the projection.
    causal: must be False (see the module docstring).
    scale: score scale; default 1 / sqrt(D).
    impl: dot_product_attention's impl for the softmax over the k projected keys.
    return_weights: also return the [B, H, T, k] weights over the projected keys (they
      are weights over mixtures of positions, not over positions).
  Returns:
    [B, T, H, Dv] in v's dtype (and the weights when asked).
  """
  if causal:
    raise ValueError("linformer attention cannot be causal: each projected key mixes all "
                     "positions, the future included (causal=True asked); use "
                     "attention 'softmax', 'linear' or 'performer' for causal models")
  B, _, S, _, _ = check_qkv(q, k, v)
  _check_projection("e_KN", e_KN)
  _check_projection("f_KN", f_KN, e_KN.shape)
  n_max = e_KN.shape[1]
  if S > n_max:
    raise ValueError(f"linformer projections cover n_max={n_max} positions; got a sequence "
                     f"of {S} keys (k {k.shape}); build the model with max_length >= {S}")
  if mask is not None:
    mask = jnp.asarray(mask)
    check_key_mask(mask, B, S)
    keep = mask[:, :, None, None]
    k, v = jnp.where(keep, k, 0), jnp.where(keep, v, 0)
  k_proj, v_proj = project_length(k, e_KN).astype(k.dtype), project_length(v, f_KN)
  return dot_product_attention(q, k_proj, v_proj.astype(v.dtype), scale=scale, impl=impl,
                               return_weights=return_weights)
