"""Softmax attention: softmax(score(Q, K) + bias, masked) V, in several implementations.

Layout is [batch, length, heads, head_dim], as in `jax.nn.dot_product_attention`.

impl:
  "reference"  the lecture's matrix form: the [B, H, T, S] score matrix is
               materialised, softmax'ed and multiplied by V. The oracle for tests;
               the only one that can return the attention weights.
  "chunked"    memory-efficient attention (Rabe & Staats 2021, arXiv 2112.05682):
               query chunks (lax.map) times key chunks (lax.scan) with a running
               max and sum, each key-chunk step under jax.checkpoint, so memory is
               O(T * chunk) in the forward and the backward pass.
  "local"      block-banded truncated attention (kernels/local.py) for a window:
               O(T * window) time and memory; self-attention with at most a key
               padding mask, no bias.
  "xla"        jax.nn.dot_product_attention(implementation="xla").
  "cudnn"      jax.nn.dot_product_attention(implementation="cudnn"): fused, GPU only.
  "auto"       cudnn when on a GPU and the call is supported there, else local for a
               window covering at most a quarter of the keys, else reference when the
               score matrix is small, else chunked.

Rows whose keys are all masked out return zeros in reference and chunked (no NaN,
no uniform average over padding).
"""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from attn_research.kernels import local as local_lib
from attn_research.kernels import masks as masks_lib
from attn_research.kernels.checks import check_mask_bias, check_qkv
from attn_research.kernels.scores import additive_scores, dot_scores
from attn_research.kernels.softmax import masked_softmax_parts

IMPLS = ("auto", "reference", "chunked", "local", "xla", "cudnn")
# "auto" materialises scores up to this many bytes (float32 [B, H, T, S]).
AUTO_REFERENCE_MAX_BYTES = 256 * 2**20
DEFAULT_Q_CHUNK = 1024  # Rabe & Staats' query chunk
DEFAULT_K_CHUNK = 4096  # Rabe & Staats' key chunk


# ----------------------------------------------------------------------------- checks

def _check_args(q, k, v, mask, bias, window, scale, impl, q_chunk=1, k_chunk=1):
  """Raises ValueError naming the bad value; runs at trace time (static shapes)."""
  check_impl(impl)
  B, T, S, H, D = check_qkv(q, k, v)
  target = (B, H, T, S)
  check_mask_bias(mask, bias, target)
  if window is not None:
    if (not isinstance(window, (tuple, list)) or len(window) != 2
        or not all(isinstance(w, (int, np.integer)) for w in window)):
      raise ValueError(f"window must be a pair of ints (left, right); got {window!r}")
    left, right = window
    if not (0 <= left < S and 0 <= right < S):
      raise ValueError(f"window={tuple(window)} must satisfy 0 <= left, right <= {S - 1} "
                       f"for a sequence of {S} keys")
  if isinstance(scale, (int, float, np.number)) and not scale > 0:
    raise ValueError(f"scale must be a positive number or None; got {scale!r}")
  if scale is not None and not (isinstance(scale, (int, float, np.number))
                                or (hasattr(scale, "shape") and scale.shape == ())):
    raise ValueError(f"scale must be a positive number (or a scalar array) or None; "
                     f"got {scale!r}")
  for name, c in (("q_chunk", q_chunk), ("k_chunk", k_chunk)):
    if not (isinstance(c, (int, np.integer)) and c >= 1):
      raise ValueError(f"{name} must be a positive int; got {c!r}")


def _on_gpu():
  return jax.default_backend() == "gpu"


def check_impl(impl):
  """Raises when impl is unknown or cannot run on this machine (before any tracing)."""
  if impl not in IMPLS:
    raise ValueError(f"impl={impl!r} is not an attention implementation; valid: {IMPLS}")
  if impl == "cudnn" and not _on_gpu():
    raise ValueError(f"impl='cudnn' needs a GPU; this machine's JAX backend is "
                     f"{jax.default_backend()!r}; use 'auto', 'reference' or 'chunked'")


def _cudnn_problem(q, k, v, bias, window, causal, return_weights, additive):
  """Why cuDNN cannot run this call, or None when it can."""
  if not _on_gpu():
    return f"impl='cudnn' needs a GPU; this machine's JAX backend is {jax.default_backend()!r}"
  if additive:
    return "cuDNN computes dot-product scores only (score='additive' asked)"
  if return_weights:
    return "cuDNN does not return attention weights (return_weights=True asked)"
  if q.dtype not in (jnp.bfloat16, jnp.float16):
    return f"cuDNN attention needs bfloat16 or float16 inputs; got {q.dtype}"
  if q.shape[-1] > 128 or q.shape[-1] % 8:
    return f"cuDNN attention needs head_dim <= 128 and a multiple of 8; got {q.shape[-1]}"
  if window is not None and window[1] != 0 and not causal:
    return f"cuDNN supports left-sided or causal windows only; got window={tuple(window)}"
  return None


# ---------------------------------------------------------------------- implementations

def _reference(q, k, v, score_fn, mask, bias, causal, window, return_weights):
  s = score_fn(q, k)
  if bias is not None:
    s = s + bias.astype(jnp.float32)
  allowed = masks_lib.combine(
      mask, masks_lib.full_mask(q.shape[1], k.shape[1], causal=causal, window=window))
  p, _, l = masked_softmax_parts(s, allowed)
  weights_BHTS = p / jnp.where(l == 0, 1.0, l)[..., None]
  out = jnp.einsum("bhts,bshd->bthd", weights_BHTS.astype(v.dtype), v,
                   preferred_element_type=jnp.float32).astype(v.dtype)
  return (out, weights_BHTS) if return_weights else out


def _block(x, start, size, axis):
  """Slice [start, start + size) along axis unless that axis broadcasts (size 1)."""
  if x is None or x.shape[axis] == 1:
    return x
  return jax.lax.dynamic_slice_in_dim(x, start, size, axis)


def _pad_to(x, length, axis, value=0):
  if x is None or x.shape[axis] in (1, length):
    return x
  pad = [(0, 0)] * x.ndim
  pad[axis] = (0, length - x.shape[axis])
  return jnp.pad(x, pad, constant_values=value)


def _chunked(q, k, v, score_fn, mask, bias, causal, window, q_chunk, k_chunk):
  B, T, H, _ = q.shape
  S, Dv = k.shape[1], v.shape[-1]
  qc, kc = min(q_chunk, T), min(k_chunk, S)
  nq, nk = -(-T // qc), -(-S // kc)
  q = _pad_to(q, nq * qc, 1)
  k, v = _pad_to(k, nk * kc, 1), _pad_to(v, nk * kc, 1)
  mask = _pad_to(_pad_to(masks_lib.as_4d(mask), nq * qc, 2, False), nk * kc, 3, False)
  bias = _pad_to(_pad_to(masks_lib.as_4d(bias), nq * qc, 2), nk * kc, 3)

  def query_block(qi):
    q0 = qi * qc
    q_blk = jax.lax.dynamic_slice_in_dim(q, q0, qc, 1)
    q_pos = q0 + jnp.arange(qc)
    mask_q, bias_q = _block(mask, q0, qc, 2), _block(bias, q0, qc, 2)

    @jax.checkpoint
    def key_step(carry, ki):
      acc_BHQD, m_BHQ, l_BHQ = carry
      k0 = ki * kc
      k_pos = k0 + jnp.arange(kc)
      s = score_fn(q_blk, jax.lax.dynamic_slice_in_dim(k, k0, kc, 1))
      if bias_q is not None:
        s = s + _block(bias_q, k0, kc, 3).astype(jnp.float32)
      allowed = masks_lib.combine(
          (k_pos < S)[None, None, None, :], _block(mask_q, k0, kc, 3),
          masks_lib.positional_allowed(q_pos, k_pos, causal=causal, window=window))
      p, m_blk, l_blk = masked_softmax_parts(s, allowed)
      m_new = jnp.maximum(m_BHQ, m_blk)
      m_new_safe = jnp.where(jnp.isfinite(m_new), m_new, 0.0)
      # Rescale the old running sums and this block's sums to the new max.
      old = jnp.exp(m_BHQ - m_new_safe)
      blk = jnp.exp(jnp.where(jnp.isfinite(m_blk), m_blk, 0.0) - m_new_safe)
      v_blk = jax.lax.dynamic_slice_in_dim(v, k0, kc, 1)
      pv_BHQD = jnp.einsum("bhqk,bkhd->bhqd", p.astype(v.dtype), v_blk,
                           preferred_element_type=jnp.float32)
      acc_BHQD = acc_BHQD * old[..., None] + pv_BHQD * blk[..., None]
      return (acc_BHQD, m_new, l_BHQ * old + l_blk * blk), None

    init = (jnp.zeros((B, H, qc, Dv), jnp.float32),
            jnp.full((B, H, qc), -jnp.inf, jnp.float32),
            jnp.zeros((B, H, qc), jnp.float32))
    (acc, _, l), _ = jax.lax.scan(key_step, init, jnp.arange(nk))
    return acc / jnp.where(l == 0, 1.0, l)[..., None]

  out_NBHQD = jax.lax.map(query_block, jnp.arange(nq))
  out_BTHD = jnp.transpose(out_NBHQD, (1, 0, 3, 2, 4)).reshape(B, nq * qc, H, Dv)
  return out_BTHD[:, :T].astype(v.dtype)


def _jax_nn(q, k, v, mask, bias, causal, window, scale, implementation):
  return jax.nn.dot_product_attention(
      q, k, v, bias=bias, mask=mask, scale=scale, is_causal=causal,
      local_window_size=None if window is None else tuple(window),
      implementation=implementation)


# ----------------------------------------------------------------------------- public

def _local_problem(q, k, mask, bias, window, additive):
  """Why the block-banded local kernel cannot run this call, or None when it can."""
  if window is None:
    return "impl='local' needs a window=(left, right)"
  if additive:
    return "impl='local' computes dot-product scores only"
  if bias is not None:
    return "impl='local' takes no bias"
  if q.shape[1] != k.shape[1]:
    return f"impl='local' is self-attention: queries {q.shape[1]} != keys {k.shape[1]}"
  if mask is not None and (mask.ndim != 4 or mask.shape[1] != 1 or mask.shape[2] != 1):
    return (f"impl='local' takes a key padding mask [B, 1, 1, S] only; got mask of shape "
            f"{mask.shape}")
  return None


def choose_impl(q, k, v, *, mask=None, bias=None, causal=False, window=None,
                return_weights=False, additive=False):
  """The implementation impl="auto" runs for this call."""
  if return_weights:
    return "reference"
  if _cudnn_problem(q, k, v, bias, window, causal, return_weights, additive) is None:
    return "cudnn"
  if (_local_problem(q, k, mask, bias, window, additive) is None
      and 4 * (window[0] + window[1] + 1) <= k.shape[1]):
    return "local"
  B, T, H, _ = q.shape
  score_bytes = 4 * B * H * T * k.shape[1]
  return "reference" if score_bytes <= AUTO_REFERENCE_MAX_BYTES else "chunked"


def _attention(q, k, v, score_fn, *, mask, bias, causal, window, scale, impl,
               return_weights, q_chunk, k_chunk, additive):
  _check_args(q, k, v, mask, bias, window, scale, impl, q_chunk, k_chunk)
  if impl == "auto":
    impl = choose_impl(q, k, v, mask=mask, bias=bias, causal=causal, window=window,
                       return_weights=return_weights, additive=additive)
  if return_weights and impl != "reference":
    raise ValueError(f"return_weights=True needs impl='reference' (or 'auto'); got impl={impl!r}")
  if impl == "reference":
    return _reference(q, k, v, score_fn, mask, bias, causal, window, return_weights)
  if impl == "chunked":
    return _chunked(q, k, v, score_fn, mask, bias, causal, window, q_chunk, k_chunk)
  if impl == "local":
    problem = _local_problem(q, k, mask, bias, window, additive)
    if problem:
      raise ValueError(problem)
    key_mask = None if mask is None else jnp.broadcast_to(mask[:, 0, 0, :],
                                                          (q.shape[0], k.shape[1]))
    return local_lib.local_attention(q, k, v, window=tuple(window), mask=key_mask,
                                     causal=causal, scale=scale)
  if additive:
    raise ValueError(f"additive scores run with impl='reference' or 'chunked'; got {impl!r}")
  if impl == "cudnn":
    problem = _cudnn_problem(q, k, v, bias, window, causal, return_weights, additive)
    if problem:
      raise ValueError(problem + "; use impl='auto', 'reference' or 'chunked'")
  return _jax_nn(q, k, v, mask, bias, causal, window, scale, impl)


def dot_product_attention(q, k, v, *, mask=None, bias=None, causal=False, window=None,
                          scale=None, impl="auto", return_weights=False,
                          q_chunk=DEFAULT_Q_CHUNK, k_chunk=DEFAULT_K_CHUNK):
  """softmax(scale * Q K^T + bias, masked) V.

  Args:
    q: [B, T, H, D] queries; k: [B, S, H, D] keys; v: [B, S, H, Dv] values.
    mask: bool, broadcastable to [B, H, T, S]; True = may attend.
    bias: added to the scores, broadcastable to [B, H, T, S].
    causal: query i attends keys j <= i.
    window: (left, right): query i attends keys i - left <= j <= i + right.
    scale: score scale; default 1 / sqrt(D).
    impl: one of IMPLS (see the module docstring).
    return_weights: also return the [B, H, T, S] float32 attention weights (reference).
    q_chunk, k_chunk: block sizes of impl="chunked".
  Returns:
    [B, T, H, Dv] in v's dtype (and the weights when asked).
  """
  if scale is None and q.ndim == 4:
    scale = 1.0 / math.sqrt(q.shape[-1])
  score_fn = functools.partial(dot_scores, scale=scale)
  return _attention(q, k, v, score_fn, mask=mask, bias=bias, causal=causal, window=window,
                    scale=scale, impl=impl, return_weights=return_weights,
                    q_chunk=q_chunk, k_chunk=k_chunk, additive=False)


def additive_attention(q, k, v, w_HD, *, mask=None, bias=None, causal=False, window=None,
                       impl="auto", return_weights=False,
                       q_chunk=DEFAULT_Q_CHUNK, k_chunk=DEFAULT_K_CHUNK):
  """softmax(w . tanh(q_i + k_j), masked) V: Bahdanau's additive scores.

  w_HD: [H, D] score vector per head. Other arguments as in dot_product_attention;
  impl may be "reference", "chunked" or "auto".
  """
  if q.ndim == 4 and w_HD.shape != (q.shape[2], q.shape[3]):
    raise ValueError(f"w_HD must be [heads, head_dim] = {(q.shape[2], q.shape[3])}; "
                     f"got {w_HD.shape}")
  score_fn = functools.partial(additive_scores, w_HD=w_HD)
  return _attention(q, k, v, score_fn, mask=mask, bias=bias, causal=causal, window=window,
                    scale=None, impl=impl, return_weights=return_weights,
                    q_chunk=q_chunk, k_chunk=k_chunk, additive=True)
