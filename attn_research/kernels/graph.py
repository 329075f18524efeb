"""GAT-style additive graph attention (Velickovic et al. 2018, "Graph Attention Networks",
arXiv 1710.10903).

GAT scores an edge i <- j by a single-layer feed-forward net on the two nodes' projected
features, e_ij = LeakyReLU(a^T [W h_i || W h_j]) with slope 0.2, normalises the scores
with a softmax over i's neighbours only (masked attention: the graph is the mask), and
sums the neighbours' projected features with those weights. Splitting a = [a_q; a_k],

  e_ij = LeakyReLU(a_q . q_i + a_k . k_j),   alpha_ij = softmax_{j in N(i)} e_ij,
  out_i = sum_j alpha_ij v_j,

per head, with q, k, v the attention module's W^q x, W^k x, W^v x (GAT uses one W for
all three; here they are separate projections, one score vector pair (a_q, a_k) per
head). The neighbourhood is the boolean mask (True = may attend): a graph's adjacency
with self loops, a padding mask, causal or window restrictions, all combined.

The score is a rank-one sum passed through a monotonic function, so every query ranks
the keys in the same order ("static" attention, Brody et al. 2022, arXiv 2105.14491);
only the mask makes neighbourhoods differ.

Costs per batch element and head, T queries, S keys, head dim D: the scores cost
O((T + S) D) plus O(T S) for the broadcast sum, the softmax and the weighted sum
O(T S D) time; memory O(T S) (the score matrix is materialised, as in reference softmax
attention; on a sparse graph a gather over edges would cost O(edges D) instead).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from attn_research.kernels import masks as masks_lib
from attn_research.kernels.checks import check_mask_bias, check_qkv
from attn_research.kernels.softmax import masked_softmax_parts

NEGATIVE_SLOPE = 0.2  # the paper's LeakyReLU slope


def _check_args(q, k, v, a_q_HD, a_k_HD, mask, bias, window, negative_slope):
  B, T, S, H, D = check_qkv(q, k, v)
  for name, a in (("a_q_HD", a_q_HD), ("a_k_HD", a_k_HD)):
    if getattr(a, "shape", None) != (H, D):
      raise ValueError(f"{name} must be [heads, head_dim] = {(H, D)}; got "
                       f"{getattr(a, 'shape', a)!r}")
  target = (B, H, T, S)
  check_mask_bias(mask, bias, target)
  if window is not None and not (
      isinstance(window, (tuple, list)) and len(window) == 2
      and all(isinstance(w, (int, np.integer)) and w >= 0 for w in window)):
    raise ValueError(f"window must be a pair of non-negative ints (left, right); "
                     f"got {window!r}")
  if isinstance(negative_slope, bool) or not isinstance(negative_slope, (int, float, np.number)):
    raise ValueError(f"negative_slope must be a number; got {negative_slope!r}")


def gat_scores(q_BTHD, k_BSHD, a_q_HD, a_k_HD, negative_slope=NEGATIVE_SLOPE):
  """e_ij = LeakyReLU(a_q . q_i + a_k . k_j) per head: float32 [B, H, T, S]."""
  s_q_BHT = jnp.einsum("bthd,hd->bht", q_BTHD, a_q_HD, preferred_element_type=jnp.float32)
  s_k_BHS = jnp.einsum("bshd,hd->bhs", k_BSHD, a_k_HD, preferred_element_type=jnp.float32)
  return jax.nn.leaky_relu(s_q_BHT[..., :, None] + s_k_BHS[..., None, :], negative_slope)


def gat_attention(q, k, v, a_q_HD, a_k_HD, *, mask=None, bias=None, causal=False,
                  window=None, negative_slope=NEGATIVE_SLOPE, return_weights=False):
  """softmax over allowed j of LeakyReLU(a_q . q_i + a_k . k_j) (+ bias), times V.

  Args:
    q: [B, T, H, D] queries; k: [B, S, H, D] keys; v: [B, S, H, Dv] values.
    a_q_HD, a_k_HD: [H, D] score vectors (the two halves of GAT's a), per head.
    mask: bool, broadcastable to [B, H, T, S]; True = may attend (adjacency, padding).
    bias: added to the scores after the LeakyReLU, broadcastable to [B, H, T, S].
    causal / window: further restrict the keys, as in dot_product_attention.
    negative_slope: LeakyReLU slope (the paper's 0.2).
    return_weights: also return the [B, H, T, S] float32 attention weights.
  Returns:
    [B, T, H, Dv] in v's dtype (and the weights when asked). A query with no allowed
    key returns zeros (and zero weights).
  """
  _check_args(q, k, v, a_q_HD, a_k_HD, mask, bias, window, negative_slope)
  e_BHTS = gat_scores(q, k, a_q_HD, a_k_HD, negative_slope)
  if bias is not None:
    e_BHTS = e_BHTS + bias.astype(jnp.float32)
  allowed = masks_lib.combine(
      mask, masks_lib.full_mask(q.shape[1], k.shape[1], causal=causal,
                                window=None if window is None else tuple(window)))
  p, _, l = masked_softmax_parts(e_BHTS, allowed)
  weights_BHTS = p / jnp.where(l == 0, 1.0, l)[..., None]
  out = jnp.einsum("bhts,bshd->bthd", weights_BHTS, v.astype(jnp.float32)).astype(v.dtype)
  return (out, weights_BHTS) if return_weights else out
