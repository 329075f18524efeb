"""Recurrent baseline: stacked LSTM or GRU, one- or two-directional (flax's cells).

An RNN reads the vectors one after another: it cannot be parallelised over the
sequence and must carry information through its state. Sequences are taken as
right-padded (real vectors first, as every task here produces them); the mask
gives each sequence's length, so the backward direction starts at its last real
vector.
"""
from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from attn_research.models.common import SequenceModel, is_causal
from attn_research.models.registry import register_model
from attn_research.registry import check_choice

CELLS = {"lstm": nnx.LSTMCell, "gru": nnx.GRUCell}
DEFAULTS = dict(d_model=64, num_layers=2, cell="lstm", bidirectional=True, dropout=0.0)


@register_model("rnn", DEFAULTS)
class RNN(SequenceModel):
  """d_model is the output width of every layer; a bidirectional layer has d_model // 2 per direction."""

  def __init__(self, cfg, task_info, rngs):
    check_choice("model.cell", cfg["cell"], CELLS)
    d, bidir = cfg["d_model"], cfg["bidirectional"]
    if bidir and is_causal(task_info):
      raise ValueError("model.bidirectional=True reads the future, but this task's outputs are "
                       "a causal sequence; set model.bidirectional=False")
    if bidir and d % 2:
      raise ValueError(f"model.d_model={d} must be even for a bidirectional RNN")
    super().__init__(cfg, task_info, d, rngs=rngs)
    cell = CELLS[cfg["cell"]]
    hidden = d // 2 if bidir else d

    def make_rnn():
      # rngs=False: the carry is passed in (zeros), so no RNG stream is consumed.
      return nnx.RNN(cell(d, hidden, rngs=rngs), rngs=False)

    self.layers = nnx.List([
        nnx.Bidirectional(make_rnn(), make_rnn(), rngs=False) if bidir else make_rnn()
        for _ in range(cfg["num_layers"])])
    self.dropout = nnx.Dropout(cfg["dropout"], rngs=rngs)
    self.lstm, self.hidden, self.bidirectional = cfg["cell"] == "lstm", hidden, bidir

  def _zero_carry(self, batch_size):
    h = jnp.zeros((batch_size, self.hidden), jnp.float32)
    carry = (h, h) if self.lstm else h
    return (carry, carry) if self.bidirectional else carry

  def backbone(self, x_BTD, mask_BT, *, train):
    lengths_B = mask_BT.sum(axis=1).astype(jnp.int32)
    carry = self._zero_carry(x_BTD.shape[0])
    for layer in self.layers:
      x_BTD = self.dropout(layer(x_BTD, initial_carry=carry, seq_lengths=lengths_B),
                           deterministic=not train)
    return x_BTD, mask_BT
