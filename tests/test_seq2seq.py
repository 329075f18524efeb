"""The reverse task and the encoder-decoder Transformer: batch contract, shapes, decoder
causality and source dependence by gradients, source padding, parameter count, refusals."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attn_research.data import get_task
from attn_research.data.seq2seq import reverse_tokens
from attn_research.models import count_params, get_model

SMOKE = dict(name="reverse", min_symbols=2, max_symbols=5, num_symbols=4, num_eval=16)
TINY = dict(name="encoder_decoder", d_model=16, encoder_layers=1, decoder_layers=1,
            num_heads=2, mlp_ratio=2, attention_impl="reference")


@pytest.fixture(scope="module")
def task():
  return get_task(SMOKE)


@pytest.fixture(scope="module")
def model(task):
  # Built under one jit: eager initialisation would compile every initializer apart.
  return nnx.jit(lambda: get_model(TINY, task.info))()


@pytest.fixture(scope="module")
def forward(model):
  """model(inputs, mask, decoder_inputs=), compiled once per shape."""
  return jax.jit(lambda inputs, mask, dec: model(inputs, mask, decoder_inputs=dec))


@pytest.fixture(scope="module")
def batch(task):
  return task.train_batch(0, 8, seed=0)


def _shortest(batch):
  """(row, n) of the shortest source in batch: one with padding (n < S = 4)."""
  lengths = batch["mask"].sum(1)
  row = int(np.argmin(lengths))
  assert lengths[row] < batch["mask"].shape[1]
  return row, int(lengths[row])


def test_reverse_batches_hold_the_reversed_source(task):
  b = task.train_batch(3, 32, seed=0)
  start, end, vocab = reverse_tokens(SMOKE["num_symbols"])
  assert b["inputs"].shape == b["mask"].shape == (32, 4)
  for key in ("decoder_inputs", "targets", "target_mask"):
    assert b[key].shape == (32, 5), key
  assert task.info.seq2seq and task.info.num_classes == vocab == 7
  lengths = b["mask"].sum(1)
  assert set(lengths.tolist()) == {2, 3, 4}  # n in [min_symbols, max_symbols)
  for i, n in enumerate(lengths):
    src = b["inputs"][i, :n]
    assert ((src >= 1) & (src <= SMOKE["num_symbols"])).all()
    np.testing.assert_array_equal(b["targets"][i, :n + 1], list(src[::-1]) + [end])
    np.testing.assert_array_equal(b["decoder_inputs"][i, :n + 1], [start] + list(src[::-1]))
    assert b["target_mask"][i].tolist() == [t <= n for t in range(5)]
    assert not b["mask"][i, n:].any() and (b["inputs"][i, n:] == 0).all()
  # A pure function of (seed, step); the eval set is fixed by data.seed.
  np.testing.assert_array_equal(task.train_batch(3, 32, seed=0)["inputs"], b["inputs"])
  assert not np.array_equal(task.train_batch(4, 32, seed=0)["inputs"], b["inputs"])
  first = next(task.eval_batches(16))
  np.testing.assert_array_equal(next(get_task(SMOKE).eval_batches(16))["inputs"],
                                first["inputs"])
  assert not np.array_equal(next(get_task(dict(SMOKE, seed=1)).eval_batches(16))["inputs"],
                            first["inputs"])


def test_logits_cover_every_target_position(forward, batch):
  logits = forward(batch["inputs"], batch["mask"], batch["decoder_inputs"])
  assert logits.shape == (8, 5, 7)
  assert np.isfinite(np.asarray(logits)).all()


def _dependence(fn, x):
  """[T, S]: the norm of d fn(x)[0, t] / d x[0, s] (batch of one)."""
  jac = jax.jit(jax.jacrev(fn))(x)  # [1, T, V, 1, S, D]
  return np.asarray(jnp.sqrt((jac[0, :, :, 0] ** 2).sum(axis=(1, 3))))


def test_decoder_is_causal(model, batch):
  inputs, mask = batch["inputs"][1:2], batch["mask"][1:2]
  y = model.target_embed(batch["decoder_inputs"][1:2])
  dep = _dependence(lambda y: model.decode(y, model.encode(model.source_embed(inputs), mask),
                                           mask), y)
  past = np.tril(np.ones((5, 5), bool))  # position t reads decoder inputs 0..t
  assert (dep[past] > 1e-6).all(), dep
  assert (dep[~past] == 0).all(), dep


def test_every_target_reads_every_real_source_position_and_no_padding(model, forward, batch):
  row, n = _shortest(batch)
  rows = slice(row, row + 1)
  mask, dec = batch["mask"][rows], batch["decoder_inputs"][rows]
  x = model.source_embed(batch["inputs"][rows])
  dep = _dependence(lambda x: model.decode(model.target_embed(dec), model.encode(x, mask), mask), x)
  assert (dep[:, :n] > 1e-6).all(), dep
  assert (dep[:, n:] == 0).all(), dep
  # Changing a padded source token leaves the logits alone; a real one changes them.
  logits = forward(batch["inputs"][rows], mask, dec)
  for position, changes in ((n, False), (3, False), (0, True), (n - 1, True)):
    inputs = batch["inputs"][rows].copy()
    inputs[0, position] = inputs[0, position] % SMOKE["num_symbols"] + 1  # another symbol
    changed = forward(inputs, mask, dec)
    assert bool(np.abs(np.asarray(changed - logits)).max() > 1e-5) == changes, position


def test_parameter_count_matches_a_hand_count(model):
  d, hidden, vocab, length = 16, 32, 7, 5   # mlp_ratio 2; max_length = max_symbols
  attention = 4 * (d * d + d)               # W^q, W^k, W^v, W^o with biases
  mlp = d * hidden + hidden + hidden * d + d
  layer_norm = 2 * d
  encoder_block = 2 * layer_norm + attention + mlp
  decoder_block = 3 * layer_norm + 2 * attention + mlp  # self- and cross-attention
  embeddings = 2 * vocab * d + 2 * length * d           # tokens and learned positions
  head = layer_norm + d * vocab + vocab
  expected = embeddings + encoder_block + layer_norm + decoder_block + head
  assert count_params(model) == expected == 6135


def test_refusals_name_the_task_kind_and_the_right_model(task):
  copy_info = get_task(dict(name="copy", min_symbols=3, max_symbols=6, max_length=12,
                            num_eval=4)).info
  with pytest.raises(ValueError, match="needs a seq2seq task.*output kind 'sequence'"):
    get_model(TINY, copy_info)
  with pytest.raises(ValueError, match="seq2seq.*model.name=encoder_decoder"):
    get_model(dict(name="transformer", d_model=16, num_layers=1, num_heads=2), task.info)
  with pytest.raises(ValueError, match="model.position='rotary' is not valid"):
    get_model(dict(TINY, position="rotary"), task.info)
