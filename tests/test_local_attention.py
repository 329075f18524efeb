"""Tests of attn_research.kernels.local.local_attention (block-banded truncated attention):
equal to the reference kernel with the same window (values and gradients), exactly
windowed/causal by Jacobians, jit/vmap, O(T) compiled memory at a fixed window where the
reference grows as T^2, and ValueErrors naming bad inputs.

Shapes are tiny and the cases are combined (ragged length + padding + wide window) rather
than crossed: XLA compilation dominates the run time.
"""
from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attn_research.kernels import dot_product_attention
from attn_research.kernels.local import default_block, local_attention

local = jax.jit(local_attention, static_argnames=("window", "causal", "scale", "block"))
# The oracle runs eagerly on purpose where shapes repeat: op-by-op dispatch reuses the
# compiled primitives across windows and cases of one shape (jit compiles each window anew).
reference = dot_product_attention
reference_jit = jax.jit(dot_product_attention,
                        static_argnames=("window", "causal", "scale", "impl"))


def random_qkv(seed, B, T, H, D, Dv=None, dtype=jnp.float32):
  rng = np.random.default_rng(seed)
  return tuple(jnp.asarray(rng.standard_normal((B, T, H, d)), dtype) for d in (D, D, Dv or D))


def key_padding(seed, B, T):
  """[B, T] bool, True = real key, with a run of padded keys so some windows see none."""
  valid = np.random.default_rng(seed + 100).random((B, T)) < 0.6
  valid[:, 5:9] = False
  valid[:, 0] = True
  return jnp.asarray(valid)


def reference_of(q, k, v, *, window, causal=False, mask=None, scale=None, jit=False):
  """The oracle: dense attention with the window cut to the sequence (as local does)."""
  T = q.shape[1]
  window = tuple(min(w, T - 1) for w in window)
  oracle = reference_jit if jit else reference
  return oracle(q, k, v, window=window, causal=causal, scale=scale, impl="reference",
                mask=None if mask is None else mask[:, None, None, :])


def allowed_np(T, window, causal, valid=None):
  """[B or 1, T, T] bool built in numpy: which keys j query i may attend."""
  i, j = np.arange(T)[:, None], np.arange(T)[None, :]
  ok = (j >= i - window[0]) & (j <= i + window[1]) & ((j <= i) if causal else True)
  return ok[None] if valid is None else ok[None] & np.asarray(valid)[:, None, :]


# -------------------------------------------------------------------- values vs reference

T_CASES = 36  # one length for all cases, so that the eager oracle compiles once
CASES = {  # window, block, causal, padded; 36 = 4 * 8 + 4 = 9 * 4 = 7 * 5 + 1 = 2 * 16 + 4
    "ragged_last_block+padding": ((3, 2), 8, False, True),
    "left_only_wider_than_3_blocks": ((13, 0), 4, False, False),
    "right_only_wider_than_block+ragged+padding": ((0, 6), 5, False, True),
    "diagonal_only+padding": ((0, 0), 8, False, True),
    "causal+wider_than_2_blocks+padding": ((9, 3), 4, True, True),
    "default_block+ragged+padding": ((9, 4), None, False, True),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_reference_float32(case):
  T, (window, block, causal, padded) = T_CASES, CASES[case]
  B, H, D, Dv = 2, 2, 8, 5
  q, k, v = random_qkv(0, B, T, H, D, Dv)
  mask = key_padding(0, B, T) if padded else None
  got = local(q, k, v, window=window, causal=causal, block=block, mask=mask)
  want = reference_of(q, k, v, window=window, causal=causal, mask=mask)
  assert got.shape == (B, T, H, Dv) and got.dtype == jnp.float32
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
  assert np.abs(np.asarray(want)).max() > 0.1  # not trivially zero
  if padded:  # queries that see no real key: zeros, as in the reference
    empty_BT = ~allowed_np(T, window, causal, mask).any(-1)
    assert (np.asarray(got)[empty_BT] == 0).all()
    assert empty_BT.any() or window != (0, 0), "the padding should leave rows empty"


def test_window_wider_than_sequence_is_full_attention_and_scale_is_used():
  """Window sides and the (default) block longer than the sequence are cut to it."""
  q, k, v = random_qkv(1, 1, 11, 2, 8)
  assert default_block((40, 25)) > 11
  got = local(q, k, v, window=(40, 25), scale=0.3)
  np.testing.assert_allclose(got, reference_jit(q, k, v, scale=0.3, impl="reference"),
                             atol=1e-5)
  unscaled = reference_jit(q, k, v, impl="reference")
  assert np.abs(np.asarray(got) - np.asarray(unscaled)).max() > 1e-2


def test_bfloat16_returns_bfloat16_near_reference():
  q, k, v = random_qkv(2, 2, 29, 2, 8, dtype=jnp.bfloat16)
  mask = key_padding(2, 2, 29)
  got = local(q, k, v, window=(6, 2), block=8, mask=mask)
  assert got.dtype == jnp.bfloat16
  want = reference_of(q, k, v, window=(6, 2), mask=mask, jit=True)
  np.testing.assert_allclose(np.asarray(got, np.float32), np.asarray(want, np.float32),
                             atol=2e-2, rtol=0)


# ------------------------------------------------------------------------------ gradients

def grads(fn, q, k, v, **opts):
  """d/d(q, k, v) of a random projection of sin(out)."""
  ct = jnp.asarray(np.random.default_rng(9).standard_normal(q.shape[:3] + v.shape[3:]))
  loss = lambda q, k, v: jnp.sum(jnp.sin(fn(q, k, v, **opts)) * ct)
  return jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(q, k, v)


def test_gradients_match_reference():
  B, T, H, D = 2, 26, 2, 8
  q, k, v = random_qkv(3, B, T, H, D)
  mask = key_padding(3, B, T)
  got = grads(lambda q, k, v, **o: local_attention(q, k, v, mask=mask, block=4, **o),
              q, k, v, window=(6, 3))
  want = grads(lambda q, k, v, **o: dot_product_attention(
      q, k, v, mask=mask[:, None, None, :], impl="reference", **o),
      q, k, v, window=(6, 3))
  for name, g, w in zip("qkv", got, want):
    assert np.abs(np.asarray(w)).max() > 0.1, name  # the gradient is not trivially zero
    np.testing.assert_allclose(g, w, atol=2e-5, rtol=1e-5, err_msg=f"d/d{name}")


@pytest.mark.parametrize("causal,window,block", [(True, (2, 3), 2), (False, (1, 4), 3)])
def test_outputs_depend_exactly_on_allowed_positions(causal, window, block):
  """For q = k = v = x, out_i has a nonzero derivative w.r.t. x_j iff j is in the window
  (and j <= i when causal), and an exactly zero one otherwise."""
  T = 9
  x = jnp.asarray(np.random.default_rng(4).standard_normal((1, T, 1, 4)), jnp.float32)
  f = lambda x: local_attention(x, x, x, window=window, causal=causal, block=block)
  jac = jax.jit(jax.jacrev(f))(x)[0, :, 0, :, 0, :, 0, :]  # [i, d, j, e]
  got = np.abs(np.asarray(jac)).sum(axis=(1, 3))
  want = allowed_np(T, window, causal)[0]
  assert (got[~want] == 0).all(), f"leaks from disallowed positions:\n{got}"
  assert (got[want] > 0).all(), f"ignores allowed positions:\n{got}"
  if causal:
    assert (got[np.triu_indices(T, 1)] == 0).all()


# ---------------------------------------------------------------------------- jit & vmap

def test_vmap_agrees_with_per_slice_calls():
  N, B, T, H, D = 2, 2, 13, 2, 8
  rng = np.random.default_rng(5)
  Q, K, V = (jnp.asarray(rng.standard_normal((N, B, T, H, D)), jnp.float32) for _ in "qkv")
  M = jnp.asarray(rng.random((N, B, T)) < 0.7)
  f = lambda q, k, v, m: local_attention(q, k, v, window=(4, 1), mask=m, block=4)
  per_slice = np.stack([np.asarray(jax.jit(f)(Q[n], K[n], V[n], M[n])) for n in range(N)])
  np.testing.assert_allclose(jax.jit(jax.vmap(f))(Q, K, V, M), per_slice, atol=1e-6)
  assert np.abs(per_slice[0] - per_slice[1]).max() > 1e-2  # slices differ: vmap maps


# -------------------------------------------------------------------------------- memory

def compiled_temp_bytes(fn, T):
  """XLA's compiled temporary buffer size for forward + backward at length T."""
  x = jax.ShapeDtypeStruct((1, T, 1, 8), jnp.float32)
  loss = lambda q, k, v: fn(q, k, v).sum()
  compiled = jax.jit(jax.grad(loss, argnums=(0, 1, 2))).lower(x, x, x).compile()
  return compiled.memory_analysis().temp_size_in_bytes


def test_memory_grows_linearly_at_fixed_window_reference_quadratically():
  lengths, window = (512, 1024), (16, 16)
  banded = [compiled_temp_bytes(lambda q, k, v: local_attention(q, k, v, window=window), T)
            for T in lengths]
  dense = [compiled_temp_bytes(lambda q, k, v: dot_product_attention(
      q, k, v, window=window, impl="reference"), T) for T in lengths]
  assert all(b > 0 for b in banded + dense), (banded, dense)
  for small, big in zip(banded, banded[1:]):
    assert big / small < 2.6, f"local temp bytes {banded} for T={lengths}"
  for small, big in zip(dense, dense[1:]):
    assert big / small > 3.0, f"reference temp bytes {dense} for T={lengths}"
  assert dense[-1] > 10 * banded[-1], (banded, dense)


# ------------------------------------------------------------------------------ bad input

Q = jnp.ones((2, 6, 3, 8))
K7 = jnp.ones((2, 7, 3, 8))
BAD_CALLS = {
    "window_left_negative": (lambda: local_attention(Q, Q, Q, window=(-1, 2)), "(-1, 2)"),
    "window_right_negative": (lambda: local_attention(Q, Q, Q, window=(1, -2)), "(1, -2)"),
    "window_not_pair": (lambda: local_attention(Q, Q, Q, window=3),
                        "window must be a pair of ints (left, right); got 3"),
    "window_float": (lambda: local_attention(Q, Q, Q, window=(1.5, 2)), "(1.5, 2)"),
    "t_ne_s": (lambda: local_attention(Q, K7, K7, window=(1, 1)),
               "got T=6 (q (2, 6, 3, 8)) and S=7 (k (2, 7, 3, 8))"),
    "q_not_4d": (lambda: local_attention(Q[0], Q, Q, window=(1, 1)), "(6, 3, 8)"),
    "v_length_differs": (lambda: local_attention(Q, Q, K7, window=(1, 1)), "(2, 7, 3, 8)"),
    "block_zero": (lambda: local_attention(Q, Q, Q, window=(1, 1), block=0),
                   "block must be a positive int or None; got 0"),
    "block_negative": (lambda: local_attention(Q, Q, Q, window=(1, 1), block=-4), "got -4"),
    "block_float": (lambda: local_attention(Q, Q, Q, window=(1, 1), block=4.0), "got 4.0"),
    "mask_4d": (lambda: local_attention(Q, Q, Q, window=(1, 1),
                                        mask=jnp.ones((2, 1, 1, 6), bool)), "(2, 1, 1, 6)"),
    "mask_float": (lambda: local_attention(Q, Q, Q, window=(1, 1), mask=jnp.ones((2, 6))),
                   "float32"),
    "scale_not_positive": (lambda: local_attention(Q, Q, Q, window=(1, 1), scale=-1.0),
                           "-1.0"),
}


@pytest.mark.parametrize("name", sorted(BAD_CALLS))
def test_bad_input_raises_value_error_naming_it(name):
  call, named = BAD_CALLS[name]
  with pytest.raises(ValueError, match=re.escape(named)):
    call()


def test_empty_sequence_gives_empty_output():
  q = jnp.ones((2, 0, 3, 8))
  out = local_attention(q, q, jnp.ones((2, 0, 3, 5), jnp.bfloat16), window=(2, 2))
  assert out.shape == (2, 0, 3, 5) and out.dtype == jnp.bfloat16


def test_default_block_covers_the_window_with_neighbouring_blocks():
  assert default_block((0, 0)) == 16 and default_block((3, 17)) == 24
  for window in [(1, 2), (16, 0), (40, 33)]:
    assert default_block(window) >= max(window) and default_block(window) % 8 == 0


def test_dot_product_attention_dispatches_local_for_windows():
  """impl='local' (and 'auto' for a narrow window) give the reference's answer."""
  from attn_research.kernels import choose_impl, dot_product_attention
  rng = np.random.default_rng(5)
  q, k, v = (jnp.asarray(rng.normal(size=(2, 40, 2, 8)), jnp.float32) for _ in range(3))
  pad = jnp.asarray(rng.random((2, 1, 1, 40)) > 0.2)
  want = dot_product_attention(q, k, v, window=(3, 2), mask=pad, impl="reference")
  for impl in ("local", "auto"):
    got = dot_product_attention(q, k, v, window=(3, 2), mask=pad, impl=impl)
    np.testing.assert_allclose(got, want, atol=1e-5)
  assert choose_impl(q, k, v, mask=pad, window=(3, 2)) == "local"
  # Too wide to pay: materialised, through jax.nn (tests/test_dispatch.py, every regime).
  assert choose_impl(q, k, v, mask=pad, window=(30, 20)) == "xla"
  with pytest.raises(ValueError, match="impl='local' needs a window"):
    dot_product_attention(q, k, v, impl="local")
  with pytest.raises(ValueError, match="impl='local' takes no bias"):
    dot_product_attention(q, k, v, window=(1, 1), bias=jnp.zeros((40, 40)), impl="local")
