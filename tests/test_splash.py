"""impl="splash" (kernels/splash.py): Pallas TPU splash attention run in Pallas interpret
mode on this CPU against reference, and the TPU rules of impl="auto" with the TPU faked
(choose_impl reads only attention._on_tpu, which the test replaces).

Interpret mode checks numerics (layout conversion, scale, segment ids, masks, zero rows),
not TPU lowering or speed.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attn_research.kernels import attention as attention_lib
from attn_research.kernels import choose_impl, dot_product_attention
from attn_research.kernels import splash as splash_lib

B, T, H, D = 2, 128, 2, 64


def qkv(seed, T=T, D=D, dtype=jnp.float32):
  rng = np.random.default_rng(seed)
  return [jnp.asarray(rng.normal(size=(B, T, H, D)), dtype) for _ in range(3)]


def key_padding(lengths, T=T):
  return jnp.asarray(np.arange(T)[None, :] < np.asarray(lengths)[:, None])[:, None, None, :]


@pytest.fixture
def interpret(monkeypatch):
  """impl="splash" through dot_product_attention in interpret mode, as on a TPU."""
  monkeypatch.setattr(splash_lib, "_INTERPRET", True)


# Each case: (options, key lengths or None). Row 1 of "fully padded" has no real key:
# the contract is zeros there; "window, padded" has queries whose whole window is padding.
CASES = {
    "full": (dict(), None),
    "causal": (dict(causal=True), None),
    "key padding": (dict(), [128, 50]),
    "causal, fully padded example": (dict(causal=True), [77, 0]),
    "window": (dict(window=(16, 8)), None),
    "causal window, padded": (dict(window=(16, 4), causal=True), [128, 50]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_splash_forward_equals_reference(interpret, name):
  options, lengths = CASES[name]
  mask = None if lengths is None else key_padding(lengths)
  q, k, v = qkv(0)
  got = jax.jit(lambda q, k, v: dot_product_attention(q, k, v, mask=mask, impl="splash",
                                                      **options))(q, k, v)
  want = dot_product_attention(q, k, v, mask=mask, impl="reference", **options)
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=2e-5, rtol=1e-5)
  if lengths is not None and 0 in lengths:
    np.testing.assert_array_equal(np.asarray(got)[1], 0.0)
  if name == "causal window, padded":  # queries 66.. see only padding: zeros, not averages
    np.testing.assert_array_equal(np.asarray(got)[1, 50 + 16:], 0.0)


def test_splash_bfloat16_and_scale(interpret):
  q, k, v = qkv(1, dtype=jnp.bfloat16)
  got = dot_product_attention(q, k, v, scale=0.3, causal=True, impl="splash")
  want = dot_product_attention(q, k, v, scale=0.3, causal=True, impl="reference")
  assert got.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(got, np.float32), np.asarray(want, np.float32),
                             atol=3e-2)


@pytest.mark.parametrize("name", [
    "causal window, padded",
    pytest.param("causal, fully padded example", marks=pytest.mark.slow),
    pytest.param("full", marks=pytest.mark.slow)])
def test_splash_gradients_equal_reference(interpret, name):
  """splash's own custom VJP (its dq and dkv kernels), in interpret mode."""
  options, lengths = CASES[name]
  mask = None if lengths is None else key_padding(lengths)
  q, k, v = qkv(2)

  def loss(impl):
    return lambda q, k, v: jnp.sum(jnp.sin(dot_product_attention(
        q, k, v, mask=mask, impl=impl, **options)))

  got = jax.jit(jax.grad(loss("splash"), argnums=(0, 1, 2)))(q, k, v)
  want = jax.grad(loss("reference"), argnums=(0, 1, 2))(q, k, v)
  for n, g, w in zip("qkv", got, want):
    assert np.all(np.isfinite(np.asarray(g))), f"d/d{n}"
    np.testing.assert_allclose(g, w, atol=1e-4, rtol=1e-4, err_msg=f"d/d{n}")


@pytest.mark.slow
def test_splash_direct_call_with_interpret_and_two_block_sizes():
  """splash_attention(..., interpret=True) without the hook; lengths 256 x 384 use 256-
  and 128-wide blocks (cross attention, key padding)."""
  rng = np.random.default_rng(3)
  q = jnp.asarray(rng.normal(size=(1, 256, 2, 64)), jnp.float32)
  k, v = (jnp.asarray(rng.normal(size=(1, 384, 2, 64)), jnp.float32) for _ in range(2))
  valid = jnp.asarray(np.arange(384)[None] < 300)
  got = splash_lib.splash_attention(q, k, v, key_mask_BS=valid, interpret=True)
  want = dot_product_attention(q, k, v, mask=valid[:, None, None, :], impl="reference")
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=2e-5, rtol=1e-5)


def test_splash_refused_off_a_tpu_and_for_what_it_cannot_run(interpret, monkeypatch):
  q, k, v = qkv(4)
  with pytest.raises(ValueError, match="splash takes no bias"):
    dot_product_attention(q, k, v, bias=jnp.zeros((1, H, T, T)), impl="splash")
  with pytest.raises(ValueError, match=r"multiples of 128; got 96, 96"):
    dot_product_attention(q[:, :96], k[:, :96], v[:, :96], impl="splash")
  with pytest.raises(ValueError, match=r"key padding mask \[B, 1, 1, S\] only"):
    dot_product_attention(q, k, v, mask=jnp.ones((B, 1, T, T), bool), impl="splash")
  monkeypatch.setattr(splash_lib, "_INTERPRET", False)
  with pytest.raises(ValueError, match="impl='splash' needs a TPU; this machine's JAX "
                                       f"backend is '{jax.default_backend()}'"):
    attention_lib.check_impl("splash")


# ------------------------------------------------------------------- auto on a TPU (faked)

def spec(B, T, H, D, dtype=jnp.float32):
  return jax.ShapeDtypeStruct((B, T, H, D), dtype)


KEY_PAD = jax.ShapeDtypeStruct((2, 1, 1, 256), jnp.bool_)
TPU_REGIMES = [
    ("float32", spec(2, 256, 4, 64), {}, "splash", None),
    ("bfloat16, causal, window, key padding", spec(2, 256, 4, 64, jnp.bfloat16),
     dict(causal=True, window=(32, 0), mask=KEY_PAD), "splash", None),
    ("weights asked", spec(2, 256, 4, 64), dict(return_weights=True), "reference", None),
    ("length not a multiple of 128", spec(2, 200, 4, 64), {}, "xla",
     "splash needs query and key lengths that are multiples of 128; got 200, 200"),
    ("bias", spec(2, 256, 4, 64),
     dict(bias=jax.ShapeDtypeStruct((1, 4, 256, 256), jnp.float32)), "xla",
     "splash takes no bias; got a bias of shape (1, 4, 256, 256)"),
    ("additive, narrow window", spec(2, 256, 4, 64), dict(additive=True, window=(8, 8)),
     "reference", "splash computes dot-product scores only (score='additive' asked)"),
    ("float16", spec(2, 256, 4, 64, jnp.float16), dict(window=(8, 8)), "local",
     "splash needs one dtype, float32 or bfloat16; got float16, float16, float16"),
]


@pytest.mark.parametrize("name,q,options,expected,reason", TPU_REGIMES,
                         ids=[r[0] for r in TPU_REGIMES])
def test_choose_impl_on_a_tpu(monkeypatch, caplog, name, q, options, expected, reason):
  monkeypatch.setattr(attention_lib, "_on_tpu", lambda: True)
  monkeypatch.setattr(attention_lib, "_LOGGED", set())
  with caplog.at_level("WARNING", logger="attn_research.attention"):
    assert choose_impl(q, q, q, **options) == expected, name
    choose_impl(q, q, q, **options)  # the same reason is logged once
  messages = [r.getMessage() for r in caplog.records]
  if reason is None:
    assert messages == []
  else:
    assert messages == [f"attention impl='auto': not splash because {reason}; "
                        f"running {expected!r}"]


def test_auto_runs_splash_on_a_faked_tpu(monkeypatch):
  """choose_impl's "splash" reaches the kernel, asked to compile for the TPU (the spy runs
  it in interpret mode instead: this CPU cannot compile Mosaic), and equals reference."""
  monkeypatch.setattr(attention_lib, "_on_tpu", lambda: True)
  asked = []
  real = splash_lib.splash_attention

  def spy(*args, interpret, **kwargs):
    asked.append(interpret)
    return real(*args, interpret=True, **kwargs)

  monkeypatch.setattr(splash_lib, "splash_attention", spy)
  q, k, v = qkv(5)
  mask = key_padding([128, 90])
  got = dot_product_attention(q, k, v, mask=mask, causal=True)
  assert asked == [False]
  want = dot_product_attention(q, k, v, mask=mask, causal=True, impl="reference")
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=2e-5, rtol=1e-5)
