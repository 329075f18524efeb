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
