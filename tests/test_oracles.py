"""Layers against oracles that share no code with them: numpy formulas, decoding one
prefix at a time, and a model whose position encoding is written out by hand.

The layers come out of models built from the registry (get_model), so these tests check
what a trained model computes, not a kernel called on its own.
"""
import dataclasses
import math

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attn_research.data import get_task
from attn_research.models import get_model
from tests.conftest import make_config

D_MODEL, HEADS, T = 8, 2, 7


def build(spec="experiments/base.py:smoke", task_info=None, **overrides):
  """(config, task info, model) of spec with overrides, parameters drawn from seed 0."""
  config = make_config(spec, **overrides)
  info = task_info or get_task(config.data).info
  return config, info, nnx.jit(lambda: get_model(config.model, info, rngs=nnx.Rngs(0)))()


@pytest.fixture(scope="module")
def sort_info():
  """A token task with a label per vector (sort): its models run full self-attention."""
  return get_task(make_config("experiments/base.py:smoke", data__name="sort").data).info


def attention_layer(sort_info, causal=False, **model):
  """The first self-attention layer of a tiny Transformer (d_model 8, 2 heads)."""
  info = dataclasses.replace(sort_info, output_kind="sequence" if causal else "per_vector")
  settings = dict(model__d_model=D_MODEL, model__num_heads=HEADS, model__num_layers=1,
                  **{f"model__{k}": v for k, v in model.items()})
  _, _, m = build("experiments/base.py:smoke", info, data__name="sort", **settings)
  return m.blocks[0].attn


def inputs(seed, length=T, lengths=(T, 4)):
  """x [B, length, d] and a mask whose rows hold `lengths` real vectors (padding last)."""
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(len(lengths), length, D_MODEL)).astype(np.float32)
  mask = np.arange(length)[None] < np.asarray(lengths)[:, None]
  return x, mask


def projections(layer, x):
  """q, k, v [B, T, H, Dh] and the output map, from the layer's own parameters, in numpy."""
  def lin(p, x):
    return np.einsum("btd,dhe->bthe", x, np.asarray(p.kernel[...])) + np.asarray(p.bias[...])
  w_o, b_o = np.asarray(layer.out.kernel[...]), np.asarray(layer.out.bias[...])
  return (lin(layer.query, x), lin(layer.key, x), lin(layer.value, x),
          lambda o_BTHD: np.einsum("bthe,hed->btd", o_BTHD, w_o) + b_o)


def run_layer(layer, x, mask):
  """(output, weights) with the maps; output again on the layer's fast path."""
  @nnx.jit
  def both(layer, x, mask):
    return layer(x, mask, return_weights=True), layer(x, mask)
  (y_maps, weights), y_fast = both(layer, jnp.asarray(x), jnp.asarray(mask))
  return np.asarray(y_maps), np.asarray(weights), np.asarray(y_fast)


def check_map(layer, x, mask, a_BHTS):
  """The layer's weights are a_BHTS and its output is a_BHTS @ V through W^o."""
  q, k, v, out = projections(layer, x)
  y_maps, weights, y_fast = run_layer(layer, x, mask)
  np.testing.assert_allclose(weights, a_BHTS, rtol=2e-4, atol=1e-6)
  want = out(np.einsum("bhts,bshe->bthe", a_BHTS, v))
  np.testing.assert_allclose(y_maps, want, rtol=2e-4, atol=2e-5)
  np.testing.assert_allclose(y_fast, want, rtol=2e-4, atol=2e-5)


# ------------------------------------------------------------ linear and Performer maps

@pytest.mark.parametrize("causal", [False, True])
def test_linear_attention_map_and_output_match_numpy(sort_info, causal):
  layer = attention_layer(sort_info, causal, attention="linear", position="none")
  x, mask = inputs(0)
  q, k, _, _ = projections(layer, x)
  phi = lambda z: np.where(z > 0, z + 1.0, np.exp(z))  # noqa: E731  elu(z) + 1
  a = np.einsum("bthd,bshd->bhts", phi(q), phi(k) * mask[:, :, None, None])
  if causal:
    a = a * np.tril(np.ones((T, T)))
  a = a / (a.sum(-1, keepdims=True) + 1e-6)  # the kernel's eps in the normaliser
  assert np.all(a[1][..., 4:] == 0)  # padded keys weigh nothing
  check_map(layer, x, mask, a)


@pytest.mark.parametrize("causal", [False, True])
def test_performer_map_and_output_match_numpy(sort_info, causal):
  """FAVOR+ features phi(x) = exp(W x' - |x'|^2 / 2) / sqrt(M), x' = x D^-1/4, written
  without the kernel's stabilising maxima (they cancel in the row normalisation)."""
  layer = attention_layer(sort_info, causal, attention="performer:16", position="none")
  w_MD = np.asarray(layer.kernel.projection_MD[...], np.float64)
  M, Dh = w_MD.shape
  assert (M, Dh) == (16, D_MODEL // HEADS)
  x, mask = inputs(1)
  q, k, _, _ = projections(layer, x)

  def phi(z):
    z = z * Dh ** -0.25
    return np.exp(z @ w_MD.T - 0.5 * (z * z).sum(-1, keepdims=True)) / math.sqrt(M)

  a = np.einsum("bthm,bshm->bhts", phi(q), phi(k) * mask[:, :, None, None])
  if causal:
    a = a * np.tril(np.ones((T, T)))
  a = a / a.sum(-1, keepdims=True)
  check_map(layer, x, mask, a)


# ------------------------------------------------------------ relative position biases

def t5_bucket(rel, bidirectional, num_buckets=32, max_distance=128):
  """Mesh TensorFlow's relative_position_bucket, one offset j - i at a time."""
  n, offset = -rel, 0
  if bidirectional:
    num_buckets //= 2
    offset = num_buckets if n < 0 else 0
    n = abs(n)
  else:
    n = max(n, 0)
  exact = num_buckets // 2
  if n < exact:
    return offset + n
  large = exact + int(math.log(n / exact) / math.log(max_distance / exact)
                      * (num_buckets - exact))
  return offset + min(large, num_buckets - 1)


@pytest.mark.parametrize("causal", [False, True])
def test_relative_position_attention_matches_numpy(sort_info, causal):
  """softmax(q k^T / sqrt(d) + table[bucket(j - i)], masked) v, with offsets up to 17:
  past T5's exact buckets (8 per direction bidirectional, 16 causal) into the
  log-spaced ones."""
  length = 18
  layer = attention_layer(sort_info, causal, position="relative")
  table = np.random.default_rng(2).normal(size=layer.position.table_NH[...].shape) * 2
  layer.position.table_NH[...] = jnp.asarray(table, jnp.float32)
  x, mask = inputs(3, length, lengths=(length, 11))
  q, k, _, _ = projections(layer, x)
  buckets = np.array([[t5_bucket(j - i, not causal) for j in range(length)]
                      for i in range(length)])
  s = np.einsum("bthd,bshd->bhts", q, k) / math.sqrt(D_MODEL // HEADS)
  s = s + np.transpose(table[buckets], (2, 0, 1))[None]
  causal_TS = np.tril(np.ones((length, length), bool)) if causal else True
  s = np.where(mask[:, None, None, :] & causal_TS, s, -np.inf)
  a = np.exp(s - s.max(-1, keepdims=True))
  check_map(layer, x, mask, a / a.sum(-1, keepdims=True))


# -------------------------------------------------------------------- seq2seq decoding

def test_teacher_forced_logits_equal_prefix_by_prefix_greedy_decoding():
  """Decoding one prefix at a time (the decoder sees only tokens it has produced) gives
  at every position the logits that one teacher-forced call on those tokens gives."""
  config, info, model = build("experiments/reverse.py:smoke")
  task = get_task(config.data)
  batch = task.train_batch(0, 3, 0)
  src, src_mask = jnp.asarray(batch["inputs"]), jnp.asarray(batch["mask"])
  start = int(batch["decoder_inputs"][0, 0])
  steps = batch["targets"].shape[1]

  @nnx.jit
  def logits_of(model, decoder_inputs):
    return model(src, src_mask, decoder_inputs=decoder_inputs)

  tokens = np.full((3, 1), start, np.int32)
  prefix_logits = []
  for _ in range(steps):  # each call sees the prefix only: no position after it exists
    last = np.asarray(logits_of(model, jnp.asarray(tokens)))[:, -1]
    prefix_logits.append(last)
    tokens = np.concatenate([tokens, last.argmax(-1)[:, None].astype(np.int32)], 1)
  forced = np.asarray(logits_of(model, jnp.asarray(tokens[:, :-1])))
  np.testing.assert_allclose(forced, np.stack(prefix_logits, 1), rtol=1e-4, atol=1e-5)
  # Another decoder input at position 2 changes the logits from position 2 on, and only
  # those (the comparison above can fail).
  other = tokens[:, :-1].copy()
  other[:, 2] = (other[:, 2] % (info.num_classes - 1)) + 1
  changed = np.asarray(logits_of(model, jnp.asarray(other)))
  np.testing.assert_allclose(changed[:, :2], forced[:, :2], rtol=1e-4, atol=1e-5)
  assert np.abs(changed[:, 2:] - forced[:, 2:]).max(axis=(0, 2)).min() > 1e-4


# ------------------------------------------------------------------------------ FLOATER

def sinusoid_np(length, d):
  """PE[t, 2i] = sin(t / 10000^(2i/d)), PE[t, 2i+1] = cos(same), in float64."""
  angle = np.arange(length)[:, None] / 10000.0 ** (2 * np.arange(d // 2) / d)
  pe = np.zeros((length, d))
  pe[:, 0::2], pe[:, 1::2] = np.sin(angle), np.cos(angle)
  return pe


def test_floater_with_zero_dynamics_is_the_model_with_its_initial_encoding():
  """h = 0 (W2 = 0, b2 = 0; W1, b1 random) keeps p(t) = p(0): the model then adds the
  sinusoidal encoding plus p0[0] before its first block and p0[1] before its second."""
  config, info, model = build(model__position="floater", model__num_layers=2)
  pos = model.position
  d = config.model.d_model
  rng = np.random.default_rng(4)
  pos.w2[...] = jnp.zeros_like(pos.w2[...])
  pos.b2[...] = jnp.zeros_like(pos.b2[...])
  pos.b1[...] = jnp.asarray(rng.normal(size=pos.b1[...].shape), jnp.float32)
  p0 = rng.normal(size=(2, d))
  pos.p0_ND[...] = jnp.asarray(p0, jnp.float32)
  batch = get_task(config.data).train_batch(0, 4, 0)
  x, mask = jnp.asarray(batch["inputs"]), jnp.asarray(batch["mask"])
  length = x.shape[1]

  @nnx.jit
  def floater_and_by_hand(model, x, mask):
    h = model.embed(x) + jnp.asarray(sinusoid_np(length, d) + p0[0], jnp.float32)
    h = model.blocks[0](h, mask)
    h = model.blocks[1](h + jnp.asarray(p0[1], jnp.float32), mask)
    return model(x, mask), model.head(h, mask)

  got, want = floater_and_by_hand(model, x, mask)
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-4, atol=1e-5)
