"""Tests of attn_research.kernels.relative: RoPE, ALiBi, T5 buckets, Shaw clipping and
the learned-table bias, checked against the papers' definitions written out by hand,
plus ALiBi inside dot_product_attention against numpy. Tiny shapes, eager mode.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attn_research.kernels import dot_product_attention
from attn_research.kernels.relative import (alibi_bias, alibi_slopes, apply_rope,
                                            relative_bias, relative_positions,
                                            rope_frequencies, shaw_relative_index,
                                            t5_relative_bucket)


def normal(seed, shape):
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def scores_BHTS(q, k):
  return np.einsum("bthd,bshd->bhts", np.asarray(q), np.asarray(k))


# ------------------------------------------------------------------------------- RoPE

def test_rope_matches_the_papers_rotation_by_hand():
  # head_dim 4: pairs (0, 1) and (2, 3) rotate by m * 1 and m * 10000^(-2/4) = m / 100.
  x = normal(0, (1, 3, 2, 4))
  positions = np.array([0.0, 1.0, 7.5])
  got = np.asarray(apply_rope(x, jnp.asarray(positions)))
  xn = np.asarray(x, np.float64)
  want = np.empty_like(xn)
  for t, m in enumerate(positions):
    for pair, theta in ((0, 1.0), (1, 0.01)):
      c, s = math.cos(m * theta), math.sin(m * theta)
      a, b = xn[0, t, :, 2 * pair], xn[0, t, :, 2 * pair + 1]
      want[0, t, :, 2 * pair] = a * c - b * s
      want[0, t, :, 2 * pair + 1] = a * s + b * c
  np.testing.assert_allclose(got, want, atol=1e-5)
  np.testing.assert_allclose(np.asarray(rope_frequencies(4)), [1.0, 0.01], rtol=1e-6)


def test_rope_scores_depend_only_on_the_offset():
  B, T, H, D = 2, 5, 3, 8
  q, k = normal(1, (B, T, H, D)), normal(2, (B, T, H, D))
  pos = jnp.arange(T)
  base = scores_BHTS(apply_rope(q, pos), apply_rope(k, pos))
  for shift in (3, 1000, -17.25):
    shifted = scores_BHTS(apply_rope(q, pos + shift), apply_rope(k, pos + shift))
    np.testing.assert_allclose(shifted, base, atol=1e-5, rtol=1e-5)
  # ... and they do depend on it: shifting only the keys changes them, as does no RoPE.
  k_shifted = scores_BHTS(apply_rope(q, pos), apply_rope(k, pos + 3))
  assert np.abs(k_shifted - base).max() > 1e-2
  assert np.abs(scores_BHTS(q, k) - base).max() > 1e-2


def test_rope_offset_positions_give_the_kv_cache_slice():
  x = normal(3, (1, 9, 2, 6))
  full = apply_rope(x, jnp.arange(9))
  tail = apply_rope(x[:, 6:], 6 + jnp.arange(3))
  np.testing.assert_allclose(np.asarray(tail), np.asarray(full[:, 6:]), atol=1e-6)
  # [B, T] positions: row 1 holds x[6:9] (then junk) at positions 6, 7, 8, ...
  rows = jnp.concatenate([x, jnp.roll(x, -6, axis=1)])
  per_batch = apply_rope(rows, jnp.stack([jnp.arange(9), 6 + jnp.arange(9)]))
  np.testing.assert_allclose(np.asarray(per_batch[1, :3]), np.asarray(full[0, 6:]), atol=1e-6)
  np.testing.assert_allclose(np.asarray(per_batch[0]), np.asarray(full[0]), atol=1e-6)


def test_rope_preserves_norms_and_position_zero_is_identity():
  x = normal(4, (2, 4, 3, 8))
  pos = jnp.array([0, 1, 50, 12345])
  y = apply_rope(x, pos)
  np.testing.assert_allclose(np.linalg.norm(np.asarray(y), axis=-1),
                             np.linalg.norm(np.asarray(x), axis=-1), rtol=1e-5)
  np.testing.assert_allclose(np.asarray(y[:, 0]), np.asarray(x[:, 0]), atol=0)
  assert np.abs(np.asarray(y[:, 1:] - x[:, 1:])).max() > 1e-2


def test_rope_keeps_dtype_and_jits():
  x = normal(5, (1, 3, 1, 4)).astype(jnp.bfloat16)
  y = jax.jit(apply_rope)(x, jnp.arange(3))
  assert y.dtype == jnp.bfloat16 and y.shape == x.shape


@pytest.mark.parametrize("call, match", [
    (lambda: apply_rope(jnp.zeros((1, 2, 1, 5)), jnp.arange(2)), "head_dim=5 is odd"),
    (lambda: apply_rope(jnp.zeros((2, 1, 4)), jnp.arange(2)), r"shape \(2, 1, 4\)"),
    (lambda: apply_rope(jnp.zeros((1, 2, 1, 4)), jnp.arange(3)), r"got shape \(3,\)"),
    (lambda: rope_frequencies(7), "head_dim=7 is odd"),
    (lambda: rope_frequencies(8, base=-1.0), "base must be a positive number; got -1.0"),
], ids=["odd_head_dim", "not_4d", "positions_length", "odd_frequencies", "negative_base"])
def test_rope_rejects_bad_inputs(call, match):
  with pytest.raises(ValueError, match=match):
    call()


# ------------------------------------------------------------------------------ ALiBi

def test_alibi_slopes_follow_the_paper():
  # 8 heads: 2^-1 .. 2^-8 (paper, section 3).
  np.testing.assert_allclose(np.asarray(alibi_slopes(8)), [2.0 ** -h for h in range(1, 9)])
  # 16 heads: start and ratio 2^(-1/2).
  np.testing.assert_allclose(np.asarray(alibi_slopes(16)), [2.0 ** (-h / 2) for h in range(1, 17)],
                             rtol=1e-6)
  # 6 heads: the 4-head sequence (start 2^(-8/4) = 1/4, ratio 1/4), then the first two
  # of every other slope of the 8-head sequence (2^-1, 2^-3).
  want_6 = [1 / 4, 1 / 16, 1 / 64, 1 / 256, 1 / 2, 1 / 8]
  np.testing.assert_allclose(np.asarray(alibi_slopes(6)), want_6)
  np.testing.assert_allclose(np.asarray(alibi_slopes(1)), [2.0 ** -8])


def test_alibi_bias_is_linear_in_distance():
  H = 4
  slopes = np.asarray(alibi_slopes(H))
  q_pos, k_pos = jnp.arange(5), jnp.arange(5)
  causal = np.asarray(alibi_bias(H, q_pos, k_pos, causal=True))
  both = np.asarray(alibi_bias(H, q_pos, k_pos, causal=False))
  assert causal.shape == both.shape == (1, H, 5, 5)
  for h in range(H):
    for i in range(5):
      for j in range(5):
        assert both[0, h, i, j] == pytest.approx(-slopes[h] * abs(i - j))
        assert causal[0, h, i, j] == pytest.approx(-slopes[h] * (i - j) if j <= i else 0.0)
  # A query at cache offset 7 against keys 0..7: the paper's row m * [-7, ..., -1, 0].
  row = np.asarray(alibi_bias(H, jnp.array([7]), jnp.arange(8)))[0, :, 0]
  np.testing.assert_allclose(row, -slopes[:, None] * (7 - np.arange(8))[None], rtol=1e-6)


@pytest.mark.parametrize("call, match", [
    (lambda: alibi_slopes(0), "num_heads must be an int >= 1; got 0"),
    (lambda: alibi_slopes(2.0), "num_heads must be an int >= 1; got 2.0"),
    (lambda: alibi_bias(2, jnp.zeros((2, 3)), jnp.arange(3)), r"shapes \(2, 3\) and \(3,\)"),
], ids=["zero_heads", "float_heads", "2d_positions"])
def test_alibi_rejects_bad_inputs(call, match):
  with pytest.raises(ValueError, match=match):
    call()


def test_alibi_inside_causal_attention_matches_numpy():
  B, T, H, D = 1, 4, 2, 3
  q, k, v = normal(6, (B, T, H, D)), normal(7, (B, T, H, D)), normal(8, (B, T, H, D))
  bias = alibi_bias(H, jnp.arange(T), jnp.arange(T), causal=True)
  slopes = [2.0 ** -4, 2.0 ** -8]  # 2 heads: start and ratio 2^(-8/2)
  qn, kn, vn = (np.asarray(x, np.float64) for x in (q, k, v))
  want = np.zeros((B, T, H, D))
  for h in range(H):
    for i in range(T):
      s = np.array([qn[0, i, h] @ kn[0, j, h] / math.sqrt(D) - slopes[h] * (i - j)
                    for j in range(i + 1)])
      w = np.exp(s - s.max())
      want[0, i, h] = (w / w.sum()) @ vn[0, :i + 1, h]
  for impl in ("reference", "chunked"):
    got = dot_product_attention(q, k, v, bias=bias, causal=True, impl=impl, q_chunk=2, k_chunk=2)
    np.testing.assert_allclose(np.asarray(got), want, atol=1e-5, err_msg=impl)
  # The bias matters here: without it the output differs.
  plain = dot_product_attention(q, k, v, causal=True, impl="reference")
  assert np.abs(np.asarray(plain) - want).max() > 1e-3


# ---------------------------------------------------------------------------- T5 / Shaw

def test_relative_positions_are_key_minus_query():
  rel = np.asarray(relative_positions(jnp.array([2, 3]), jnp.arange(4)))
  np.testing.assert_array_equal(rel, [[-2, -1, 0, 1], [-3, -2, -1, 0]])


def test_t5_unidirectional_buckets():
  n = np.arange(0, 400)
  b = np.asarray(t5_relative_bucket(jnp.asarray(-n), bidirectional=False))  # keys in the past
  np.testing.assert_array_equal(b[:16], np.arange(16))  # exact below num_buckets // 2
  # Log-spaced by hand: 16 + floor(log(n / 16) / log(128 / 16) * 16).
  assert (b[16], b[32], b[64], b[100]) == (16, 21, 26, 30)
  assert np.all(np.diff(b) >= 0)
  assert b[127] == 31 and np.all(b[128:] == 31) and b.max() == 31
  assert set(b[:128].tolist()) == set(range(32))  # every bucket used
  widths = np.bincount(b[16:128])[16:]  # distances per log bucket grow
  assert widths[-1] > widths[0] and np.all(np.diff(widths[:-1]) >= -1)
  # Keys after the query all share bucket 0.
  after = np.asarray(t5_relative_bucket(jnp.array([1, 5, 500]), bidirectional=False))
  np.testing.assert_array_equal(after, [0, 0, 0])


def test_t5_bidirectional_buckets_split_by_sign():
  n = np.arange(0, 300)
  past = np.asarray(t5_relative_bucket(jnp.asarray(-n), bidirectional=True))
  future = np.asarray(t5_relative_bucket(jnp.asarray(n), bidirectional=True))
  np.testing.assert_array_equal(past[:8], np.arange(8))
  np.testing.assert_array_equal(future[1:8], 16 + np.arange(1, 8))
  assert future[0] == 0  # distance 0 counts as the "past" half
  # Hand values: 8 + floor(log(20 / 8) / log(128 / 8) * 8) = 10.
  assert (past[20], future[20]) == (10, 26)
  assert past.max() == 15 and np.all(past[128:] == 15)
  # Bucket 16 ("after, distance 0") is never used, as in T5.
  assert future[1:].min() == 17 and future.max() == 31 and np.all(future[128:] == 31)
  assert np.all(np.diff(past) >= 0) and np.all(np.diff(future[1:]) >= 0)


def test_t5_bucket_arguments_are_used():
  small = np.asarray(t5_relative_bucket(jnp.asarray(-np.arange(100)), bidirectional=False,
                                        num_buckets=8, max_distance=20))
  np.testing.assert_array_equal(small[:4], np.arange(4))
  # 4 + floor(log(n / 4) / log(20 / 4) * 4): n = 13 -> 6, n = 14 -> 7 (cap).
  assert (small[13], small[14]) == (6, 7) and np.all(small[14:] == 7)


@pytest.mark.parametrize("call, match", [
    (lambda: t5_relative_bucket(jnp.arange(3), bidirectional=True, num_buckets=7), "is odd"),
    (lambda: t5_relative_bucket(jnp.arange(3), bidirectional=True, num_buckets=2),
     "num_buckets must be an int >= 4; got 2"),
    (lambda: t5_relative_bucket(jnp.arange(3), bidirectional=False, max_distance=16),
     "max_distance must be an int >= 17; got 16"),
    (lambda: t5_relative_bucket(jnp.arange(3.0), bidirectional=False), "dtype float32"),
    (lambda: shaw_relative_index(jnp.arange(3), -1), "max_distance must be an int >= 0; got -1"),
], ids=["t5_odd_buckets", "t5_too_few_buckets", "t5_short_max_distance", "t5_float_positions",
        "shaw_negative_distance"])
def test_relative_index_rejects_bad_inputs(call, match):
  with pytest.raises(ValueError, match=match):
    call()


def test_shaw_index_clips_distances():
  rel = jnp.array([-10, -3, -2, 0, 1, 2, 3, 99])
  np.testing.assert_array_equal(np.asarray(shaw_relative_index(rel, 2)),
                                [0, 0, 0, 2, 3, 4, 4, 4])
  np.testing.assert_array_equal(np.asarray(shaw_relative_index(rel, 0)), np.zeros(8))


# ------------------------------------------------------------------------ relative_bias

def test_relative_bias_gathers_the_table():
  T, S, H = 3, 5, 2
  table = normal(9, (7, H))
  buckets = jnp.asarray(np.random.default_rng(10).integers(0, 7, (T, S)), jnp.int32)
  bias = np.asarray(relative_bias(table, buckets))
  assert bias.shape == (1, H, T, S)
  tn, bn = np.asarray(table), np.asarray(buckets)
  for h in range(H):
    for i in range(T):
      for j in range(S):
        assert bias[0, h, i, j] == tn[bn[i, j], h]


def test_relative_bias_with_t5_buckets_feeds_attention():
  T, H = 4, 2
  rel = relative_positions(jnp.arange(T), jnp.arange(T))
  buckets = t5_relative_bucket(rel, bidirectional=True, num_buckets=8, max_distance=16)
  table = normal(11, (8, H))
  bias = relative_bias(table, buckets)
  # Same relative position -> same bias (Toeplitz), different heads -> different tables.
  b = np.asarray(bias)[0]
  for d in range(-T + 1, T):
    diag = np.diagonal(b, offset=d, axis1=1, axis2=2)
    np.testing.assert_array_equal(diag, diag[:, :1].repeat(diag.shape[1], axis=1))
  q = normal(12, (1, T, H, 4))
  out = dot_product_attention(q, q, q, bias=bias, impl="reference")
  assert out.shape == (1, T, H, 4) and np.all(np.isfinite(np.asarray(out)))


def test_relative_bias_rejects_out_of_range_and_bad_shapes():
  table = jnp.zeros((4, 2))
  with pytest.raises(ValueError, match=r"\[0, 4\).*got values in \[0, 4\]"):
    relative_bias(table, jnp.array([[0, 4]]))
  with pytest.raises(ValueError, match=r"table must be \[num_buckets, heads\]; got shape \(4,\)"):
    relative_bias(jnp.zeros(4), jnp.zeros((1, 1), jnp.int32))
  with pytest.raises(ValueError, match="buckets must hold integers"):
    relative_bias(table, jnp.zeros((1, 1)))
  # Under jit the range cannot be checked: out-of-range entries become NaN, not clamped.
  out = jax.jit(relative_bias)(jnp.ones((4, 2)), jnp.array([[1, 4]]))
  assert np.isfinite(np.asarray(out)[0, :, 0, 0]).all() and np.isnan(np.asarray(out)[0, :, 0, 1]).all()
