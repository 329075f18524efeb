"""Performer / FAVOR+: softmax attention through positive random features
(Choromanski et al. 2020, "Rethinking Attention with Performers", arXiv 2009.14794).

The softmax kernel exp(q . k / sqrt(D)) is an expectation over Gaussian vectors w:
with x' = x D^-1/4 (so q' . k' = q . k / sqrt(D)),

  exp(q' . k') = E_w[ exp(w . q' - |q'|^2 / 2) exp(w . k' - |k'|^2 / 2) ],  w ~ N(0, I_D).

Drawing M vectors w_1..w_M (the rows of the projection W [M, D]) gives the positive
feature map phi(x) = exp(W x' - |x'|^2 / 2) / sqrt(M), an unbiased estimate
phi(q) . phi(k) of every entry of the unnormalised attention matrix; positivity keeps the
normaliser sum_j phi(q_i) . phi(k_j) away from zero (trigonometric features are not). The
rows are block-orthogonal (each block of D rows is the Q of a Gaussian matrix's QR,
sign-corrected) and rescaled to norms drawn from the chi distribution with D degrees of
freedom (the norms of D-dim Gaussian vectors), which keeps each row marginally N(0, I)
and so the estimate unbiased, with lower variance than i.i.d. rows (the paper's Lemma 2).

Attention is then linear attention (kernels/linear.py, Katharopoulos et al. 2020) on
these features: out_i = phi(q_i)^T (sum_j phi(k_j) v_j^T) / phi(q_i)^T sum_j phi(k_j),
non-causal ("direct") or causal ("parallel", "chunked", "recurrent"), with eps = 0 in the
normaliser (the features are strictly positive, so it never divides by zero unless every
feature underflowed, where linear.py returns 0). It approximates
dot_product_attention(q, k, v) with its default scale 1/sqrt(D).

Stability (as in the paper's code): the exponent's maximum is subtracted before exp, for
each query over its M features, and for keys one maximum per batch element and head over
all real keys and features. Both cancel in the ratio (a factor common to the numerator
and the normaliser), and they are held out of the gradient (stop_gradient), so causal
gradients are exactly zero on the future. In causal mode the key maximum is still taken
over the whole sequence: later keys change earlier outputs only through float32 rounding,
unless a later key's exponent exceeds an earlier one's by about 80, when the earlier
key's features underflow to 0. Padded keys get features exactly 0 (no inf, no NaN in
gradients). The paper subtracts max(W x'); here max(W x' - |x'|^2 / 2), which gives every
query a largest feature of exactly 1 / sqrt(M).

Costs per batch element and head, T queries, S keys, M features, head dim D:
features O((T + S) M D) time; non-causal attention O((T + S) M D) time and
O((T + S) (M + D) + M D) memory; causal chunked O(T C (M + D) + T M D) time with chunks
of C positions. Softmax attention costs O(T S D) time and O(T S) memory.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from attn_research.kernels.checks import check_qkv
from attn_research.kernels.linear import DEFAULT_CHUNK, linear_attention, linear_attention_weights

DEFAULT_FEATURES = 256


def orthogonal_gaussian(key, num_features: int, dim: int, dtype=jnp.float32):
  """[num_features, dim] block-orthogonal Gaussian rows with chi(dim)-distributed norms.

  ceil(num_features / dim) independent blocks; each is Q^T of the QR of a dim x dim
  Gaussian matrix (columns' signs fixed by diag(R), so Q is Haar-distributed); the rows of
  the last block beyond num_features are dropped. Row norms are those of fresh Gaussian
  vectors, so every row is marginally N(0, I_dim) and rows of a block are orthogonal.
  """
  for name, n in (("num_features", num_features), ("dim", dim)):
    if isinstance(n, (bool, np.bool_)) or not (isinstance(n, (int, np.integer)) and n >= 1):
      raise ValueError(f"{name} must be a positive int; got {n!r}")
  blocks = -(-num_features // dim)
  k_blocks, k_norms = jax.random.split(key)
  g_NDD = jax.random.normal(k_blocks, (blocks, dim, dim), jnp.float32)
  q_NDD, r_NDD = jnp.linalg.qr(g_NDD)
  signs_ND = jnp.sign(jnp.diagonal(r_NDD, axis1=-2, axis2=-1))
  q_NDD = q_NDD * jnp.where(signs_ND == 0, 1.0, signs_ND)[:, None, :]
  rows_MD = jnp.swapaxes(q_NDD, -1, -2).reshape(blocks * dim, dim)[:num_features]
  norms_M = jnp.linalg.norm(jax.random.normal(k_norms, (num_features, dim), jnp.float32),
                            axis=-1)
  return (rows_MD * norms_M[:, None]).astype(dtype)


def favor_features(x_BTHD, w_MD, *, is_query: bool, mask_BT=None):
  """FAVOR+ positive features exp(W x' - |x'|^2 / 2 - c) / sqrt(M), x' = x D^-1/4, float32.

  c (held out of the gradient) is each query's own maximum over its M features, or, for
  keys, one maximum per batch element and head over every real key and feature. Keys
  outside mask_BT [B, T] (True = real) get features exactly 0.
  """
  M, D = w_MD.shape
  x = x_BTHD.astype(jnp.float32) * D ** -0.25
  logits_BTHM = (jnp.einsum("bthd,md->bthm", x, w_MD.astype(jnp.float32))
                 - 0.5 * jnp.sum(x * x, axis=-1, keepdims=True))
  if is_query:
    c = jnp.max(logits_BTHM, axis=-1, keepdims=True)
  else:
    if mask_BT is not None:
      logits_BTHM = jnp.where(mask_BT[:, :, None, None], logits_BTHM, -jnp.inf)
    c = jnp.max(logits_BTHM, axis=(1, 3), keepdims=True)  # [B, 1, H, 1]
    c = jnp.where(jnp.isfinite(c), c, 0.0)  # no real key (or T = 0)
  return jnp.exp(logits_BTHM - jax.lax.stop_gradient(c)) / math.sqrt(M)


def performer_attention(q, k, v, projection_MD, *, mask=None, causal=False, impl="auto",
                        chunk=DEFAULT_CHUNK):
  """FAVOR+ estimate of softmax(Q K^T / sqrt(D)) V.

  Args:
    q: [B, T, H, D] queries; k: [B, S, H, D] keys; v: [B, S, H, Dv] values.
    projection_MD: [M, D] random rows (orthogonal_gaussian), shared by all heads.
    mask: [B, S] bool key padding mask (True = real key) or None.
    causal: query i attends keys j <= i (needs T == S).
    impl: a linear attention form (linear.LINEAR_IMPLS): "auto" (chunked when causal,
      direct when not), "direct", "parallel", "chunked", "recurrent".
    chunk: positions per chunk of impl="chunked".
  Returns:
    [B, T, H, Dv] in v's dtype.
  """
  _, _, _, _, D = check_qkv(q, k, v)
  if getattr(projection_MD, "ndim", None) != 2 or projection_MD.shape[1] != D:
    raise ValueError(f"projection_MD must be [num_features, head_dim={D}]; got shape "
                     f"{getattr(projection_MD, 'shape', projection_MD)}")
  if not jnp.issubdtype(projection_MD.dtype, jnp.floating):
    raise ValueError(f"projection_MD must be floating-point; got dtype {projection_MD.dtype}")
  if mask is not None:
    mask = jnp.asarray(mask)
  return linear_attention(q, k, v, mask=mask, causal=causal,
                          feature_map=_feature_maps(projection_MD, mask),
                          impl=impl, chunk=chunk, eps=0.0)


def _feature_maps(projection_MD, mask):
  """(query map, key map): the two are stabilised differently (see favor_features)."""
  def query_map(x):
    return favor_features(x, projection_MD, is_query=True)

  def key_map(x):
    return favor_features(x, projection_MD, is_query=False, mask_BT=mask)
  return query_map, key_map


def performer_weights(q, k, projection_MD, *, mask=None, causal=False):
  """[B, H, T, S] the estimated attention matrix phi(q_i) . phi(k_j), row-normalised
  (for attention maps; the attention itself never forms it)."""
  if mask is not None:
    mask = jnp.asarray(mask)
  return linear_attention_weights(q, k, mask=mask, causal=causal,
                                  feature_map=_feature_maps(projection_MD, mask), eps=0.0)
