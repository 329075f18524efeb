"""Score functions e(q_i, k_j): how strongly query i looks at key j.

Both return float32 scores laid out [B, H, T, S] from q [B, T, H, D] and
k [B, S, H, D]; softmax and masking happen in the attention kernels.
"""
from __future__ import annotations

import jax.numpy as jnp


def dot_scores(q_BTHD, k_BSHD, scale):
  """Scaled dot product, the Transformer's score: scale * q_i . k_j."""
  s_BHTS = jnp.einsum("bthd,bshd->bhts", q_BTHD, k_BSHD,
                      preferred_element_type=jnp.float32)
  return s_BHTS * scale


def additive_scores(q_BTHD, k_BSHD, w_HD):
  """Additive (Bahdanau) score: w . tanh(q_i + k_j), per head.

  q and k are the already projected W^q x_i and W^k x_j, so this is the
  lecture's "additive" alternative to the dot product. Memory is O(T * S * D)
  per head; the chunked kernel keeps it to one block at a time.
  """
  h_BTSHD = jnp.tanh(q_BTHD[:, :, None].astype(jnp.float32)
                     + k_BSHD[:, None, :].astype(jnp.float32))
  return jnp.einsum("btshd,hd->bhts", h_BTSHD, w_HD.astype(jnp.float32))
