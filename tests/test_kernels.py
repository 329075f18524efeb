"""Tests of attn_research.kernels: every implementation against the reference oracle,
the oracle against hand-written numpy, masking/causality/window semantics, jit/vmap,
O(T) memory of the chunked kernel, and the ValueErrors for bad inputs.

Shapes are tiny: XLA compilation dominates (about a minute on two CPU cores from a cold
compile cache, seconds from a warm one), so cases are combined ("causal+padding+bias")
rather than crossed, and the jitted entry points below are shared so identical calls
compile once.
"""
from __future__ import annotations

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attn_research.kernels import additive_attention, choose_impl, dot_product_attention

STATIC = ("causal", "window", "scale", "impl", "return_weights", "q_chunk", "k_chunk")
dpa = jax.jit(dot_product_attention, static_argnames=STATIC)
add = jax.jit(additive_attention, static_argnames=tuple(s for s in STATIC if s != "scale"))
# Small, unequal blocks: lengths 23..50 span several, mostly ragged. (Here, 5+ blocks per
# axis compiled faster than 2-4 did.)
CHUNKS = dict(q_chunk=4, k_chunk=8)
TOL = {jnp.float32: 1e-5, jnp.bfloat16: 2e-2}


# ------------------------------------------------------------------------------ helpers

def random_qkv(seed, B, T, S, H, D, dtype=jnp.float32, Dv=None):
  rng = np.random.default_rng(seed)
  q = rng.standard_normal((B, T, H, D))
  k = rng.standard_normal((B, S, H, D))
  v = rng.standard_normal((B, S, H, Dv or D))
  return tuple(jnp.asarray(x, dtype) for x in (q, k, v))


def make_options(option, B, T, S, H, seed=0):
  """Keyword arguments for a "+"-joined configuration, e.g. "causal+padding+bias"."""
  rng = np.random.default_rng(seed + 100)
  diag = np.minimum(np.arange(T), S - 1)  # a key that causal / windowed rows can see
  windows = {"window_both": (3, 2), "window_left": (5, 0), "window_right": (0, 4),
             "window_wide_right": (2, 3)}
  out = {}
  for token in option.split("+"):
    if token == "none":
      pass
    elif token == "padding":  # [B, 1, 1, S] key mask; key 0 always valid
      valid = rng.random((B, S)) < 0.6
      valid[:, 0] = True
      out["mask"] = jnp.asarray(valid[:, None, None, :])
    elif token in ("full_mask", "mask_2d"):  # [B, H, T, S] or [T, S]
      m = rng.random((B, H, T, S) if token == "full_mask" else (T, S)) < 0.5
      m[..., np.arange(T), diag] = True
      out["mask"] = jnp.asarray(m)
    elif token == "bias":
      out["bias"] = jnp.asarray(3 * rng.standard_normal((B, H, T, S)), jnp.float32)
    elif token == "bias_broadcast":  # [1, H, 1, S]
      out["bias"] = jnp.asarray(rng.standard_normal((1, H, 1, S)), jnp.float32)
    elif token == "causal":
      out["causal"] = True
    elif token in windows:
      out["window"] = windows[token]
    elif token == "scale":
      out["scale"] = 0.37
    else:
      raise KeyError(token)
  return out


def allowed_np(B, H, T, S, *, mask=None, causal=False, window=None, **_):
  """[B, H, T, S] bool: which keys each query may attend, built independently in numpy."""
  i, j = np.arange(T)[:, None], np.arange(S)[None, :]
  ok = np.ones((T, S), bool)
  if causal:
    ok &= j <= i
  if window is not None:
    ok &= (j >= i - window[0]) & (j <= i + window[1])
  ok = np.broadcast_to(ok, (B, H, T, S))
  if mask is not None:
    m = np.asarray(mask)
    ok = ok & np.broadcast_to(m.reshape((1,) * (4 - m.ndim) + m.shape), (B, H, T, S))
  return ok


def numpy_attention(q, k, v, *, score="dot", scale=None, w_HD=None, bias=None,
                    mask=None, causal=False, window=None):
  """The lecture's formula, one query at a time, in float64: out_i = sum_j a_ij v_j with
  a_i = softmax_j(e(q_i, k_j) + bias_ij) over allowed j; e = scale q.k or w.tanh(q + k)."""
  q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
  B, T, H, D = q.shape
  S = k.shape[1]
  scale = 1.0 / math.sqrt(D) if scale is None else scale
  ok = allowed_np(B, H, T, S, mask=mask, causal=causal, window=window)
  bias = np.broadcast_to(np.zeros(()) if bias is None else np.asarray(bias), (B, H, T, S))
  out = np.zeros((B, T, H, v.shape[-1]))
  weights = np.zeros((B, H, T, S))
  for b in range(B):
    for h in range(H):
      for i in range(T):
        if not ok[b, h, i].any():
          continue  # fully masked row: zero output, zero weights
        if score == "dot":
          e = scale * k[b, :, h] @ q[b, i, h]
        else:
          e = np.tanh(q[b, i, h][None, :] + k[b, :, h]) @ np.asarray(w_HD, np.float64)[h]
        e = np.where(ok[b, h, i], e + bias[b, h, i], -np.inf)
        a = np.exp(e - e.max())
        a /= a.sum()
        weights[b, h, i] = a
        out[b, i, h] = a @ v[b, :, h]
  return out, weights


def assert_close(got, want, tol, valid_rows_BTH=None):
  got, want = np.asarray(got, np.float32), np.asarray(want, np.float32)
  if valid_rows_BTH is not None:
    got, want = got[valid_rows_BTH], want[valid_rows_BTH]
  np.testing.assert_allclose(got, want, atol=tol, rtol=0)


SHAPES = {  # B, T, S, H, D
    "square_multiple_of_chunks": (2, 32, 32, 2, 8),
    "ragged_T_ne_S": (2, 37, 45, 3, 8),
    "more_queries_than_keys": (1, 50, 23, 2, 4),
    "single_query": (1, 1, 5, 1, 8),
}
CASES = [("ragged_T_ne_S", o) for o in (
    "none", "full_mask+bias", "mask_2d+bias_broadcast+scale", "causal+padding",
    "causal+window_left", "window_right+full_mask", "causal+window_wide_right")
] + [("square_multiple_of_chunks", "causal+padding"),
     ("more_queries_than_keys", "window_both+padding"),
     ("single_query", "bias")]


# --------------------------------------------------------- implementations vs reference

@pytest.mark.parametrize("shape,option", CASES)
def test_impl_matches_reference_float32(shape, option):
  B, T, S, H, D = SHAPES[shape]
  q, k, v = random_qkv(0, B, T, S, H, D)
  opts = make_options(option, B, T, S, H)
  want = dpa(q, k, v, impl="reference", **opts)
  # jax.nn's xla impl averages fully masked rows instead of returning zeros: skip those.
  rows = allowed_np(B, H, T, S, **opts).any(-1).transpose(0, 2, 1)
  for impl in ("chunked", "xla") + (("auto",) if option in ("none", "causal+padding") else ()):
    got = dpa(q, k, v, impl=impl, **opts, **CHUNKS)
    assert got.shape == (B, T, H, D) and got.dtype == jnp.float32, impl
    try:
      assert_close(got, want, TOL[jnp.float32], rows if impl == "xla" else None)
    except AssertionError as e:
      raise AssertionError(f"impl={impl!r}: {e}") from None


@pytest.mark.parametrize("impl", ["chunked", "xla"])
def test_impl_matches_reference_bfloat16(impl):
  B, T, S, H, D = SHAPES["ragged_T_ne_S"]
  q, k, v = random_qkv(1, B, T, S, H, D, jnp.bfloat16)
  opts = make_options("causal+window_wide_right+padding+bias", B, T, S, H)
  want = dpa(q, k, v, impl="reference", **opts)
  got = dpa(q, k, v, impl=impl, **opts, **CHUNKS)
  assert got.dtype == jnp.bfloat16
  rows = allowed_np(B, H, T, S, **opts).any(-1).transpose(0, 2, 1)  # see the float32 test
  rows = rows if impl == "xla" else None
  assert_close(got, want, TOL[jnp.bfloat16], rows)
  # And both stay near the float32 answer for the same (rounded) inputs.
  want32 = dpa(*(x.astype(jnp.float32) for x in (q, k, v)), impl="reference", **opts)
  assert_close(got, want32, TOL[jnp.bfloat16], rows)


def test_chunked_value_dim_differs_from_key_dim():
  q, k, v = random_qkv(2, 2, 21, 19, 2, 8, Dv=5)
  got = dpa(q, k, v, impl="chunked", causal=True, **CHUNKS)
  assert got.shape == (2, 21, 2, 5)
  assert_close(got, dpa(q, k, v, impl="reference", causal=True), 1e-5)


def test_chunked_is_stable_for_large_scores():
  """Running-max rescaling: scores ~ +-100 and a bias spike in a late key block."""
  B, T, S, H, D = SHAPES["ragged_T_ne_S"]
  q, k, v = random_qkv(3, B, T, S, H, D)
  bias = jnp.zeros((T, S)).at[:, 40].set(60.0).at[:, 0].set(-1e30)
  want = dpa(30 * q, k, v, impl="reference", bias=bias)
  got = dpa(30 * q, k, v, impl="chunked", bias=bias, **CHUNKS)
  assert np.isfinite(np.asarray(got)).all()
  assert_close(got, want, 1e-5)


def grads(fn, impl, q, k, v, *extra, **opts):
  """d/d(q, k, v, *extra) of a random projection of sin(out)."""
  ct = jnp.asarray(np.random.default_rng(9).standard_normal(q.shape[:3] + v.shape[3:]))

  def loss(q, k, v, *extra):
    return jnp.sum(jnp.sin(fn(q, k, v, *extra, impl=impl, **opts)) * ct)
  return jax.jit(jax.grad(loss, argnums=tuple(range(3 + len(extra)))))(q, k, v, *extra)


@pytest.mark.parametrize("option", ["window_both+padding+bias"])
def test_chunked_gradients_match_reference(option):
  B, T, S, H, D = SHAPES["ragged_T_ne_S"]
  q, k, v = random_qkv(4, B, T, S, H, D)
  opts = make_options(option, B, T, S, H)
  want = grads(dot_product_attention, "reference", q, k, v, **opts)
  got = grads(dot_product_attention, "chunked", q, k, v, **opts, **CHUNKS)
  for name, g, w in zip("qkv", got, want):
    assert np.abs(np.asarray(w)).max() > 0.1, name  # the gradient is not trivially zero
    np.testing.assert_allclose(g, w, atol=2e-5, rtol=1e-5, err_msg=f"d/d{name}")


def test_xla_gradients_match_reference():
  B, T, S, H, D = SHAPES["ragged_T_ne_S"]
  q, k, v = random_qkv(5, B, T, S, H, D)
  opts = make_options("causal+padding", B, T, S, H)
  want = grads(dot_product_attention, "reference", q, k, v, **opts)
  got = grads(dot_product_attention, "xla", q, k, v, **opts)
  for name, g, w in zip("qkv", got, want):
    np.testing.assert_allclose(g, w, atol=2e-5, rtol=1e-5, err_msg=f"d/d{name}")


# ------------------------------------------------------------------------------ additive

@pytest.mark.parametrize("option", ["none", "causal+full_mask+bias"])
def test_additive_chunked_matches_reference(option):
  B, T, S, H, D = SHAPES["ragged_T_ne_S"]
  q, k, v = random_qkv(6, B, T, S, H, D)
  w = jnp.asarray(np.random.default_rng(7).standard_normal((H, D)), jnp.float32)
  opts = make_options(option, B, T, S, H)
  want = add(q, k, v, w, impl="reference", **opts)
  assert_close(add(q, k, v, w, impl="chunked", **opts, **CHUNKS), want, 1e-5)
  if option == "none":
    assert_close(add(q, k, v, w, impl="auto", **opts), want, 1e-5)


def test_additive_chunked_gradients_match_reference():
  B, T, S, H, D = SHAPES["ragged_T_ne_S"]
  q, k, v = random_qkv(8, B, T, S, H, D)
  w = jnp.asarray(np.random.default_rng(7).standard_normal((H, D)), jnp.float32)
  want = grads(additive_attention, "reference", q, k, v, w, causal=True)
  got = grads(additive_attention, "chunked", q, k, v, w, causal=True, **CHUNKS)
  for name, g, ww in zip(["q", "k", "v", "w"], got, want):
    np.testing.assert_allclose(g, ww, atol=1e-4, rtol=1e-5, err_msg=f"d/d{name}")


# ----------------------------------------------------------------- the oracle vs numpy

@pytest.mark.parametrize("scale", [None, 0.3])
def test_reference_dot_matches_numpy_formula(scale):
  B, T, S, H, D = 2, 9, 11, 2, 8
  q, k, v = random_qkv(10, B, T, S, H, D)
  opts = make_options("full_mask+bias", B, T, S, H)
  out, weights = dpa(q, k, v, impl="reference", scale=scale, return_weights=True,
                     causal=True, **opts)
  want_out, want_w = numpy_attention(q, k, v, scale=scale, causal=True, **opts)
  assert_close(out, want_out, 1e-5)
  assert_close(weights, want_w, 1e-5)


def test_reference_default_scale_is_inverse_sqrt_head_dim():
  q, k, v = random_qkv(11, 1, 6, 7, 2, 16)
  want, _ = numpy_attention(q, k, v, scale=0.25)  # 1 / sqrt(16)
  assert_close(dpa(q, k, v, impl="reference"), want, 1e-5)
  wrong, _ = numpy_attention(q, k, v, scale=1.0)
  assert np.abs(np.asarray(dpa(q, k, v, impl="reference")) - wrong).max() > 1e-2


@pytest.mark.parametrize("impl", ["reference", "chunked"])
def test_additive_matches_numpy_formula(impl):
  B, T, S, H, D = 2, 9, 11, 2, 8
  q, k, v = random_qkv(12, B, T, S, H, D)
  w = jnp.asarray(np.random.default_rng(13).standard_normal((H, D)), jnp.float32)
  opts = make_options("padding", B, T, S, H)
  want, _ = numpy_attention(q, k, v, score="additive", w_HD=w, window=(2, 3), **opts)
  got = add(q, k, v, w, impl=impl, window=(2, 3), q_chunk=4, k_chunk=4, **opts)
  assert_close(got, want, 1e-5)


# ------------------------------------------------------------------------ return_weights

def test_return_weights_rows_sum_to_one_and_masked_are_zero():
  B, T, S, H, D = 2, 12, 10, 2, 8
  q, k, v = random_qkv(14, B, T, S, H, D)
  rng = np.random.default_rng(15)
  mask = rng.random((B, H, T, S)) < 0.5
  mask[:, :, np.arange(T), np.arange(T) % S] = True
  mask[0, 1, 3] = False  # one fully masked row
  mask[1, :, 7] = False  # a query that sees nothing in any head
  mask = jnp.asarray(mask)
  out, weights = dpa(q, k, v, mask=mask, impl="auto", return_weights=True)
  weights, ok = np.asarray(weights), np.asarray(mask)
  assert weights.shape == (B, H, T, S) and weights.dtype == np.float32
  assert (weights[~ok] == 0).all()
  assert (weights[ok] > 0).all()
  row_sum = weights.sum(-1)
  np.testing.assert_allclose(row_sum[ok.any(-1)], 1.0, atol=1e-6)
  assert (row_sum[~ok.any(-1)] == 0).all()
  # weights @ v is the output, and the fully masked rows give exactly zero output.
  assert_close(out, jnp.einsum("bhts,bshd->bthd", weights, v), 1e-5)
  for impl in ("reference", "chunked"):
    o = np.asarray(dpa(q, k, v, mask=mask, impl=impl, q_chunk=4, k_chunk=4))
    assert (o[0, 3, 1] == 0).all() and (o[1, 7] == 0).all(), impl
    assert np.abs(o[0, 3, 0]).max() > 0, impl  # the other head of that query is not masked


# ---------------------------------------------------------------------------- jit & vmap

@pytest.mark.parametrize("impl", ["reference", "chunked"])
def test_jit_and_vmap_agree_with_eager(impl):
  N, B, T, S, H, D = 2, 2, 13, 17, 2, 8
  rng = np.random.default_rng(16)
  Q, K, V = (jnp.asarray(rng.standard_normal((N, B, L, H, D)), jnp.float32)
             for L in (T, S, S))
  valid = rng.random((N, B, 1, 1, S)) < 0.6
  valid[..., 0] = True
  M = jnp.asarray(valid)

  def f(q, k, v, m):
    return dot_product_attention(q, k, v, mask=m, causal=True, window=(5, 0), impl=impl,
                                 q_chunk=4, k_chunk=8)
  eager = np.asarray(f(Q[0], K[0], V[0], M[0]))
  jitted = jax.jit(f)
  per_slice = np.stack([np.asarray(jitted(Q[n], K[n], V[n], M[n])) for n in range(N)])
  assert_close(per_slice[0], eager, 1e-6)
  assert_close(jax.vmap(f)(Q, K, V, M), per_slice, 1e-6)
  assert np.abs(per_slice[0] - per_slice[1]).max() > 1e-2  # slices differ: vmap maps


# ------------------------------------------------------- causality, windows via gradients

def influence(impl, T, D, causal, window):
  """[T, T]: sum over dims of |d out[:, i] / d x[:, j]| for self-attention q = k = v = x."""
  x = jnp.asarray(np.random.default_rng(17).standard_normal((1, T, 1, D)), jnp.float32)

  def f(x):
    return dot_product_attention(x, x, x, causal=causal, window=window, impl=impl,
                                 q_chunk=2, k_chunk=3)
  jac = jax.jit(jax.jacrev(f))(x)[0, :, 0, :, 0, :, 0, :]  # [i, d, j, e]
  return np.abs(np.asarray(jac)).sum(axis=(1, 3))


@pytest.mark.parametrize("impl,causal,window", [
    ("reference", True, None), ("reference", True, (2, 0)),
    ("chunked", True, None), ("chunked", True, (2, 3))])
def test_outputs_depend_exactly_on_allowed_positions(impl, causal, window):
  """Query i's output has a nonzero derivative w.r.t. x_j iff j is allowed, and an exactly
  zero one otherwise (causal: j <= i; window: i - left <= j <= i + right)."""
  T = 7
  got = influence(impl, T, 4, causal, window)
  want = allowed_np(1, 1, T, T, causal=causal, window=window)[0, 0]
  assert (got[~want] == 0).all(), f"leaks from disallowed positions:\n{got}"
  assert (got[want] > 0).all(), f"ignores allowed positions:\n{got}"
  if causal:
    assert (got[np.triu_indices(T, 1)] == 0).all()


@pytest.mark.parametrize("causal,window", [(False, (0, 0)), (False, (2, 1)), (False, (0, 3)),
                                           (False, (4, 0)), (False, (11, 11)), (True, (2, 3)),
                                           (True, (11, 11))])
def test_window_weights_pattern(causal, window):
  T, S = 9, 12
  q, k, v = random_qkv(18, 1, T, S, 2, 4)
  # Eager on purpose: op-by-op dispatch reuses compiled primitives across windows.
  _, weights = dot_product_attention(q, k, v, window=window, causal=causal,
                                     impl="reference", return_weights=True)
  i, j = np.arange(T)[:, None], np.arange(S)[None, :]
  want = (i - window[0] <= j) & (j <= i + window[1]) & ((j <= i) if causal else True)
  np.testing.assert_array_equal(np.asarray(weights)[0, 0] > 0, want)
  np.testing.assert_array_equal(np.asarray(weights)[0, 1] > 0, want)


# -------------------------------------------------------------------------------- memory

def compiled_temp_bytes(impl, T):
  """XLA's compiled temporary buffer size for forward + backward at length T."""
  x = jax.ShapeDtypeStruct((1, T, 1, 8), jnp.float32)

  def loss(q, k, v):
    return dot_product_attention(q, k, v, impl=impl, q_chunk=128, k_chunk=128).sum()
  compiled = jax.jit(jax.grad(loss, argnums=(0, 1, 2))).lower(x, x, x).compile()
  return compiled.memory_analysis().temp_size_in_bytes


def test_chunked_memory_grows_linearly_reference_quadratically():
  lengths = (512, 1024, 2048)
  chunked = [compiled_temp_bytes("chunked", T) for T in lengths]
  reference = [compiled_temp_bytes("reference", T) for T in lengths]
  assert all(b > 0 for b in chunked + reference), (chunked, reference)
  for small, big in zip(chunked, chunked[1:]):
    assert big / small < 2.6, f"chunked temp bytes {chunked} for T={lengths}"
  for small, big in zip(reference, reference[1:]):
    assert big / small > 3.0, f"reference temp bytes {reference} for T={lengths}"
  assert reference[-1] > 20 * chunked[-1]


# ---------------------------------------------------------------------------- auto choice

def test_auto_picks_xla_when_small_chunked_when_large_on_cpu():
  """Small score matrices go to jax.nn (xla), or reference for what jax.nn cannot
  compute (additive scores); large ones to chunked (tests/test_dispatch.py has every
  regime)."""
  if jax.default_backend() == "gpu":
    pytest.skip("auto prefers cuDNN on a GPU")
  small = jax.ShapeDtypeStruct((1, 64, 2, 8), jnp.float32)
  large = jax.ShapeDtypeStruct((1, 16384, 8, 64), jnp.float32)
  assert choose_impl(small, small, small) == "xla"
  assert choose_impl(small, small, small, additive=True) == "reference"
  assert choose_impl(large, large, large) == "chunked"
  assert choose_impl(large, large, large, return_weights=True) == "reference"


# ------------------------------------------------------------------------------ bad input

Q = jnp.ones((2, 5, 3, 8))
K = jnp.ones((2, 6, 3, 8))
W = jnp.ones((3, 8))
BAD_CALLS = {
    "q_not_4d": (lambda: dot_product_attention(Q[0], K, K), "(5, 3, 8)"),
    "v_not_4d": (lambda: dot_product_attention(Q, K, K[:, :, 0]), "(2, 6, 8)"),
    "head_dim_mismatch": (lambda: dot_product_attention(Q, jnp.ones((2, 6, 3, 4)), K),
                          "(2, 6, 3, 4)"),
    "heads_mismatch": (lambda: dot_product_attention(Q, jnp.ones((2, 6, 2, 8)), K),
                       "(2, 6, 2, 8)"),
    "kv_length_mismatch": (lambda: dot_product_attention(Q, K, jnp.ones((2, 7, 3, 8))),
                           "(2, 7, 3, 8)"),
    "batch_mismatch": (lambda: dot_product_attention(jnp.ones((1, 5, 3, 8)), K, K),
                       "(1, 5, 3, 8)"),
    "mask_not_broadcastable": (
        lambda: dot_product_attention(Q, K, K, mask=jnp.ones((5, 7), bool)), "(5, 7)"),
    "mask_5d": (lambda: dot_product_attention(Q, K, K, mask=jnp.ones((1, 2, 3, 5, 6), bool)),
                "(1, 2, 3, 5, 6)"),
    "bias_not_broadcastable": (
        lambda: dot_product_attention(Q, K, K, bias=jnp.ones((3, 5, 5))), "(3, 5, 5)"),
    "mask_float": (lambda: dot_product_attention(Q, K, K, mask=jnp.ones((5, 6))), "float32"),
    "mask_int": (lambda: dot_product_attention(Q, K, K, mask=jnp.ones((5, 6), jnp.int32)),
                 "int32"),
    "window_left_negative": (lambda: dot_product_attention(Q, K, K, window=(-1, 2)),
                             "(-1, 2)"),
    "window_right_negative": (lambda: dot_product_attention(Q, K, K, window=(1, -2)),
                              "(1, -2)"),
    "window_left_too_wide": (lambda: dot_product_attention(Q, K, K, window=(6, 0)), "(6, 0)"),
    "window_right_too_wide": (lambda: dot_product_attention(Q, K, K, window=(0, 6)), "(0, 6)"),
    "window_not_pair": (lambda: dot_product_attention(Q, K, K, window=3), "3"),
    "unknown_impl": (lambda: dot_product_attention(Q, K, K, impl="flash"), "'flash'"),
    "weights_from_chunked": (
        lambda: dot_product_attention(Q, K, K, impl="chunked", return_weights=True), "'chunked'"),
    "scale_not_positive": (lambda: dot_product_attention(Q, K, K, scale=-1.0), "-1.0"),
    "chunk_not_positive": (lambda: dot_product_attention(Q, K, K, impl="chunked", q_chunk=0),
                           "q_chunk"),
    "additive_w_shape": (lambda: additive_attention(Q, K, K, W.T), "(8, 3)"),
    "additive_xla": (lambda: additive_attention(Q, K, K, W, impl="xla"), "'xla'"),
}


@pytest.mark.parametrize("name", sorted(BAD_CALLS))
def test_bad_input_raises_value_error_naming_it(name):
  call, named = BAD_CALLS[name]
  with pytest.raises(ValueError, match=re.escape(named)):
    call()


def test_cudnn_on_cpu_raises_value_error_mentioning_gpu():
  if jax.default_backend() == "gpu":
    pytest.skip("this machine has a GPU")
  for dtype in (jnp.float32, jnp.bfloat16):
    with pytest.raises(ValueError, match="GPU"):
      dot_product_attention(Q.astype(dtype), K.astype(dtype), K.astype(dtype), impl="cudnn")


def test_numpy_float32_scale_is_accepted():
  q, k, v = random_qkv(19, 1, 4, 4, 1, 8)
  want = dpa(q, k, v, impl="reference", scale=0.5)
  assert_close(dot_product_attention(q, k, v, impl="reference", scale=np.float32(0.5)),
               want, 1e-6)
