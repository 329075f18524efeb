"""Generated source -> target tasks for encoder-decoder models (TaskInfo.seq2seq).

`reverse`: the source is n random symbols, the target the same symbols reversed and an
end token, the sequence-to-sequence setting of "Attention Is All You Need" (Vaswani et
al. 2017, arXiv 1706.03762) on a toy task. The decoder is trained with teacher forcing:
decoder_inputs are a start token followed by the target shifted right by one.
"""
from __future__ import annotations

import numpy as np

from attn_research.data.base import TaskInfo, register_task
from attn_research.data.synthetic import GeneratedTask

REVERSE_DEFAULTS = dict(min_symbols=8, max_symbols=17, num_symbols=10, num_eval=512, seed=0)
PAD = 0  # tokens: 0 padding, 1..num_symbols symbols, then the start and end tokens


def reverse_tokens(num_symbols: int):
  """(start, end, vocabulary size) of the reverse task with num_symbols symbols."""
  return num_symbols + 1, num_symbols + 2, num_symbols + 3


def make_reverse_batch(rng, batch_size, *, min_symbols, max_symbols, num_symbols):
  """Source x of n symbols (n uniform in [min_symbols, max_symbols)), padded to
  S = max_symbols - 1; target reverse(x) + end, padded to T' = max_symbols."""
  start, end, _ = reverse_tokens(num_symbols)
  S, T = max_symbols - 1, max_symbols
  n_B1 = rng.integers(min_symbols, max_symbols, size=(batch_size, 1))
  x_BS = rng.integers(1, num_symbols + 1, size=(batch_size, S))
  mask_BS = np.arange(S)[None, :] < n_B1
  t_BT = np.broadcast_to(np.arange(T), (batch_size, T))
  # target position t < n holds x[n - 1 - t]; position n the end token.
  source_index = np.clip(n_B1 - 1 - t_BT, 0, S - 1)
  reversed_BT = np.take_along_axis(x_BS, source_index, axis=1)
  targets_BT = np.where(t_BT < n_B1, reversed_BT, np.where(t_BT == n_B1, end, PAD))
  decoder_inputs_BT = np.concatenate(
      [np.full((batch_size, 1), start), targets_BT[:, :-1]], axis=1)
  target_mask_BT = t_BT <= n_B1
  return {"inputs": np.where(mask_BS, x_BS, PAD).astype(np.int32), "mask": mask_BS,
          "decoder_inputs": np.where(target_mask_BT, decoder_inputs_BT, PAD).astype(np.int32),
          "targets": targets_BT.astype(np.int32), "target_mask": target_mask_BT}


@register_task("reverse", REVERSE_DEFAULTS,
               smoke=dict(min_symbols=2, max_symbols=5, num_symbols=4, num_eval=16))
def reverse(cfg):
  """Reverse a random sequence of 8-16 symbols (10 symbols), scored on every target token
  (the end token included); an encoder-decoder task (model.name=encoder_decoder)."""
  lo, hi, V = cfg["min_symbols"], cfg["max_symbols"], cfg["num_symbols"]
  if not 1 <= lo < hi:
    raise ValueError(f"need 1 <= data.min_symbols < data.max_symbols; got {lo}, {hi}")
  if V < 2:
    raise ValueError(f"data.num_symbols={V} must be >= 2")
  keys = ("min_symbols", "max_symbols", "num_symbols")

  def make(rng, batch_size):
    return make_reverse_batch(rng, batch_size, **{k: cfg[k] for k in keys})

  vocab = reverse_tokens(V)[2]
  info = TaskInfo(input_kind="tokens", input_size=vocab, output_kind="sequence",
                  num_classes=vocab, max_length=hi, seq2seq=True)
  return GeneratedTask(info, make, cfg["num_eval"], cfg["seed"])
