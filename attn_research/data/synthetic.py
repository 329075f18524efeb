"""Generated sequence tasks: any size, any length, reproducible from a seed."""
from __future__ import annotations

import numpy as np

from attn_research.data.base import (Task, TaskInfo, check_eval_split, pad_batch, register_task,
                                     with_target_mask)

EVAL_STREAM = 2**31 - 1  # the eval set's generator stream, disjoint from training steps


class GeneratedTask(Task):
  """Batches drawn from make(rng, batch_size); training batch s uses rng (seed, s)."""

  def __init__(self, info, make, num_eval: int, data_seed: int, eval_stream: int = EVAL_STREAM):
    self.info, self.make, self.num_eval, self.data_seed = info, make, num_eval, data_seed
    self._eval = with_target_mask(make(np.random.default_rng([data_seed, eval_stream]), num_eval))

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


FILLER_RECALL_DEFAULTS = dict(num_pairs=4, num_queries=4, num_keys=16, num_values=8, length=24,
                              num_eval=512, eval_split="test", seed=0)
# Generator streams of the two held-out sets (training steps use (seed, run seed, step)).
RECALL_SPLITS = {"test": EVAL_STREAM, "validation": EVAL_STREAM - 1}


def make_filler_recall_batch(rng, batch_size, *, num_pairs, num_queries, num_keys, num_values,
                             length):
  """Associative recall whose length grows by filler, not by pairs: num_pairs adjacent
  `key value` pairs placed at random among filler tokens in the first length -
  num_queries positions, then num_queries keys drawn from those pairs, each labelled with
  its key's value (the other positions unscored). A longer sequence has the same pairs
  and queries and only more filler, so evaluating at 2L or 4L changes positions and
  distances, not how many distractors there are. Tokens: 0 padding (unused), 1..num_keys
  keys, then num_values values, then one filler token; labels are value indices.
  """
  context = length - num_queries
  units = context - num_pairs  # each pair is one unit of two positions, each filler one
  # Which units are pairs, in order: pair j starts at its unit index + j (the j pairs
  # before it each take one extra position).
  unit_BP = np.sort(np.argsort(rng.random((batch_size, units)), axis=1)[:, :num_pairs], axis=1)
  start_BP = unit_BP + np.arange(num_pairs)
  keys = np.argsort(rng.random((batch_size, num_keys)), axis=1)[:, :num_pairs]  # distinct
  values = rng.integers(0, num_values, size=(batch_size, num_pairs))
  which = rng.integers(0, num_pairs, size=(batch_size, num_queries))
  inputs = np.full((batch_size, length), 1 + num_keys + num_values, np.int32)  # filler
  rows = np.arange(batch_size)[:, None]
  inputs[rows, start_BP] = keys + 1
  inputs[rows, start_BP + 1] = values + 1 + num_keys
  inputs[:, context:] = np.take_along_axis(keys, which, axis=1) + 1
  targets = np.zeros((batch_size, length), np.int32)
  targets[:, context:] = np.take_along_axis(values, which, axis=1)
  target_mask = np.zeros((batch_size, length), bool)
  target_mask[:, context:] = True
  return {"inputs": inputs, "mask": np.ones((batch_size, length), bool), "targets": targets,
          "target_mask": target_mask}


@register_task("associative_recall_filler", FILLER_RECALL_DEFAULTS,
               smoke=dict(num_pairs=2, num_queries=2, num_keys=4, num_values=4, length=8,
                          num_eval=16))
def associative_recall_filler(cfg):
  """Associative recall with a fixed number of pairs and filler that sets the length
  (make_filler_recall_batch): the length-extrapolation task where only position changes.
  eval_split "test" or "validation": two held-out sets from disjoint generator streams."""
  P, Q, K, V, T = (cfg[k] for k in ("num_pairs", "num_queries", "num_keys", "num_values",
                                    "length"))
  if not 1 <= P <= K:
    raise ValueError(f"need 1 <= data.num_pairs <= data.num_keys (keys are distinct); got {P}, {K}")
  if Q < 1 or V < 2:
    raise ValueError(f"need data.num_queries >= 1 and data.num_values >= 2; got {Q}, {V}")
  if T < 2 * P + Q:
    raise ValueError(f"data.length={T} cannot hold {P} pairs and {Q} queries: need length >= "
                     f"{2 * P + Q}")
  check_eval_split(cfg["eval_split"], RECALL_SPLITS)
  keys = ("num_pairs", "num_queries", "num_keys", "num_values", "length")

  def make(rng, batch_size):
    return make_filler_recall_batch(rng, batch_size, **{k: cfg[k] for k in keys})

  info = TaskInfo(input_kind="tokens", input_size=K + V + 2, output_kind="per_vector",
                  num_classes=V, max_length=T)
  return GeneratedTask(info, make, cfg["num_eval"], cfg["seed"],
                       eval_stream=RECALL_SPLITS[cfg["eval_split"]])


def filler_recall_blind_rate(batch, *, num_keys: int, num_values: int) -> float:
  """The accuracy of the best guess that ignores positions, over a filler-recall batch's
  scored queries: without positions a key cannot be bound to its value, so the best guess
  is the commonest value among the sequence's pairs (a tie split evenly). Pairs are fixed
  at every length, so this rate is too: a model at it has not used position."""
  tokens = batch["inputs"] - 1 - num_keys  # value indices where the token is a value
  is_value = (tokens >= 0) & (tokens < num_values)
  counts_BV = np.stack([(is_value & (tokens == v)).sum(1) for v in range(num_values)], 1)
  top_BV = counts_BV == counts_BV.max(1, keepdims=True)
  share_BV = top_BV / top_BV.sum(1, keepdims=True)
  scored = batch["target_mask"] & batch.get("mask", np.ones_like(batch["target_mask"]))
  rows, cols = np.nonzero(scored)
  return float(share_BV[rows, batch["targets"][rows, cols]].mean())
