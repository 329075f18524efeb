"""Relative positional information that acts inside attention, as pure functions.

Absolute encodings (kernels/positional.py) are added to the input vectors; the ones
here change the scores instead, so that what a head sees depends on the distance
between a query and a key rather than on where either sits:

  RoPE      rotates q and k by position-dependent angles; q_i . k_j then depends on
            i - j only (Su et al. 2021, RoFormer, arXiv 2104.09864).
  ALiBi     adds a fixed -slope_h * distance to the scores (Press et al. 2021,
            arXiv 2108.12409).
  T5        adds a learned scalar per head and log-spaced distance bucket
            (Raffel et al. 2020, JMLR, section 2.1).
  Shaw      learned embeddings of distances clipped to [-k, k] (Shaw et al. 2018,
            arXiv 1803.02155); `relative_bias` gives its scalar-per-head form.

Conventions, shared with kernels/masks.py:
  * query i sits at q_positions[i], key j at k_positions[j]; positions are any
    numbers, so a KV cache passes q_positions = offset + arange(T).
  * relative_position[i, j] = k_positions[j] - q_positions[i]  (j - i: negative
    for keys in the past), as in T5 (memory_position - query_position).
  * biases are [1, H, T, S], ready for dot_product_attention(..., bias=...).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np


# ----------------------------------------------------------------------------- checks

def _check_int(name, value, minimum):
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
    raise ValueError(f"{name} must be an int >= {minimum}; got {value!r}")


def _check_positive(name, value):
  if not isinstance(value, (int, float, np.number)) or not value > 0:
    raise ValueError(f"{name} must be a positive number; got {value!r}")


def _check_integer_array(name, x):
  if not jnp.issubdtype(jnp.asarray(x).dtype, jnp.integer):
    raise ValueError(f"{name} must hold integers; got dtype {jnp.asarray(x).dtype}")


def relative_positions(q_positions, k_positions):
  """[T, S] array of k_positions[j] - q_positions[i] (j - i)."""
  q_positions, k_positions = jnp.asarray(q_positions), jnp.asarray(k_positions)
  if q_positions.ndim != 1 or k_positions.ndim != 1:
    raise ValueError(f"q_positions and k_positions must be 1-D; got shapes "
                     f"{q_positions.shape} and {k_positions.shape}")
  return k_positions[None, :] - q_positions[:, None]


# ------------------------------------------------------------------------------- RoPE

def rope_frequencies(head_dim: int, base: float = 10000.0):
  """RoFormer's theta_p = base^(-2p / head_dim), p = 0 .. head_dim/2 - 1: [head_dim // 2]."""
  _check_int("head_dim", head_dim, 2)
  if head_dim % 2:
    raise ValueError(f"rotary embedding rotates pairs of dimensions; head_dim={head_dim} is odd")
  _check_positive("base", base)
  return base ** (-jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim)


def apply_rope(x_BTHD, positions_T, base: float = 10000.0):
  """Rotary position embedding (RoFormer, eq. 34), applied to queries or keys.

  Pairing convention: INTERLEAVED, as in the paper: dimensions (2p, 2p + 1) form
  pair p and are rotated by the angle position * theta_p:
    y[2p]     = x[2p] cos - x[2p+1] sin
    y[2p + 1] = x[2p] sin + x[2p+1] cos
  (GPT-NeoX/LLaMA pair dimension p with p + D/2 instead, "split halves": the same
  maths on permuted dimensions, not interchangeable with pretrained weights.)

  Apply to q and k with their own positions; then rope(q)_i . rope(k)_j depends on
  q_i, k_j and positions_i - positions_j only.

  Args:
    x_BTHD: [B, T, H, D] with D even.
    positions_T: [T] (or [B, T]) positions, ints or floats; any offset works, so a
      KV cache passes offset + arange(T).
    base: the frequency base (10000 in the paper).
  Returns:
    [B, T, H, D] in x's dtype (the rotation is computed in float32).
  """
  x_BTHD = jnp.asarray(x_BTHD)
  if x_BTHD.ndim != 4:
    raise ValueError(f"x must be [batch, length, heads, head_dim]; got shape {x_BTHD.shape}")
  B, T, _, D = x_BTHD.shape
  if D % 2:
    raise ValueError(f"rotary embedding rotates pairs of dimensions; head_dim={D} is odd "
                     f"(x shape {x_BTHD.shape})")
  positions = jnp.asarray(positions_T)
  if positions.shape not in ((T,), (B, T)):
    raise ValueError(f"positions must be [length] = ({T},) or [batch, length] = ({B}, {T}) "
                     f"for x of shape {x_BTHD.shape}; got shape {positions.shape}")
  theta_K = rope_frequencies(D, base)
  angle = positions.astype(jnp.float32)[..., None] * theta_K  # [(B,) T, D/2]
  angle_BT1K = angle.reshape((-1, T, 1, D // 2))
  cos, sin = jnp.cos(angle_BT1K), jnp.sin(angle_BT1K)
  x = x_BTHD.astype(jnp.float32)
  even, odd = x[..., 0::2], x[..., 1::2]
  y_BTHK2 = jnp.stack([even * cos - odd * sin, even * sin + odd * cos], axis=-1)
  return y_BTHK2.reshape(x_BTHD.shape).astype(x_BTHD.dtype)


# ------------------------------------------------------------------------------ ALiBi

def _alibi_slopes_list(n):
  if n & (n - 1) == 0:  # a power of two: start 2^(-8/n), ratio 2^(-8/n)
    start = 2.0 ** (-8.0 / n)
    return [start ** (h + 1) for h in range(n)]
  below = 2 ** int(math.floor(math.log2(n)))
  return _alibi_slopes_list(below) + _alibi_slopes_list(2 * below)[0::2][:n - below]


def alibi_slopes(num_heads: int):
  """ALiBi's per-head slopes m_h: [num_heads] float32.

  n a power of two: the geometric sequence 2^(-8/n), 2^(-16/n), ..., 2^(-8) (paper,
  section 3: 8 heads -> 1/2, 1/4, ..., 1/256). Otherwise the rule of the authors'
  reference code (the paper trains only powers of two): the slopes of the largest
  power of two p below n, then every other slope of 2p heads (those that fall
  between p's: 2^(-8/(2p) * (2k+1))), the first n - p of them. So 6 heads ->
  1/4, 1/16, 1/64, 1/256 (from 4 heads), then 1/2, 1/8 (from 8 heads).
  """
  _check_int("num_heads", num_heads, 1)
  return jnp.asarray(_alibi_slopes_list(int(num_heads)), jnp.float32)


def alibi_bias(num_heads: int, q_positions, k_positions, causal: bool = True):
  """ALiBi's linear distance penalty, [1, H, T, S] float32 (add it to the scores).

  causal=True: the paper's form, bias[h, i, j] = -m_h * (i - j) for keys j <= i and
    0 for keys after the query. It does not mask: pass causal=True to the attention
    too (future keys would otherwise get the same bias as the current one).
  causal=False: the symmetric form -m_h * |i - j| for bidirectional attention.
  Both agree wherever j <= i. Here i, j are q_positions[i], k_positions[j].
  """
  slopes_H = alibi_slopes(num_heads)
  distance_TS = -relative_positions(q_positions, k_positions).astype(jnp.float32)  # i - j
  distance_TS = jnp.maximum(distance_TS, 0.0) if causal else jnp.abs(distance_TS)
  return -slopes_H[None, :, None, None] * distance_TS[None, None]


# -------------------------------------------------------------- learned relative biases

def t5_relative_bucket(relative_position, *, bidirectional: bool, num_buckets: int = 32,
                       max_distance: int = 128):
  """T5's bucket of each relative position j - i (int32, same shape).

  Unidirectional (decoders): keys after the query (j > i) share bucket 0; a distance
  n = i - j >= 0 below num_buckets // 2 gets bucket n; larger distances get
  log-spaced buckets up to max_distance, and every n >= max_distance gets
  num_buckets - 1.
  Bidirectional (encoders): half the buckets per direction: keys before or at the
  query (j <= i) use [0, num_buckets/2), keys after it [num_buckets/2, num_buckets),
  each half bucketed like the unidirectional case on |j - i|.
  Matches Mesh TensorFlow's / HF T5's _relative_position_bucket.
  """
  _check_integer_array("relative_position", relative_position)
  _check_int("num_buckets", num_buckets, 4 if bidirectional else 2)
  if bidirectional and num_buckets % 2:
    raise ValueError(f"bidirectional buckets split in two halves; num_buckets={num_buckets} is odd")
  rel = jnp.asarray(relative_position).astype(jnp.int32)
  buckets = num_buckets // 2 if bidirectional else num_buckets
  max_exact = buckets // 2
  _check_int("max_distance", max_distance, max_exact + 1)
  if bidirectional:
    offset = jnp.where(rel > 0, buckets, 0)
    n = jnp.abs(rel)
  else:
    offset = 0
    n = jnp.maximum(-rel, 0)
  # max(n, max_exact) keeps log() finite where the exact branch is taken anyway.
  log_ratio = (jnp.log(jnp.maximum(n, max_exact).astype(jnp.float32) / max_exact)
               / math.log(max_distance / max_exact))
  large = max_exact + (log_ratio * (buckets - max_exact)).astype(jnp.int32)
  large = jnp.minimum(large, buckets - 1)
  return (offset + jnp.where(n < max_exact, n, large)).astype(jnp.int32)


def shaw_relative_index(relative_position, max_distance: int):
  """Shaw et al.'s clip(j - i, -k, k) + k with k = max_distance: ints in [0, 2k].

  The index into a table of 2k + 1 learned relative embeddings (or, through
  `relative_bias`, of 2k + 1 scalars per head).
  """
  _check_integer_array("relative_position", relative_position)
  _check_int("max_distance", max_distance, 0)
  rel = jnp.asarray(relative_position).astype(jnp.int32)
  return jnp.clip(rel, -max_distance, max_distance) + max_distance


def relative_bias(table_NH, buckets_TS):
  """Gathers a learned [num_buckets, H] table into a [1, H, T, S] bias.

  bias[0, h, i, j] = table_NH[buckets_TS[i, j], h]. Out-of-range buckets raise when
  buckets_TS is concrete, and give NaN under jit (never a silently clamped row).
  """
  table_NH, buckets_TS = jnp.asarray(table_NH), jnp.asarray(buckets_TS)
  if table_NH.ndim != 2:
    raise ValueError(f"table must be [num_buckets, heads]; got shape {table_NH.shape}")
  if buckets_TS.ndim != 2:
    raise ValueError(f"buckets must be [queries, keys]; got shape {buckets_TS.shape}")
  _check_integer_array("buckets", buckets_TS)
  try:
    concrete = np.asarray(buckets_TS)
  except jax.errors.TracerArrayConversionError:
    concrete = None
  N = table_NH.shape[0]
  if concrete is not None and concrete.size and (concrete.min() < 0 or concrete.max() >= N):
    raise ValueError(f"buckets must lie in [0, {N}) for a table of shape {table_NH.shape}; "
                     f"got values in [{concrete.min()}, {concrete.max()}]")
  bias_TSH = jnp.take(table_NH, buckets_TS, axis=0, mode="fill")
  return jnp.transpose(bias_TSH, (2, 0, 1))[None]
