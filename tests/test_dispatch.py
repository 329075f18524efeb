"""Which implementation impl="auto" runs (kernels/attention.py: choose_impl), regime by
regime, and that auto's answer equals the reference where auto picks something else.

Comparing auto with reference only on shapes where auto *is* reference would pass
whatever the other implementations computed; here every regime names the implementation
it expects, and the comparisons run where auto chose chunked or local (a spy records
which implementation actually ran).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attn_research.kernels import attention as attention_lib
from attn_research.kernels import choose_impl, dot_product_attention

ON_GPU = jax.default_backend() == "gpu"


def spec(B, T, H, D, dtype=jnp.float32):
  """Shapes only: choose_impl decides from shapes and dtypes, so nothing is allocated."""
  return jax.ShapeDtypeStruct((B, T, H, D), dtype)


# The largest square score matrix "auto" still materialises on this backend (32 MiB on a
# CPU, 16 MiB there when causal, 256 MiB elsewhere): 4 bytes x T x S <= the limit.
EDGE = int((attention_lib.materialise_limit() // 4) ** 0.5)
CAUSAL_EDGE = int((attention_lib.materialise_limit(causal=True) // 4) ** 0.5)
KEY_PAD = jax.ShapeDtypeStruct((1, 1, 1, 256), jnp.bool_)   # [B, 1, 1, S]
FULL_MASK = jax.ShapeDtypeStruct((1, 1, 256, 256), jnp.bool_)  # [B, 1, T, S]

# (name, q, kv, options, expected on CPU). On a GPU float32 calls never go to cuDNN (it
# needs bf16/f16), so the expectations below hold there too. Before xla joined auto
# (2026-12), every "xla" below was "reference" and the CPU limit was 256 MiB.
REGIMES = [
    ("small scores", spec(2, 64, 2, 8), spec(2, 64, 2, 8), {}, "xla"),
    ("scores at the byte limit", spec(1, EDGE, 1, 8), spec(1, EDGE, 1, 8), {}, "xla"),
    ("scores one row past the limit", spec(1, EDGE + 1, 1, 8), spec(1, EDGE, 1, 8), {},
     "chunked"),
    ("large scores", spec(1, 16384, 8, 64), spec(1, 16384, 8, 64), {}, "chunked"),
    ("large scores, weights asked", spec(1, 16384, 8, 64), spec(1, 16384, 8, 64),
     dict(return_weights=True), "reference"),
    ("narrow window", spec(1, 256, 2, 8), spec(1, 256, 2, 8), dict(window=(8, 8)), "local"),
    ("narrow causal window, key padding", spec(1, 256, 2, 8), spec(1, 256, 2, 8),
     dict(window=(63, 0), causal=True, mask=KEY_PAD), "local"),
    ("window of exactly a quarter of the keys", spec(1, 256, 2, 8), spec(1, 256, 2, 8),
     dict(window=(31, 32)), "local"),
    ("window just over a quarter", spec(1, 256, 2, 8), spec(1, 256, 2, 8),
     dict(window=(32, 32)), "xla"),
    ("window with a bias", spec(1, 256, 2, 8), spec(1, 256, 2, 8),
     dict(window=(8, 8), bias=jax.ShapeDtypeStruct((1, 2, 256, 256), jnp.float32)),
     "xla"),
    ("window with a full mask", spec(1, 256, 2, 8), spec(1, 256, 2, 8),
     dict(window=(8, 8), mask=FULL_MASK), "xla"),
    ("window, cross attention", spec(1, 128, 2, 8), spec(1, 256, 2, 8), dict(window=(8, 8)),
     "xla"),
    ("window, additive scores", spec(1, 256, 2, 8), spec(1, 256, 2, 8),
     dict(window=(8, 8), additive=True), "reference"),
    # What jax.nn cannot compute stays materialised by reference below the limit.
    ("additive scores", spec(2, 64, 2, 8), spec(2, 64, 2, 8), dict(additive=True),
     "reference"),
    ("additive scores past the limit", spec(1, 16384, 8, 64), spec(1, 16384, 8, 64),
     dict(additive=True), "chunked"),
    ("mixed dtypes", spec(2, 64, 2, 8, jnp.bfloat16), spec(2, 64, 2, 8), {}, "reference"),
    # Causal chunked skips half its blocks: on a CPU the limit halves for causal calls.
    ("causal scores at the causal limit", spec(1, CAUSAL_EDGE, 1, 8),
     spec(1, CAUSAL_EDGE, 1, 8), dict(causal=True), "xla"),
    ("causal scores one row past it", spec(1, CAUSAL_EDGE + 1, 1, 8),
     spec(1, CAUSAL_EDGE, 1, 8), dict(causal=True), "chunked"),
    ("non-causal scores of that size", spec(1, CAUSAL_EDGE + 1, 1, 8),
     spec(1, CAUSAL_EDGE, 1, 8), {}, "xla" if CAUSAL_EDGE < EDGE else "chunked"),
]


@pytest.mark.parametrize("name,q,kv,options,expected", REGIMES, ids=[r[0] for r in REGIMES])
def test_choose_impl_per_regime(name, q, kv, options, expected):
  assert choose_impl(q, kv, kv, **options) == expected, name


def test_bfloat16_never_picks_cudnn_on_cpu():
  if ON_GPU:
    pytest.skip("this machine has a GPU (the cuDNN cases are the next test)")
  q = spec(2, 128, 4, 64, jnp.bfloat16)
  assert choose_impl(q, q, q) == "xla"
  assert choose_impl(q, q, q, causal=True, window=(16, 0)) == "local"


@pytest.mark.skipif(not ON_GPU, reason="cuDNN attention runs on a GPU only")
@pytest.mark.parametrize("q,options,expected", [
    (spec(2, 128, 4, 64, jnp.bfloat16), {}, "cudnn"),
    (spec(2, 128, 4, 64, jnp.float16), dict(causal=True), "cudnn"),
    (spec(2, 128, 4, 64, jnp.bfloat16), dict(causal=True, window=(16, 0)), "cudnn"),
    (spec(2, 128, 4, 64, jnp.float32), {}, "xla"),        # cuDNN needs bf16 / f16
    (spec(2, 128, 4, 60, jnp.bfloat16), {}, "xla"),       # head_dim not a multiple of 8
    (spec(2, 128, 4, 64, jnp.bfloat16), dict(return_weights=True), "reference"),
    (spec(2, 128, 4, 64, jnp.bfloat16), dict(additive=True), "reference"),
    (spec(2, 128, 4, 64, jnp.bfloat16), dict(window=(8, 8)), "local"),  # two-sided window
])
def test_choose_impl_on_gpu(q, options, expected):
  assert choose_impl(q, q, q, **options) == expected


# ------------------------------------------------------------ auto against the reference

@pytest.fixture
def spy(monkeypatch):
  """Records the implementations that ran (the private functions auto dispatches to)."""
  ran = []
  for name in ("_reference", "_chunked", "_jax_nn"):
    real = getattr(attention_lib, name)

    def wrapped(*args, _real=real, _name=name, **kwargs):
      ran.append(_name.strip("_"))
      return _real(*args, **kwargs)

    monkeypatch.setattr(attention_lib, name, wrapped)
  real_local = attention_lib.local_lib.local_attention

  def local(*args, **kwargs):
    ran.append("local")
    return real_local(*args, **kwargs)

  monkeypatch.setattr(attention_lib.local_lib, "local_attention", local)
  return ran


def qkv(seed, B=2, T=48, H=2, D=8):
  rng = np.random.default_rng(seed)
  return [jnp.asarray(rng.normal(size=(B, T, H, D)), jnp.float32) for _ in range(3)]


@pytest.mark.parametrize("causal", [False, True])
def test_auto_equals_reference_where_it_picks_chunked(monkeypatch, spy, causal):
  # A 1 KiB limit makes these small calls "large": auto must take the chunked path.
  monkeypatch.setattr(attention_lib, "AUTO_REFERENCE_MAX_BYTES", 1024)
  monkeypatch.setattr(attention_lib, "AUTO_CPU_MATERIALISE_MAX_BYTES", 1024)
  q, k, v = qkv(0)
  pad = jnp.asarray(np.arange(48)[None, None, None, :] < np.array([48, 30])[:, None, None, None])
  assert choose_impl(q, k, v, mask=pad, causal=causal) == "chunked"
  got = dot_product_attention(q, k, v, mask=pad, causal=causal, impl="auto", q_chunk=16,
                              k_chunk=16)
  assert spy == ["chunked"], spy
  want = dot_product_attention(q, k, v, mask=pad, causal=causal, impl="reference")
  assert spy == ["chunked", "reference"], spy
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=2e-6)


@pytest.mark.parametrize("window,causal", [((3, 2), False), ((5, 0), True)])
def test_auto_equals_reference_where_it_picks_local(spy, window, causal):
  q, k, v = qkv(1, T=64)
  pad = jnp.asarray(np.arange(64)[None, None, None, :] < np.array([64, 41])[:, None, None, None])
  assert choose_impl(q, k, v, mask=pad, window=window, causal=causal) == "local"
  got = dot_product_attention(q, k, v, mask=pad, window=window, causal=causal, impl="auto")
  assert spy == ["local"], spy
  want = dot_product_attention(q, k, v, mask=pad, window=window, causal=causal,
                               impl="reference")
  np.testing.assert_allclose(np.asarray(got)[:, :41], np.asarray(want)[:, :41], atol=2e-6)
  # Real queries of the padded row, and every query of the full row, agree; padded
  # queries may differ (neither implementation promises a value there).
  np.testing.assert_allclose(np.asarray(got)[0], np.asarray(want)[0], atol=2e-6)


def test_auto_equals_reference_where_it_picks_xla(spy):
  """Including a row with no key allowed, which jax.nn alone would fill with the mean
  of the values: auto returns zeros there, as reference does."""
  q, k, v = qkv(2)
  pad = np.arange(48)[None, None, None, :] < np.array([48, 30])[:, None, None, None]
  pad = np.broadcast_to(pad, (2, 2, 48, 48)).copy()
  pad[1, 0, 5] = False  # query 5 of head 0 in the second sequence sees no key
  pad = jnp.asarray(pad)
  assert choose_impl(q, k, v, mask=pad, causal=True) == "xla"
  got = dot_product_attention(q, k, v, mask=pad, causal=True, impl="auto")
  assert spy == ["jax_nn"], spy
  want = dot_product_attention(q, k, v, mask=pad, causal=True, impl="reference")
  np.testing.assert_array_equal(np.asarray(got)[1, 5, 0], 0.0)
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=2e-6)
  # What jax.nn cannot compute is refused by name when xla is asked for outright.
  with pytest.raises(ValueError, match=r"values shaped like the keys; got \(2, 48, 2, 4\)"):
    dot_product_attention(q, k, v[..., :4], impl="xla")


@pytest.mark.parametrize("T,window", [(300, None), (300, (40, 0)), (45, (3, 2))])
def test_chunked_skips_blocks_no_query_sees(spy, T, window):
  """Causal (and windowed) chunked attention runs one lax.cond per key block, and with
  lengths that are not multiples of the chunks it equals reference, values and
  gradients."""
  q, k, v = qkv(3, B=1, T=T, H=2, D=8)
  opts = dict(causal=True, window=window, q_chunk=64, k_chunk=32)
  jaxpr = str(jax.make_jaxpr(lambda q: dot_product_attention(q, k, v, impl="chunked",
                                                             **opts))(q))
  assert "cond" in jaxpr
  assert "cond" not in str(jax.make_jaxpr(lambda q: dot_product_attention(
      q, k, v, impl="chunked", q_chunk=64, k_chunk=32))(q))

  def loss(impl):
    return lambda q, k, v: jnp.sum(jnp.sin(dot_product_attention(
        q, k, v, impl=impl, **(opts if impl == "chunked" else dict(causal=True,
                                                                    window=window)))))

  np.testing.assert_allclose(
      np.asarray(dot_product_attention(q, k, v, impl="chunked", **opts)),
      np.asarray(dot_product_attention(q, k, v, impl="reference", causal=True,
                                       window=window)), atol=2e-6)
  got = jax.grad(loss("chunked"), argnums=(0, 1, 2))(q, k, v)
  want = jax.grad(loss("reference"), argnums=(0, 1, 2))(q, k, v)
  for name, g, w in zip("qkv", got, want):
    np.testing.assert_allclose(g, w, atol=2e-5, rtol=1e-5, err_msg=f"d/d{name}")



# ------------------------------------- padding as sequence lengths (the fused kernels' form)

def _padding_case(prefix: bool):
  rng = np.random.default_rng(3)
  q, k, v = (jnp.asarray(rng.normal(size=(3, 12, 2, 8)), jnp.float32) for _ in range(3))
  lengths = np.array([12, 7, 1])
  valid = np.arange(12)[None, :] < lengths[:, None]
  if not prefix:
    valid[1, 2] = False  # a hole inside row 1: not expressible as a length
  return q, k, v, jnp.asarray(valid)


@pytest.mark.parametrize("prefix", [True, False], ids=["right-padded", "hole"])
@pytest.mark.parametrize("causal", [False, True])
def test_padding_as_lengths_equals_the_dense_mask(prefix, causal):
  """The cuDNN path's lax.cond (lengths when every row is right-padded, else the dense
  mask), run here through jax.nn's XLA implementation, which takes the same arguments:
  outputs and gradients equal reference's, and the branch taken is the expected one."""
  q, k, v, valid = _padding_case(prefix)
  mask = valid[:, None, None, :]
  lengths, is_prefix = attention_lib.masks_lib.prefix_lengths(valid)
  assert bool(is_prefix) == prefix and lengths.tolist() == valid.sum(-1).tolist()

  def fused(q, k, v):
    call = lambda **kw: jax.nn.dot_product_attention(  # noqa: E731
        q, k, v, is_causal=causal, implementation="xla", **kw)
    return attention_lib._padded_as_lengths(call, mask, valid)

  def reference(q, k, v):
    return dot_product_attention(q, k, v, mask=mask, causal=causal, impl="reference")

  np.testing.assert_allclose(fused(q, k, v), reference(q, k, v), atol=1e-5)
  loss = lambda f: lambda *a: jnp.sum(f(*a) ** 2)  # noqa: E731
  for g_fused, g_ref in zip(jax.grad(loss(fused), (0, 1, 2))(q, k, v),
                            jax.grad(loss(reference), (0, 1, 2))(q, k, v)):
    np.testing.assert_allclose(g_fused, g_ref, atol=1e-4)


def test_key_padding_is_found_only_in_key_masks():
  valid = jnp.ones((2, 5), bool)
  assert attention_lib.masks_lib.key_padding(valid[:, None, None, :], 2, 5).shape == (2, 5)
  assert attention_lib.masks_lib.key_padding(jnp.ones((2, 1, 5, 5), bool), 2, 5) is None
  assert attention_lib.masks_lib.key_padding(None, 2, 5) is None


def test_auto_on_a_gpu_logs_why_it_did_not_pick_cudnn(monkeypatch, caplog):
  """On a GPU (faked: the decision reads only jax.default_backend), a float32 call falls
  back to xla and says why, once per reason."""
  monkeypatch.setattr(attention_lib, "_on_gpu", lambda: True)
  monkeypatch.setattr(attention_lib, "_LOGGED", set())
  q = spec(2, 128, 4, 64, jnp.float32)
  with caplog.at_level("WARNING", logger="attn_research.attention"):
    assert choose_impl(q, q, q) == "xla"
    assert choose_impl(q, q, q) == "xla"
    assert choose_impl(spec(2, 128, 4, 64, jnp.bfloat16), q, q) != "cudnn"  # mixed dtypes
  messages = [r.getMessage() for r in caplog.records]
  assert messages[0] == ("attention impl='auto': not cuDNN because cuDNN attention needs "
                         "bfloat16 or float16 inputs; got float32; running 'xla'")
  assert len(messages) == 2  # the same reason is logged once
  monkeypatch.setattr(attention_lib, "_on_gpu", lambda: False)
  caplog.clear()
  choose_impl(spec(2, 64, 2, 8), spec(2, 64, 2, 8), spec(2, 64, 2, 8))
  assert not caplog.records  # on a CPU nothing is logged
