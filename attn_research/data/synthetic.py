"""Generated sequence tasks: any size, any length, reproducible from a seed."""
from __future__ import annotations

import numpy as np

from attn_research.data.base import (Task, TaskInfo, pad_batch, register_task,
                                     with_target_mask)

EVAL_STREAM = 2**31 - 1  # the eval set's generator stream, disjoint from training steps


class GeneratedTask(Task):
  """Batches drawn from make(rng, batch_size); training batch s uses rng (seed, s)."""

  def __init__(self, info, make, num_eval: int, data_seed: int):
    self.info, self.make, self.num_eval, self.data_seed = info, make, num_eval, data_seed
    self._eval = with_target_mask(make(np.random.default_rng([data_seed, EVAL_STREAM]), num_eval))

  def train_batch(self, step, batch_size, seed):
    return self.make(np.random.default_rng([self.data_seed, seed, step]), batch_size)

  def eval_batches(self, batch_size):
    for start in range(0, self.num_eval, batch_size):
      yield pad_batch({k: v[start:start + batch_size] for k, v in self._eval.items()},
                      batch_size)


COPY_DEFAULTS = dict(min_symbols=32, max_symbols=63, num_symbols=10, max_length=128,
                     num_eval=512, seed=0)


def make_copy_batch(rng, batch_size, *, min_symbols, max_symbols, num_symbols, max_length):
  """Sequences `0 x 0 x` (Katharopoulos et al. 2020, section 4.1), x of n symbols,
  n uniform in [min_symbols, max_symbols). Tokens: 0 separator, 1..num_symbols
  symbols, num_symbols + 1 padding. Decoder-only: inputs are the sequence, targets
  the next token; only the second copy of x is scored (target_mask)."""
  pad = num_symbols + 1
  n_B1 = rng.integers(min_symbols, max_symbols, size=(batch_size, 1))
  x_BN = rng.integers(1, num_symbols + 1, size=(batch_size, max_symbols))
  t = np.broadcast_to(np.arange(max_length + 1), (batch_size, max_length + 1))
  first, second = (t >= 1) & (t <= n_B1), (t >= n_B1 + 2) & (t <= 2 * n_B1 + 1)
  source = np.where(first, t - 1, np.where(second, t - n_B1 - 2, 0))
  symbols = np.take_along_axis(x_BN, source, axis=1)
  seq = np.where(first | second, symbols, np.where((t == 0) | (t == n_B1 + 1), 0, pad))
  t_in = t[:, :-1]
  return {"inputs": seq[:, :-1].astype(np.int32), "targets": seq[:, 1:].astype(np.int32),
          "mask": t_in <= 2 * n_B1 + 1,
          "target_mask": (t_in >= n_B1 + 1) & (t_in <= 2 * n_B1)}


@register_task("copy", COPY_DEFAULTS,
               smoke=dict(min_symbols=3, max_symbols=6, max_length=12, num_eval=16))
def copy(cfg):
  """The causal copy task of "Transformers are RNNs" (Katharopoulos et al. 2020, arXiv 2006.16236):
  10 symbols plus a separator, n in [32, 63), maximum length 128, loss on the second half."""
  lo, hi, T = cfg["min_symbols"], cfg["max_symbols"], cfg["max_length"]
  if not 1 <= lo < hi:
    raise ValueError(f"need 1 <= data.min_symbols < data.max_symbols; got {lo}, {hi}")
  if 2 * (hi - 1) + 2 > T + 1:
    raise ValueError(f"data.max_length={T} is too short for data.max_symbols={hi}: "
                     f"need max_length >= {2 * (hi - 1) + 1}")
  keys = ("min_symbols", "max_symbols", "num_symbols", "max_length")

  def make(rng, batch_size):
    return make_copy_batch(rng, batch_size, **{k: cfg[k] for k in keys})

  info = TaskInfo(input_kind="tokens", input_size=cfg["num_symbols"] + 2,
                  output_kind="sequence", num_classes=cfg["num_symbols"] + 2, max_length=T)
  return GeneratedTask(info, make, cfg["num_eval"], cfg["seed"])


RECALL_DEFAULTS = dict(num_pairs=16, num_queries=8, num_keys=32, num_values=32,
                       num_eval=512, seed=0)


def make_recall_batch(rng, batch_size, *, num_pairs, num_queries, num_keys, num_values):
  """Multi-query associative recall (after Arora et al. 2023, "Zoology"): num_pairs
  key-value pairs `k1 v1 k2 v2 ...`, then num_queries keys drawn from those pairs.
  Each query position is labelled with its key's value (a label per vector);
  every other position is unscored. Tokens: 0 padding (unused), 1..num_keys keys,
  num_keys + 1 .. num_keys + num_values values; labels are value indices 0..num_values-1.
  """
  keys = np.argsort(rng.random((batch_size, num_keys)), axis=1)[:, :num_pairs]  # distinct
  values = rng.integers(0, num_values, size=(batch_size, num_pairs))
  which = rng.integers(0, num_pairs, size=(batch_size, num_queries))
  T = 2 * num_pairs + num_queries
  inputs = np.zeros((batch_size, T), np.int32)
  inputs[:, 0:2 * num_pairs:2] = keys + 1
  inputs[:, 1:2 * num_pairs:2] = values + 1 + num_keys
  inputs[:, 2 * num_pairs:] = np.take_along_axis(keys, which, axis=1) + 1
  targets = np.zeros((batch_size, T), np.int32)
  targets[:, 2 * num_pairs:] = np.take_along_axis(values, which, axis=1)
  target_mask = np.zeros((batch_size, T), bool)
  target_mask[:, 2 * num_pairs:] = True
  return {"inputs": inputs, "mask": np.ones((batch_size, T), bool), "targets": targets,
          "target_mask": target_mask}


@register_task("associative_recall", RECALL_DEFAULTS,
               smoke=dict(num_pairs=4, num_queries=2, num_keys=8, num_values=8, num_eval=16))
def associative_recall(cfg):
  """Multi-query associative recall: which value was paired with this key?"""
  if not 1 <= cfg["num_pairs"] <= cfg["num_keys"]:
    raise ValueError(f"need 1 <= data.num_pairs <= data.num_keys (keys are distinct); got "
                     f"{cfg['num_pairs']}, {cfg['num_keys']}")
  if cfg["num_queries"] < 1 or cfg["num_values"] < 2:
    raise ValueError(f"need data.num_queries >= 1 and data.num_values >= 2; got "
                     f"{cfg['num_queries']}, {cfg['num_values']}")
  keys = ("num_pairs", "num_queries", "num_keys", "num_values")

  def make(rng, batch_size):
    return make_recall_batch(rng, batch_size, **{k: cfg[k] for k in keys})

  info = TaskInfo(input_kind="tokens", input_size=1 + cfg["num_keys"] + cfg["num_values"],
                  output_kind="per_vector", num_classes=cfg["num_values"],
                  max_length=2 * cfg["num_pairs"] + cfg["num_queries"])
  return GeneratedTask(info, make, cfg["num_eval"], cfg["seed"])


SORT_DEFAULTS = dict(length=16, num_symbols=16, num_eval=512, seed=0)


@register_task("sort", SORT_DEFAULTS, smoke=dict(length=6, num_symbols=5, num_eval=16))
def sort(cfg):
  """Sorting as per-vector labelling: position t is labelled with the t-th smallest
  input symbol. Every output depends on every input, so a model with a short
  receptive field (a shallow CNN) cannot solve it. Tokens 1..num_symbols (0 is
  padding, unused); labels 0..num_symbols-1."""
  T, V = cfg["length"], cfg["num_symbols"]
  if T < 2 or V < 2:
    raise ValueError(f"need data.length >= 2 and data.num_symbols >= 2; got {T}, {V}")

  def make(rng, batch_size):
    x = rng.integers(0, V, size=(batch_size, T))
    return {"inputs": (x + 1).astype(np.int32), "mask": np.ones((batch_size, T), bool),
            "targets": np.sort(x, axis=1).astype(np.int32)}

  info = TaskInfo(input_kind="tokens", input_size=V + 1, output_kind="per_vector",
                  num_classes=V, max_length=T)
  return GeneratedTask(info, make, cfg["num_eval"], cfg["seed"])
