"""The numerically safe pieces of a masked softmax, shared by every softmax kernel."""
from __future__ import annotations

import jax
import jax.numpy as jnp


def masked_softmax_parts(s_BHTS, allowed):
  """exp(s - max) with disallowed entries exactly 0; returns (p, row max, row sum).

  The max is taken over allowed entries only; a row with none gets max -inf, p 0 and
  sum 0, so callers can divide by where(sum == 0, 1, sum) and return zeros without NaN.
  """
  if allowed is not None:
    s_BHTS = jnp.where(allowed, s_BHTS, -jnp.inf)
  m = jax.lax.stop_gradient(jnp.max(s_BHTS, axis=-1))
  m_safe = jnp.where(jnp.isfinite(m), m, 0.0)
  p = jnp.exp(s_BHTS - m_safe[..., None])
  return p, m, jnp.sum(p, axis=-1)
