"""Positional maths as pure functions (the modules in nn/positions/ own any parameters)."""
from __future__ import annotations

import jax.numpy as jnp


def sinusoidal_encoding(positions_T, d_model: int, max_timescale: float = 10000.0):
  """The Transformer paper's encoding (Vaswani et al. 2017, section 3.5), [T, d_model].

  PE[pos, 2i] = sin(pos / max_timescale^(2i / d)), PE[pos, 2i + 1] = cos(same angle).
  Positions may be any real numbers, so any length works.
  """
  if d_model % 2:
    raise ValueError(f"sinusoidal encoding needs an even d_model; got {d_model}")
  i_half = jnp.arange(d_model // 2, dtype=jnp.float32)
  angle_TK = positions_T[:, None].astype(jnp.float32) / max_timescale ** (2 * i_half / d_model)
  pe = jnp.zeros((positions_T.shape[0], d_model), jnp.float32)
  return pe.at[:, 0::2].set(jnp.sin(angle_TK)).at[:, 1::2].set(jnp.cos(angle_TK))


# A bias this negative gives a key zero weight after the softmax (float32 scores) while
# staying finite, so a row's maximum is never -inf.
EXCLUDED = -1e9


def alibi_split_bias(slopes_H, q_positions, k_positions):
  """Direction-aware ALiBi for bidirectional attention, [1, H, T, S] float32.

  The symmetric form -m_h |i - j| gives the neighbours on both sides of a query the same
  bias, so no head can tell its left neighbour from its right one. Here head h keeps its
  slope m_h (slopes_H, ALiBi's) but looks one way only: even heads left, the paper's
  causal form (-m_h (i - j) for keys j <= i), odd heads right, its mirror (-m_h (j - i)
  for keys j >= i); keys on the other side get EXCLUDED. Every head sees its own query
  position, so no row is empty.
  """
  offset_TS = (jnp.asarray(k_positions)[None, :] - jnp.asarray(q_positions)[:, None]
               ).astype(jnp.float32)  # j - i
  H = slopes_H.shape[0]
  # The distance each head measures: i - j for the left-looking, j - i for the others.
  sign_H = jnp.where(jnp.arange(H) % 2 == 0, -1.0, 1.0)[:, None, None]
  distance_HTS = sign_H * offset_TS[None]
  slopes = slopes_H.astype(jnp.float32)[:, None, None]
  return jnp.where(distance_HTS >= 0, -slopes * distance_HTS, EXCLUDED)[None]
