"""ListOps, the hierarchical task of Long Range Arena (Tay et al. 2020, arXiv 2011.04006;
after Nangia & Bowman 2018).

An example is a bracketed expression over the digits 0-9, e.g.
`[MAX 4 3 [MIN 2 3 ] 1 0 [MED 1 5 8 9 2 ] ]`, whose value (0-9) is its label: one label
per sequence, 10 classes. Operators: MIN, MAX, MED (median; for an even count the mean
of the two middle values, rounded down) and SM (sum modulo 10). LRA's setting: depth
<= 10, <= 10 arguments per operator, lengths 500-2000 tokens, 96k / 2k / 2k examples;
Transformer 36.37 % accuracy.

Generation: a node below the maximum depth is an operator with probability
`operator_p` (else a digit), with 2..max_args arguments; the root is always an
operator. Trees are drawn until one's token count falls in [min_length, max_length]
(a draw is abandoned as soon as it passes max_length).

Splits: train and test (`num_train`, `num_eval`) come from one generator seeded by
`seed`, as they always did; `num_validation` > 0 adds a validation set drawn from a
second, independent stream (numpy's SeedSequence of (seed, 1): a held-out generator
seed), so choosing a checkpoint on it never looks at the test expressions.
`eval_split` says which of the two a run evaluates on ("test", or "validation" while
choosing; the test split is then scored once, by reproduce/protocol.test_eval).

Our tokens keep the closing bracket `]`; LRA's tokenizer dropped it (ANCHORS.md, "Long
Range Arena"), which makes its inputs harder to parse than ours.
"""
from __future__ import annotations

import time

import numpy as np

from attn_research.data.base import (ArrayTask, TaskInfo, check_eval_split, lengths_to_mask,
                                     register_task)
from attn_research.data.cache import cached_arrays, data_dir

OPERATORS = ("MIN", "MAX", "MED", "SM")
# Token ids: 0 padding, 1..10 the digits 0..9, then one token per operator, then "]".
PAD = 0
DIGIT0 = 1
OP0 = DIGIT0 + 10
CLOSE = OP0 + len(OPERATORS)
VOCAB = CLOSE + 1
WORDS = (["<pad>"] + [str(d) for d in range(10)] + [f"[{op}" for op in OPERATORS] + ["]"])


def apply(op: str, values):
  if op == "MIN":
    return min(values)
  if op == "MAX":
    return max(values)
  if op == "MED":
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) // 2
  if op == "SM":
    return sum(values) % 10
  raise ValueError(f"unknown ListOps operator {op!r}")


class _TooLong(Exception):
  pass


def random_tree(rng, depth, *, max_depth, max_args, operator_p, root=False, budget=None):
  """(tokens, value, depth reached) of a random subtree. budget: a one-element list
  holding how many more tokens may be emitted; a draw that exceeds it is abandoned
  (raises _TooLong) instead of being grown to full size and then rejected."""
  def emit(n):
    if budget is not None:
      budget[0] -= n
      if budget[0] < 0:
        raise _TooLong

  if not root and (depth >= max_depth or rng.random() >= operator_p):
    emit(1)
    d = int(rng.integers(10))
    return [DIGIT0 + d], d, depth
  emit(2)  # the operator and its closing bracket
  op = int(rng.integers(len(OPERATORS)))
  tokens, values, deepest = [OP0 + op], [], depth
  for _ in range(int(rng.integers(2, max_args + 1))):
    sub_tokens, value, sub_depth = random_tree(rng, depth + 1, max_depth=max_depth,
                                               max_args=max_args, operator_p=operator_p,
                                               budget=budget)
    tokens += sub_tokens
    values.append(value)
    deepest = max(deepest, sub_depth)
  return tokens + [CLOSE], apply(OPERATORS[op], values), deepest


def generate(rng, n, *, min_length, max_length, max_depth, max_args, operator_p,
             max_tries=1_000_000):
  """n examples with lengths in [min_length, max_length]: (tokens [n, max_length], lengths, labels)."""
  tokens = np.full((n, max_length), PAD, np.int32)
  lengths, labels = np.zeros(n, np.int32), np.zeros(n, np.int32)
  done = tries = 0
  while done < n:
    tries += 1
    if tries > max_tries:
      raise RuntimeError(f"ListOps: {max_tries} draws gave only {done} trees of length "
                         f"{min_length}-{max_length}; widen the range or change operator_p")
    try:
      seq, value, _ = random_tree(rng, 1, max_depth=max_depth, max_args=max_args,
                                  operator_p=operator_p, root=True, budget=[max_length])
    except _TooLong:
      continue
    if len(seq) >= min_length:
      tokens[done, :len(seq)] = seq
      lengths[done], labels[done] = len(seq), value
      done += 1
  return tokens, lengths, labels


def to_string(tokens) -> str:
  """Token ids -> the bracket string, e.g. '[MAX 4 3 [MIN 2 3 ] 1 0 ]' (padding dropped)."""
  return " ".join(WORDS[t] for t in tokens if t != PAD)


EVAL_SPLITS = ("test", "validation")  # data.eval_split
VALIDATION_STREAM = 1  # the validation set's generator: SeedSequence((seed, VALIDATION_STREAM))
DEFAULTS = dict(min_length=500, max_length=2000, max_depth=10, max_args=10, operator_p=0.25,
                num_train=4000, num_eval=500, num_validation=0, eval_split="test", seed=0,
                dir=None)
SMOKE = dict(min_length=10, max_length=40, max_depth=3, max_args=4, num_train=64, num_eval=16,
             num_validation=16)


class ListOpsTask(ArrayTask):
  def render(self, example, out_dir):
    del out_dir
    return f"{to_string(example['inputs'])}  = {int(example['targets'])}"


@register_task("listops", DEFAULTS, smoke=SMOKE)
def listops(cfg):
  """LRA ListOps, generated with a seed and cached in the data directory."""
  if not 1 <= cfg["min_length"] <= cfg["max_length"]:
    raise ValueError(f"need 1 <= data.min_length <= data.max_length; got "
                     f"{cfg['min_length']}, {cfg['max_length']}")
  if cfg["max_depth"] < 1 or cfg["max_args"] < 2:
    raise ValueError(f"need data.max_depth >= 1 and data.max_args >= 2; got "
                     f"{cfg['max_depth']}, {cfg['max_args']}")
  if not 0 < cfg["operator_p"] < 1:
    raise ValueError(f"data.operator_p={cfg['operator_p']} must be in (0, 1)")
  if not isinstance(cfg["num_validation"], int) or cfg["num_validation"] < 0:
    raise ValueError(f"data.num_validation={cfg['num_validation']!r} must be an int >= 0")
  check_eval_split(cfg["eval_split"], EVAL_SPLITS, got=cfg["num_validation"],
                   needs="data.num_validation > 0 (the expressions drawn from the held-out "
                   "generator seed)")
  keys = ("min_length", "max_length", "max_depth", "max_args", "operator_p")
  params = {k: cfg[k] for k in keys + ("num_train", "num_eval", "seed")}
  params["generator"] = 2  # bump when the generator changes: old caches are then rebuilt
  if cfg["num_validation"]:  # absent when 0: the caches made before validation sets stay valid
    params["num_validation"] = cfg["num_validation"]
  # Which split a run evaluates on is not part of the cache: one file holds all three.
  stored = ("train", "eval", "validation") if cfg["num_validation"] else ("train", "eval")

  def build():
    t0 = time.perf_counter()
    rng = np.random.default_rng(cfg["seed"])
    streams = {"train": rng, "eval": rng,
               "validation": np.random.default_rng((cfg["seed"], VALIDATION_STREAM))}
    out = {}
    for split in stored:
      tokens, lengths, labels = generate(streams[split], cfg[f"num_{split}"],
                                         **{k: cfg[k] for k in keys})
      out.update({f"{split}_tokens": tokens, f"{split}_lengths": lengths,
                  f"{split}_labels": labels})
    print(f"[data] listops: {' + '.join(str(cfg[f'num_{s}']) for s in stored)} trees "
          f"({'/'.join(stored)}) of {cfg['min_length']}-{cfg['max_length']} tokens in "
          f"{time.perf_counter() - t0:.1f} s")
    return out

  arrays = cached_arrays(data_dir(cfg["dir"]), "listops", params, build)
  splits = {}
  chosen = {"train": "train", "eval": "eval" if cfg["eval_split"] == "test" else "validation"}
  for split, name in chosen.items():
    tokens = arrays[f"{name}_tokens"]
    splits[split] = {"inputs": tokens,
                     "mask": lengths_to_mask(arrays[f"{name}_lengths"], tokens.shape[1]),
                     "targets": arrays[f"{name}_labels"]}
  info = TaskInfo(input_kind="tokens", input_size=VOCAB, output_kind="per_sequence",
                  num_classes=10, max_length=cfg["max_length"], train_size=cfg["num_train"])
  return ListOpsTask(info, splits["train"], splits["eval"])
