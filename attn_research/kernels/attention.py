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
  "xla"        jax.nn.dot_product_attention(implementation="xla"), with rows whose keys
               are all masked out set to zero as in reference.
  "cudnn"      jax.nn.dot_product_attention(implementation="cudnn"): fused, GPU only.
               Padding reaches it as sequence lengths, not a dense mask: a key padding
               mask ([B, 1, 1, S], what the models pass) is turned into lengths, and a
               lax.cond runs cuDNN's PADDING (PADDING_CAUSAL) mask type when every row
               is padded on the right (all the project's tasks), the dense mask
               otherwise; causal goes as is_causal, a window as cuDNN's sliding window.
  "splash"     JAX's Pallas TPU splash attention (kernels/splash.py): fused, TPU only
               (Pallas interpret mode on a CPU for tests); key padding as segment ids,
               causal and windows as splash's lazy masks.
  "ring"       ring attention (kernels/ring.py) over the "sequence" axis of the mesh set
               by jax.set_mesh: sequence parallelism; natural order in and out, causal
               load balanced; at most a key padding mask, no bias, no window. Never
               chosen by "auto".
  "auto"       choose_impl, in this order:
                 1. reference when the weights are asked for;
                 1b. splash on a TPU when splash supports the call (splash.splash_problem:
                    dot-product scores, no bias, at most key padding, f32/bf16, lengths
                    multiples of 128); otherwise rules 3-5;
                 2. cudnn on a GPU when cuDNN supports the call (bf16/f16, head dim
                    <= 128 and a multiple of 8, no two-sided window unless causal);
                 3. local for a window covering at most a quarter of the keys;
                 4. when the float32 score matrix [B, H, T, S] fits the backend's limit
                    (materialise_limit: 32 MiB on a CPU, 16 MiB when causal, 256 MiB
                    elsewhere): xla when jax.nn supports the call (dot-product
                    scores, values shaped like the keys, one dtype), else reference;
                 5. chunked.
               Why the CPU limit is lower: on a CPU, materialised attention streams the
               whole score matrix through memory several times (softmax, its gradient),
               while chunked keeps a 256 x 256 block per head in cache. Measured on the
               project's 2-core CPU (B 1, 8 heads, head dim 64, fwd+bwd; 2026-11-30,
               load 4, the other jobs of the machine running): chunked with 256 x 256
               blocks took 0.64-0.72x jax.nn's time at T = 1536-4096, tied at T = 1024
               (32 MiB of scores: the limit) and lost at T = 512 (1.4x); causal, which
               skips blocks, it took 0.44-0.48x at T = 2048-4096, 0.65x at 1024, 0.82x
               at 768 (18 MiB) and lost at 512 (1.1x). xla beats reference (2.3-2.7x
               faster at T = 512-1024) because jax.nn's softmax has a cheaper gradient
               than the masked-softmax parts reference differentiates.
               On a GPU (TPU), a call that cannot go to cuDNN (splash) logs why, once per
               reason (logger "attn_research.attention", level WARNING), naming what runs
               instead.

Chunk sizes: q_chunk, k_chunk = None picks the backend's (default_chunks): 256 x 256 on
a CPU (cache-sized blocks, above), Rabe & Staats' 1024 x 4096 elsewhere. Causal and
windowed chunked attention skips key blocks that no query of the block may see (a
lax.cond per block), about halving causal work at long lengths.

Rows whose keys are all masked out return zeros in reference, chunked and xla (no NaN,
no uniform average over padding).
"""
from __future__ import annotations

import functools
import logging
import math

import jax
import jax.numpy as jnp
import numpy as np

from attn_research.kernels import local as local_lib
from attn_research.kernels import masks as masks_lib
from attn_research.kernels import ring as ring_lib
from attn_research.kernels import splash as splash_lib
from attn_research.kernels.checks import check_mask_bias, check_qkv
from attn_research.kernels.scores import additive_scores, dot_scores
from attn_research.kernels.softmax import masked_softmax_parts

LOG = logging.getLogger("attn_research.attention")
_LOGGED = set()  # fallback reasons already logged by this process

IMPLS = ("auto", "reference", "chunked", "local", "xla", "cudnn", "ring", "splash")
# "auto" materialises scores up to this many bytes (float32 [B, H, T, S]) on a GPU or TPU,
AUTO_REFERENCE_MAX_BYTES = 256 * 2**20
# and up to this many on a CPU (see the module docstring).
AUTO_CPU_MATERIALISE_MAX_BYTES = 32 * 2**20
DEFAULT_Q_CHUNK = 1024  # Rabe & Staats' query chunk
DEFAULT_K_CHUNK = 4096  # Rabe & Staats' key chunk
CPU_CHUNK = 256  # query and key chunk on a CPU: a block of scores per head stays in cache


def materialise_limit(causal: bool = False) -> int:
  """The largest float32 score matrix (bytes) "auto" materialises on this backend; on a
  CPU half as much for causal calls, where chunked skips half the blocks."""
  if jax.default_backend() == "cpu":
    return AUTO_CPU_MATERIALISE_MAX_BYTES // (2 if causal else 1)
  return AUTO_REFERENCE_MAX_BYTES


def default_chunks() -> tuple[int, int]:
  """(q_chunk, k_chunk) of impl="chunked" when the caller gives none."""
  if jax.default_backend() == "cpu":
    return CPU_CHUNK, CPU_CHUNK
  return DEFAULT_Q_CHUNK, DEFAULT_K_CHUNK


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


def _on_tpu():
  return jax.default_backend() == "tpu"


def check_impl(impl):
  """Raises when impl is unknown or cannot run on this machine (before any tracing)."""
  if impl not in IMPLS:
    raise ValueError(f"impl={impl!r} is not an attention implementation; valid: {IMPLS}")
  if impl == "cudnn" and not _on_gpu():
    raise ValueError(f"impl='cudnn' needs a GPU; this machine's JAX backend is "
                     f"{jax.default_backend()!r}; use 'auto', 'reference' or 'chunked'")
  if impl == "splash" and not (_on_tpu() or splash_lib._INTERPRET):
    raise ValueError(f"impl='splash' needs a TPU; this machine's JAX backend is "
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
  if not q.dtype == k.dtype == v.dtype:
    return f"cuDNN attention needs one dtype; got {q.dtype}, {k.dtype}, {v.dtype}"
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

    def visible(ki):
      """Whether any query of this block may see any key of key block ki."""
      k0, ok = ki * kc, True
      if causal:
        ok = k0 <= q0 + qc - 1
      if window is not None:
        ok = ok & (k0 <= q0 + qc - 1 + window[1]) & (k0 + kc - 1 >= q0 - window[0])
      return ok

    def key_block(carry, ki):
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
      return acc_BHQD, m_new, l_BHQ * old + l_blk * blk

    @jax.checkpoint
    def key_step(carry, ki):
      if not causal and window is None:
        return key_block(carry, ki), None
      # A block no query may see leaves the running sums as they are, at no cost.
      return jax.lax.cond(visible(ki), key_block, lambda c, _: c, carry, ki), None

    init = (jnp.zeros((B, H, qc, Dv), jnp.float32),
            jnp.full((B, H, qc), -jnp.inf, jnp.float32),
            jnp.zeros((B, H, qc), jnp.float32))
    (acc, _, l), _ = jax.lax.scan(key_step, init, jnp.arange(nk))
    return acc / jnp.where(l == 0, 1.0, l)[..., None]

  out_NBHQD = jax.lax.map(query_block, jnp.arange(nq))
  out_BTHD = jnp.transpose(out_NBHQD, (1, 0, 3, 2, 4)).reshape(B, nq * qc, H, Dv)
  return out_BTHD[:, :T].astype(v.dtype)


def _jax_nn(q, k, v, mask, bias, causal, window, scale, implementation):
  mask, bias = masks_lib.as_4d(mask), masks_lib.as_4d(bias)  # jax.nn takes 4D only
  call = functools.partial(jax.nn.dot_product_attention, q, k, v, bias=bias, scale=scale,
                           is_causal=causal,
                           local_window_size=None if window is None else tuple(window),
                           implementation=implementation)
  key_mask = masks_lib.key_padding(mask, q.shape[0], k.shape[1])
  if implementation == "cudnn" and key_mask is not None:
    out = _padded_as_lengths(call, mask, key_mask)
  else:
    out = call(mask=mask)
  T, S = q.shape[1], k.shape[1]
  if mask is not None or (window is not None and T != S):
    # jax.nn fills masked scores with a large negative number, so a row with no key
    # allowed averages every value; the contract is zeros (reference, chunked).
    allowed = masks_lib.as_4d(masks_lib.combine(
        mask, masks_lib.full_mask(T, S, causal=causal, window=window)))
    any_BHT = jnp.any(allowed, axis=-1)
    any_BTH = jnp.swapaxes(jnp.broadcast_to(
        any_BHT, any_BHT.shape[:-1] + (T,)), -1, -2)  # [B or 1, T, H or 1]
    out = jnp.where(any_BTH[..., None], out, jnp.zeros((), out.dtype))
  return out


def _padded_as_lengths(call, mask, key_mask_BS):
  """call (jax.nn.dot_product_attention with everything but the padding) with the key
  padding given as key_value_seq_lengths when every row is padded on the right (the
  fused kernels' own padding), else as the dense mask: both branches are compiled, the
  lax.cond picks one per call at run time."""
  lengths_B, is_prefix = masks_lib.prefix_lengths(key_mask_BS)
  return jax.lax.cond(is_prefix,
                      lambda: call(mask=None, key_value_seq_lengths=lengths_B),
                      lambda: call(mask=mask))


def _log_fallback(reason: str, chosen: str, fused: str = "cuDNN"):
  """On a GPU or TPU, says once per reason why impl="auto" did not pick the fused kernel
  (cuDNN, splash)."""
  if (_on_gpu() or _on_tpu()) and reason not in _LOGGED:
    _LOGGED.add(reason)
    LOG.warning("attention impl='auto': not %s because %s; running %r", fused, reason,
                chosen)


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


def _ring(q, k, mask, bias, window, causal, scale, v):
  """impl="ring": a key padding mask at most (it travels the ring with its keys)."""
  if bias is not None or window is not None:
    raise ValueError(f"impl='ring' takes no bias and no window; got bias "
                     f"{None if bias is None else bias.shape}, window={window}")
  if mask is not None and (mask.ndim != 4 or mask.shape[1] != 1 or mask.shape[2] != 1):
    raise ValueError(f"impl='ring' takes a key padding mask [B, 1, 1, S] only; got mask of "
                     f"shape {mask.shape}")
  key_mask = None if mask is None else jnp.broadcast_to(mask[:, 0, 0, :],
                                                        (q.shape[0], k.shape[1]))
  return ring_lib.ring_from_context(q, k, v, key_mask=key_mask, causal=causal, scale=scale)


def _xla_problem(q, k, v, additive):
  """Why jax.nn.dot_product_attention cannot run this call, or None when it can."""
  if additive:
    return "jax.nn computes dot-product scores only (score='additive' asked)"
  if v.shape != k.shape:
    return f"jax.nn needs values shaped like the keys; got {v.shape} and {k.shape}"
  if not q.dtype == k.dtype == v.dtype:
    return f"jax.nn needs one dtype; got {q.dtype}, {k.dtype}, {v.dtype}"
  return None


def choose_impl(q, k, v, *, mask=None, bias=None, causal=False, window=None,
                return_weights=False, additive=False):
  """The implementation impl="auto" runs for this call (the module docstring's rules)."""
  if return_weights:
    return "reference"
  if _on_tpu():
    problem = splash_lib.splash_problem(q, k, v, mask, bias, window, causal, return_weights,
                                        additive)
    if problem is None:
      return "splash"
    chosen = _fallback_impl(q, k, v, mask=mask, bias=bias, causal=causal, window=window,
                            additive=additive)
    _log_fallback(problem, chosen, "splash")
    return chosen
  problem = _cudnn_problem(q, k, v, bias, window, causal, return_weights, additive)
  if problem is None:
    return "cudnn"
  chosen = _fallback_impl(q, k, v, mask=mask, bias=bias, causal=causal, window=window,
                          additive=additive)
  _log_fallback(problem, chosen)
  return chosen


def _fallback_impl(q, k, v, *, mask, bias, causal, window, additive):
  """What auto runs when cuDNN cannot (rules 3-5 of the module docstring)."""
  if (_local_problem(q, k, mask, bias, window, additive) is None
      and 4 * (window[0] + window[1] + 1) <= k.shape[1]):
    return "local"
  B, T, H, _ = q.shape
  score_bytes = 4 * B * H * T * k.shape[1]
  if score_bytes <= materialise_limit(causal):
    return "xla" if _xla_problem(q, k, v, additive) is None else "reference"
  return "chunked"


def _attention(q, k, v, score_fn, *, mask, bias, causal, window, scale, impl,
               return_weights, q_chunk, k_chunk, additive):
  default_q, default_k = default_chunks()
  q_chunk = default_q if q_chunk is None else q_chunk
  k_chunk = default_k if k_chunk is None else k_chunk
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
  if impl == "ring":
    return _ring(q, k, mask, bias, window, causal, scale, v)
  if impl == "splash":
    problem = splash_lib.splash_problem(q, k, v, mask, bias, window, causal, False, additive)
    if problem:
      raise ValueError(problem + "; use impl='auto', 'reference' or 'chunked'")
    return splash_lib.splash_attention(
        q, k, v, key_mask_BS=masks_lib.key_padding(masks_lib.as_4d(mask), q.shape[0],
                                                   k.shape[1]),
        causal=causal, window=window, scale=scale, interpret=not _on_tpu())
  if impl == "xla":
    problem = _xla_problem(q, k, v, additive)
    if problem:
      raise ValueError(problem + "; use impl='auto', 'reference' or 'chunked'")
  if impl == "cudnn":
    problem = _cudnn_problem(q, k, v, bias, window, causal, return_weights, additive)
    if problem:
      raise ValueError(problem + "; use impl='auto', 'reference' or 'chunked'")
  return _jax_nn(q, k, v, mask, bias, causal, window, scale, impl)


def dot_product_attention(q, k, v, *, mask=None, bias=None, causal=False, window=None,
                          scale=None, impl="auto", return_weights=False,
                          q_chunk=None, k_chunk=None):
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
    q_chunk, k_chunk: block sizes of impl="chunked"; None: the backend's (default_chunks).
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
                       q_chunk=None, k_chunk=None):
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
