"""The shared byte vocabulary of the text tasks: one table every text task can use, so an
encoder pretrained on one corpus fits every other text task (embedding rows and output
classes line up).

  0 .. 255   the bytes of the UTF-8 text (no fitting, decodes exactly)
  256        [PAD], the padding token fortunes has always used (text.PAD_BYTE)
  257        [MASK], what masked-token pretraining writes over a selected token

Bytes come first and the specials after them, so the fortunes task's byte vocabulary
(bytes + [PAD], 257 ids) is this table's first 257 rows: its tokens are unchanged by
`data.vocabulary="shared"`, only the table is one row longer. No [CLS] token: the
Transformer's cls pooling owns a learned vector instead (nn/heads.ClsToken), so a
[CLS] id would be a setting nothing reads.
"""
from __future__ import annotations

import numpy as np

NUM_BYTES = 256          # ids 0..255: real tokens, the only ones masking may select or draw
PAD = 256
MASK = 257
SIZE = 258               # rows of the embedding table, classes of a masked-token head
SPECIALS = {"[PAD]": PAD, "[MASK]": MASK}
VOCABULARIES = ("task", "shared")  # data.vocabulary: the task's own table, or this one


def encode(texts, max_length: int, pad: int = PAD):
  """Byte strings -> (tokens [N, max_length] int32 padded with `pad`, lengths [N]);
  each text is cut to its first max_length bytes."""
  tokens = np.full((len(texts), max_length), pad, np.int32)
  lengths = np.zeros(len(texts), np.int32)
  for i, text in enumerate(texts):
    row = np.frombuffer(text[:max_length], np.uint8)
    tokens[i, :len(row)] = row
    lengths[i] = len(row)
  return tokens, lengths


def decode(tokens) -> str:
  """Tokens -> text; specials are written by name ([MASK]), padding is dropped."""
  names = {v: k for k, v in SPECIALS.items()}
  out, run = [], []
  for t in np.asarray(tokens).tolist():
    if t < NUM_BYTES:
      run.append(t)
      continue
    out.append(bytes(run).decode("utf-8", errors="replace"))
    run = []
    if t != PAD:
      out.append(names.get(t, f"[{t}]"))
  out.append(bytes(run).decode("utf-8", errors="replace"))
  return "".join(out)
