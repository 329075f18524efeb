"""Tests of attn_research.kernels.linear (Katharopoulos et al. 2020, arXiv 2006.16236).

The three causal forms (parallel, chunked, recurrent) against each other, values and full
Jacobians (which also show causality: exactly zero derivatives on the future); the
parallel and direct forms against hand-written numpy; step-by-step generation against the
parallel form; key padding; what impl="auto" runs (read off the jaxpr); O(T) compiled
memory of the chunked form against softmax's O(T^2); ValueErrors.

Shapes are tiny and chunk sizes do not divide the lengths. Compiling dominates (about 20 s
of CPU from a cold compile cache, a few seconds from a warm one): one jitted entry point
is shared so that identical calls compile once, and checks share calls where they can.
"""
from __future__ import annotations

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attn_research.kernels import dot_product_attention
from attn_research.kernels.linear import (FEATURE_MAPS, init_state,
                                          linear_attention, linear_attention_step)

STATIC = ("causal", "feature_map", "impl", "chunk")
lin = jax.jit(linear_attention, static_argnames=STATIC)
step = jax.jit(linear_attention_step, static_argnames=("feature_map",))
CHUNK = 5  # divides none of the ragged lengths below
EPS = 1e-6  # the kernel's default, used by the numpy formulas


@pytest.fixture(autouse=True)
def full_float32_matmuls():
  """The forms are compared at 1e-5: keep GPUs and TPUs from rounding float32 matmul
  inputs to TF32 or bfloat16 (a no-op on CPU)."""
  with jax.default_matmul_precision("float32"):
    yield


# ------------------------------------------------------------------------------ helpers

def random_qkv(seed, B, T, S, H, D, E, dtype=jnp.float32):
  rng = np.random.default_rng(seed)
  q = rng.standard_normal((B, T, H, D))
  k = rng.standard_normal((B, S, H, D))
  v = rng.standard_normal((B, S, H, E))
  return tuple(jnp.asarray(x, dtype) for x in (q, k, v))


def random_padding(seed, B, S):
  valid = np.random.default_rng(seed).random((B, S)) < 0.6
  valid[:, 0] = True
  valid[0, -1] = False  # at least one padded key
  return valid


def phi_np(name, x):
  """The feature maps written out independently, in float64."""
  x = np.asarray(x, np.float64)
  return {"elu": np.where(x > 0, x + 1.0, np.exp(np.minimum(x, 0))),
          "relu": np.maximum(x, 0.0)}[name]


def numpy_linear(q, k, v, feature_map="elu", valid_BS=None, eps=EPS):
  """Non-causal: out_i = phi(q_i)^T (sum_j phi(k_j) v_j^T) / (phi(q_i)^T sum_j phi(k_j) + eps),
  summing over real keys only, per batch element and head, in float64."""
  pq, pk, v = phi_np(feature_map, q), phi_np(feature_map, k), np.asarray(v, np.float64)
  B, T, H, _ = pq.shape
  out = np.zeros((B, T, H, v.shape[-1]))
  for b in range(B):
    keys = np.arange(k.shape[1]) if valid_BS is None else np.flatnonzero(valid_BS[b])
    for h in range(H):
      kv = pk[b, keys, h].T @ v[b, keys, h]  # [D, E]
      z = pk[b, keys, h].sum(0)  # [D]
      out[b, :, h] = (pq[b, :, h] @ kv) / (pq[b, :, h] @ z + eps)[:, None]
  return out


def numpy_causal_loop(q, k, v, feature_map="elu", valid_BS=None, eps=EPS):
  """Causal, one query at a time: out_i = sum_{j<=i} a_ij v_j / (sum_{j<=i} a_ij + eps),
  a_ij = phi(q_i) . phi(k_j), over real keys j only."""
  pq, pk, v = phi_np(feature_map, q), phi_np(feature_map, k), np.asarray(v, np.float64)
  B, T, H, _ = pq.shape
  out = np.zeros((B, T, H, v.shape[-1]))
  for b in range(B):
    for h in range(H):
      for i in range(T):
        a = np.array([pq[b, i, h] @ pk[b, j, h] if valid_BS is None or valid_BS[b, j] else 0.0
                      for j in range(i + 1)])
        out[b, i, h] = (a @ v[b, :i + 1, h]) / (a.sum() + eps)
  return out


def assert_close(got, want, tol, what=""):
  np.testing.assert_allclose(np.asarray(got, np.float64), np.asarray(want, np.float64),
                             atol=tol, rtol=0, err_msg=what)


# ------------------------------------------------------------- the causal forms agree

@pytest.mark.parametrize("T,padded", [(1, False), (10, False), (23, True)])
def test_causal_forms_agree(T, padded):
  """T = 1 (chunk > T), 10 (two full chunks), 23 (ragged last chunk, with key padding)."""
  B, H, D, E = 2, 2, 4, 3
  q, k, v = random_qkv(T, B, T, T, H, D, E)
  mask = jnp.asarray(random_padding(1, B, T)) if padded else None
  want = lin(q, k, v, mask=mask, causal=True, impl="parallel")
  assert want.shape == (B, T, H, E) and want.dtype == jnp.float32
  # Position 0 sees only itself: out_0 = v_0 up to eps (so causal is not ignored).
  assert_close(want[:, 0], v[:, 0], 1e-5)
  for impl in ("chunked", "recurrent"):
    got = lin(q, k, v, mask=mask, causal=True, impl=impl, chunk=CHUNK)
    assert got.shape == want.shape and got.dtype == want.dtype, impl
    assert_close(got, want, 1e-5, f"impl={impl!r}")


# ---------------------------------------------------------------------- against numpy

@pytest.mark.parametrize("feature_map", sorted(FEATURE_MAPS))
def test_non_causal_matches_numpy_formula(feature_map):
  B, T, S, H, D, E = 2, 6, 9, 2, 4, 3
  q, k, v = random_qkv(4, B, T, S, H, D, E)
  want = numpy_linear(q, k, v, feature_map)
  for impl in ("direct", "parallel"):
    got = lin(q, k, v, feature_map=feature_map, impl=impl)
    assert got.shape == (B, T, H, E), impl
    assert_close(got, want, 1e-5, f"impl={impl!r}")
    # eps sits in the denominator (a large one, so that its place shows).
    assert_close(lin(q, k, v, feature_map=feature_map, impl=impl, eps=2.0),
                 numpy_linear(q, k, v, feature_map, eps=2.0), 1e-5, f"impl={impl!r} eps=2")


def test_parallel_causal_matches_numpy_loop():
  B, T, H, D, E = 2, 9, 2, 4, 3
  q, k, v = random_qkv(5, B, T, T, H, D, E)
  assert_close(lin(q, k, v, causal=True, impl="parallel"), numpy_causal_loop(q, k, v), 1e-5)
  assert_close(lin(q, k, v, causal=True, impl="parallel", eps=2.0),
               numpy_causal_loop(q, k, v, eps=2.0), 1e-5)


# ------------------------------------------------------------------ RNN form / generation

def test_step_by_step_generation_reproduces_parallel():
  B, T, H, D, E = 2, 9, 2, 4, 3
  q, k, v = random_qkv(6, B, T, T, H, D, E)
  want = np.asarray(lin(q, k, v, causal=True, impl="parallel"))
  state = init_state(B, H, D, E, jnp.float32)
  assert state[0].shape == (B, H, D, E) and state[1].shape == (B, H, D)
  assert not np.asarray(state[0]).any() and not np.asarray(state[1]).any()
  for t in range(T):
    state, out_t = step(state, q[:, t], k[:, t], v[:, t])
    assert out_t.shape == (B, H, E) and out_t.dtype == jnp.float32
    assert_close(out_t, want[:, t], 1e-5, f"position {t}")
  # The final state is the paper's S = sum_j phi(k_j) v_j^T and z = sum_j phi(k_j).
  pk = phi_np("elu", k)
  assert_close(state[0], np.einsum("bthd,bthe->bhde", pk, np.asarray(v, np.float64)), 1e-4)
  assert_close(state[1], pk.sum(1), 1e-4)


def test_step_keeps_state_dtype_and_returns_value_dtype():
  B, H, D, E = 1, 2, 4, 3
  q, k, v = random_qkv(7, B, 1, 1, H, D, E, jnp.bfloat16)
  state, out = step(init_state(B, H, D, E), q[:, 0], k[:, 0], v[:, 0])
  assert state[0].dtype == state[1].dtype == jnp.float32 and out.dtype == jnp.bfloat16


# ------------------------------------------------------------------ causality, padding

@functools.partial(jax.jit, static_argnames="impl")
def causal_jacobians(q, k, v, mask, eps, impl):
  def f(q, k, v):
    return linear_attention(q, k, v, mask=mask, causal=True, impl=impl, chunk=3, eps=eps)
  return jax.jacrev(f, argnums=(0, 1, 2))(q, k, v)


@pytest.mark.parametrize("impl", ["chunked", "recurrent", "parallel"])
def test_causality_and_gradients_by_jacobians(impl):
  """Full Jacobians d out_i / d {q, k, v}_j of every causal form match parallel's (T = 7,
  chunks of 3, key 5 padded), and are exactly zero where they must be: d / d k_j and
  d / d v_j for j > i or j padded, d / d q_j for j != i; nonzero everywhere else.
  eps = 0: the zero rows that pad the last chunk must not turn gradients into NaN."""
  T, D, E = 7, 3, 2
  q, k, v = random_qkv(8, 1, T, T, 1, D, E)
  valid = np.ones((1, T), bool)
  valid[0, 5] = False
  jacs = causal_jacobians(q, k, v, jnp.asarray(valid), 0.0, impl)
  want_jacs = causal_jacobians(q, k, v, jnp.asarray(valid), 0.0, "parallel")
  past = np.tril(np.ones((T, T), bool))
  for name, jac, want in zip("qkv", jacs, want_jacs):
    assert np.abs(np.asarray(want)).max() > 0.1, name  # not trivially zero
    assert_close(jac, want, 1e-5, f"d out / d {name}")
    influence = np.abs(np.asarray(jac)[0, :, 0, :, 0, :, 0, :]).sum(axis=(1, 3))  # [i, j]
    allowed = np.eye(T, dtype=bool) if name == "q" else past & valid[0][None, :]
    assert (influence[~past] == 0).all(), f"d out / d {name} leaks the future:\n{influence}"
    assert (influence[~allowed] == 0).all(), f"d out / d {name} sees padding:\n{influence}"
    assert (influence[allowed] > 0).all(), f"d out / d {name} ignores the past:\n{influence}"


@pytest.mark.parametrize("causal,impl", [(False, "auto"), (False, "parallel"),
                                         (True, "chunked")])
def test_padded_keys_do_not_change_outputs(causal, impl):
  B, S, H, D, E = 2, 11, 2, 4, 3
  T = S if causal else 6
  q, k, v = random_qkv(10, B, T, S, H, D, E)
  valid = random_padding(11, B, S)
  rng = np.random.default_rng(12)
  garbage = lambda x: jnp.where(valid[:, :, None, None], x, 50 * rng.standard_normal(x.shape))
  mask = jnp.asarray(valid)
  got = lin(q, k, v, mask=mask, causal=causal, impl=impl, chunk=CHUNK)
  assert_close(lin(q, garbage(k), garbage(v), mask=mask, causal=causal, impl=impl,
                   chunk=CHUNK), got, 1e-6, "padded keys changed the output")
  # ... and equals the formula summed over the real keys only.
  formula = numpy_causal_loop if causal else numpy_linear
  assert_close(got, formula(q, k, v, valid_BS=valid), 1e-5)


# ------------------------------------------------------------------ feature maps, dtypes

def test_relu_feature_map_forms_agree_and_dead_queries_give_zero():
  B, T, H, D, E = 1, 12, 2, 4, 3
  q, k, v = random_qkv(13, B, T, T, H, D, E)
  q = q.at[0, 4, 1].set(-1.0)  # relu(q) = 0: this query sees nothing
  want = lin(q, k, v, causal=True, impl="parallel", feature_map="relu")
  assert_close(want, numpy_causal_loop(q, k, v, "relu"), 1e-5)
  for impl in ("chunked", "recurrent"):
    assert_close(lin(q, k, v, causal=True, impl=impl, feature_map="relu", chunk=CHUNK),
                 want, 1e-5, f"impl={impl!r}")
  assert np.isfinite(np.asarray(want)).all() and (np.asarray(want)[0, 4, 1] == 0).all()
  elu = numpy_causal_loop(q, k, v, "elu")
  assert np.abs(np.asarray(want) - elu).max() > 1e-2  # the name selects the map


def test_bfloat16_inputs_return_bfloat16_near_float32():
  B, T, H, D, E = 1, 12, 2, 4, 3
  q, k, v = random_qkv(14, B, T, T, H, D, E, jnp.bfloat16)
  got = lin(q, k, v, causal=True, impl="chunked", chunk=CHUNK)
  assert got.dtype == jnp.bfloat16
  assert_close(got, numpy_causal_loop(q, k, v), 2e-2)  # the same (rounded) inputs


def all_eqns(jaxpr):
  """Every equation of a jaxpr, including those inside jit, scan, checkpoint bodies."""
  for eqn in jaxpr.eqns:
    yield eqn
    for param in eqn.params.values():
      for sub in (param if isinstance(param, (tuple, list)) else (param,)):
        sub = getattr(sub, "jaxpr", sub)  # ClosedJaxpr -> Jaxpr
        if hasattr(sub, "eqns"):
          yield from all_eqns(sub)


def test_auto_is_chunked_when_causal_and_never_quadratic_when_not():
  B, T, S, H, D, E = 2, 6, 7, 3, 4, 5

  def quadratic_shapes(**opts):  # intermediates with both a T and an S axis
    jaxpr = jax.make_jaxpr(lambda q, k, v: linear_attention(q, k, v, **opts))(q, k, v).jaxpr
    return [o.aval.shape for e in all_eqns(jaxpr) for o in e.outvars
            if T in o.aval.shape and S in o.aval.shape]
  q, k, v = random_qkv(15, B, T, S, H, D, E)
  assert not quadratic_shapes(), quadratic_shapes()
  assert quadratic_shapes(impl="parallel")  # the probe can see a [.., T, S] matrix
  q, k, v = random_qkv(15, B, 13, 13, H, D, E)
  jaxpr = jax.make_jaxpr(lambda q, k, v: linear_attention(q, k, v, causal=True, chunk=CHUNK))
  scans = [e for e in all_eqns(jaxpr(q, k, v).jaxpr) if e.primitive.name == "scan"]
  assert [e.params["length"] for e in scans] == [3]  # ceil(13 / 5) chunks, not 13 steps


# -------------------------------------------------------------------------------- memory

def compiled_temp_bytes(fn, T):
  """XLA's compiled temporary buffer size for forward + backward at length T."""
  x = jax.ShapeDtypeStruct((1, T, 1, 8), jnp.float32)

  def loss(q, k, v):
    return fn(q, k, v).sum()
  compiled = jax.jit(jax.grad(loss, argnums=(0, 1, 2))).lower(x, x, x).compile()
  return compiled.memory_analysis().temp_size_in_bytes


def test_chunked_memory_grows_linearly_softmax_quadratically():
  lengths = (512, 1024)
  fns = {
      "chunked": lambda q, k, v: linear_attention(q, k, v, causal=True, impl="chunked"),
      "softmax": lambda q, k, v: dot_product_attention(q, k, v, causal=True,
                                                       impl="reference")}
  temp = {name: [compiled_temp_bytes(fn, T) for T in lengths] for name, fn in fns.items()}
  assert all(b > 0 for bs in temp.values() for b in bs), temp
  ratios = {name: [big / small for small, big in zip(bs, bs[1:])] for name, bs in temp.items()}
  assert all(r < 2.6 for r in ratios["chunked"]), (ratios, temp)
  assert all(r > 3.0 for r in ratios["softmax"]), (ratios, temp)
  assert temp["softmax"][-1] > 20 * temp["chunked"][-1], temp


# ------------------------------------------------------------------------------ bad input

Q = jnp.ones((2, 5, 3, 4))
K = jnp.ones((2, 6, 3, 4))
V = jnp.ones((2, 6, 3, 2))
STATE = init_state(2, 3, 4, 2)
BAD_CALLS = {
    "unknown_feature_map": (lambda: linear_attention(Q, K, V, feature_map="softmax"),
                            "'softmax'"),
    "feature_map_not_a_name": (lambda: linear_attention(Q, K, V, feature_map=["elu"]),
                               "['elu']"),
    "unknown_impl": (lambda: linear_attention(Q, K, V, impl="flash"), "'flash'"),
    "chunked_non_causal": (lambda: linear_attention(Q, K, V, impl="chunked"), "'chunked'"),
    "recurrent_non_causal": (lambda: linear_attention(Q, K, V, impl="recurrent"),
                             "'recurrent'"),
    "direct_causal": (lambda: linear_attention(K, K, V, causal=True, impl="direct"),
                      "'direct'"),
    "causal_T_ne_S": (lambda: linear_attention(Q, K, V, causal=True), "T=5"),
    "q_not_4d": (lambda: linear_attention(Q[0], K, V), "(5, 3, 4)"),
    "v_not_4d": (lambda: linear_attention(Q, K, V[..., 0]), "(2, 6, 3)"),
    "head_dim_mismatch": (lambda: linear_attention(Q, jnp.ones((2, 6, 3, 5)), V),
                          "(2, 6, 3, 5)"),
    "kv_length_mismatch": (lambda: linear_attention(Q, K, jnp.ones((2, 7, 3, 2))),
                           "(2, 7, 3, 2)"),
    "int_inputs": (lambda: linear_attention(Q.astype(jnp.int32), K, V), "int32"),
    "chunk_zero": (lambda: linear_attention(K, K, V, causal=True, chunk=0), "chunk must be"),
    "chunk_float": (lambda: linear_attention(K, K, V, causal=True, chunk=2.5), "2.5"),
    "mask_wrong_shape": (lambda: linear_attention(Q, K, V, mask=jnp.ones((2, 5), bool)),
                         "(2, 5)"),
    "mask_4d": (lambda: linear_attention(Q, K, V, mask=jnp.ones((2, 1, 1, 6), bool)),
                "(2, 1, 1, 6)"),
    "mask_float": (lambda: linear_attention(Q, K, V, mask=jnp.ones((2, 6))), "float32"),
    "eps_negative": (lambda: linear_attention(Q, K, V, eps=-1.0), "-1.0"),
    "step_unknown_feature_map": (
        lambda: linear_attention_step(STATE, K[:, 0], K[:, 0], V[:, 0], feature_map="exp"),
        "'exp'"),
    "step_q_not_3d": (lambda: linear_attention_step(STATE, K, K[:, 0], V[:, 0]),
                      "(2, 6, 3, 4)"),
    "step_state_mismatch": (
        lambda: linear_attention_step(init_state(2, 3, 4, 5), K[:, 0], K[:, 0], V[:, 0]),
        "(2, 3, 4, 5)"),
    "init_state_bad_size": (lambda: init_state(2, 0, 4, 2), "heads"),
    "init_state_int_dtype": (lambda: init_state(2, 3, 4, 2, jnp.int32), "int32"),
}


@pytest.mark.parametrize("name", sorted(BAD_CALLS))
def test_bad_input_raises_value_error_naming_it(name):
  call, named = BAD_CALLS[name]
  with pytest.raises(ValueError, match=re.escape(named)):
    call()
