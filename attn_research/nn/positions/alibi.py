"""ALiBi, attention with linear biases (`model.position=alibi`; Press et al. 2021).

The paper trains causal language models: the bias -m_h (i - j) covers keys before the
query and the causal mask the rest. In bidirectional attention the usual extension,
-m_h |i - j| (`bidirectional=symmetric`, the default), cannot tell the key left of a
query from the key right of it: a model that must bind a token to its right-hand
neighbour (associative recall) cannot learn to. `alibi:bidirectional=split` keeps each
head's slope but makes it look one way (even heads left, odd heads right;
kernels/positional.alibi_split_bias). Causal attention always uses the paper's form.
"""
from __future__ import annotations

import jax.numpy as jnp

from attn_research import args
from attn_research.kernels import relative
from attn_research.kernels.positional import alibi_split_bias
from attn_research.nn.positions.base import Position, register_positional
from attn_research.registry import check_choice

DEFAULTS = dict(bidirectional="symmetric")
BIDIRECTIONAL = ("symmetric", "split")


@register_positional("alibi")
class AlibiPosition(Position):
  """A head-specific linear penalty on the distance (no parameters). Setting:
  bidirectional (symmetric or split) for non-causal attention (module docstring)."""
  needs_bias = True
  setting_defaults = DEFAULTS

  def __init__(self, d_model, max_length, num_heads, *, rngs, settings=""):
    s = args.parse_arg(settings, where="model.position", what="alibi setting", **DEFAULTS)
    check_choice("model.position alibi bidirectional", s["bidirectional"], BIDIRECTIONAL)
    self.num_heads, self.split = num_heads, s["bidirectional"] == "split"

  def in_attention(self, q_BTHD, k_BSHD, *, causal):
    q_pos, k_pos = jnp.arange(q_BTHD.shape[1]), jnp.arange(k_BSHD.shape[1])
    if self.split and not causal:
      return q_BTHD, k_BSHD, alibi_split_bias(relative.alibi_slopes(self.num_heads), q_pos, k_pos)
    return q_BTHD, k_BSHD, relative.alibi_bias(self.num_heads, q_pos, k_pos, causal=causal)

  def decode_bias(self, t, capacity):
    return relative.alibi_bias(self.num_heads, jnp.reshape(t, (1,)), jnp.arange(capacity),
                               causal=True)
