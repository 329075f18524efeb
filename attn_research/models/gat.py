"""GAT as its paper builds it, and the two-layer baselines of its node-classification
comparison, written the same way so that only how a node gathers its inputs differs.

  gat        Velickovic et al. 2018 ("Graph Attention Networks", arXiv 1710.10903): a
             hidden layer of num_heads heads x head_dim features, concatenated, ELU; an
             output layer of output_heads heads giving the class scores, averaged.
             Each head: h = W x (one W for scores and values), scores by the `gat`
             kernel (kernels/graph.py: LeakyReLU(a_q . h_i + a_k . h_j), slope 0.2),
             softmax over the allowed nodes. Dropout (rate `dropout`, 0.6 in the paper)
             on each layer's input, on the normalised attention coefficients and on the
             projected values, as the authors' code does.
             attend="neighbours": node i attends its neighbours and itself (the graph is
             the mask); attend="all": every real node (attention with the graph ignored).
             score="dot": h_i . h_j / sqrt(head_dim) instead of GAT's additive score
             (content-based scores: an unmasked head can pick the nodes that look alike).
             skip=True adds a linear map of each layer's input to its output (the skip
             connections of GAT's PPI model): without it a node's own features reach the
             next layer only through its attention weight on itself, which over all N
             nodes is about 1/N (attend="all" then sees little more than a global mean).
  kipf_gcn   Kipf & Welling 2017 (arXiv 1609.02907): H = ReLU(A_hat X W0 + b0),
             logits = A_hat H W1 + b1, A_hat = D^-1/2 (A + I) D^-1/2; dropout on each
             layer's input.
  node_mlp   the same two layers without the graph: ReLU(X W0 + b0) W1 + b1, dropout on
             each layer's input; what the node features alone give.

No embedding, normalisation or residual connections (the papers' models have none); one
label per node only (output kind per_vector). Weights are Glorot-uniform, biases zero, as
in both papers' code.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from attn_research.kernels import dot_product_attention
from attn_research.kernels.graph import NEGATIVE_SLOPE, gat_attention
from attn_research.models.gnn import check_graph_task, normalized_adjacency, with_self_loops
from attn_research.models.registry import register_model
from attn_research.registry import check_choice

ATTEND = ("neighbours", "all")
SCORES = ("additive", "dot")
GLOROT = nnx.initializers.glorot_uniform()


def _check_common(name, cfg, task_info, width_keys):
  check_graph_task(name, task_info)
  if task_info.output_kind != "per_vector":
    raise ValueError(f"model {name!r} labels each node (output kind 'per_vector'); the task's "
                     f"output kind is {task_info.output_kind!r}")
  for key in width_keys:
    if not (isinstance(cfg[key], int) and not isinstance(cfg[key], bool) and cfg[key] >= 1):
      raise ValueError(f"model.{key}={cfg[key]!r} must be a positive int")
  if not 0 <= cfg["dropout"] < 1:
    raise ValueError(f"model.dropout={cfg['dropout']!r} must be in [0, 1)")


def real_pairs(mask_BT):
  """[B, T, T]: both nodes real (padding neither attends nor is attended)."""
  return mask_BT[:, :, None] & mask_BT[:, None, :]


class GATLayer(nnx.Module):
  """One multi-head graph attention layer (the module docstring); returns [B, T, H * D]
  (concat) or [B, T, D] (heads averaged)."""

  def __init__(self, d_in: int, heads: int, head_dim: int, *, concat: bool, score: str,
               dropout: float, skip: bool = False, rngs: nnx.Rngs):
    self.heads, self.head_dim, self.concat, self.score = heads, head_dim, concat, score
    self.proj = nnx.Linear(d_in, heads * head_dim, use_bias=False, kernel_init=GLOROT,
                           rngs=rngs)
    if score == "additive":  # GAT's a = [a_q; a_k], Glorot-uniform per head as [D, 1]
      limit = math.sqrt(6 / (head_dim + 1))
      self.a_q_HD = nnx.Param(jax.random.uniform(rngs.params(), (heads, head_dim),
                                                 minval=-limit, maxval=limit))
      self.a_k_HD = nnx.Param(jax.random.uniform(rngs.params(), (heads, head_dim),
                                                 minval=-limit, maxval=limit))
    d_out = heads * head_dim if concat else head_dim
    self.bias = nnx.Param(jnp.zeros((d_out,)))
    self.skip = (nnx.Linear(d_in, d_out, use_bias=False, kernel_init=GLOROT, rngs=rngs)
                 if skip else None)
    self.dropout = nnx.Dropout(dropout, rngs=rngs)

  def weights(self, h_BTHD, allowed_B1TT):
    """Attention coefficients [B, H, T, S] (float32) over the allowed nodes."""
    if self.score == "additive":
      _, w = gat_attention(h_BTHD, h_BTHD, h_BTHD, self.a_q_HD[...], self.a_k_HD[...],
                           mask=allowed_B1TT, negative_slope=NEGATIVE_SLOPE,
                           return_weights=True)
    else:
      _, w = dot_product_attention(h_BTHD, h_BTHD, h_BTHD, mask=allowed_B1TT,
                                   impl="reference", return_weights=True)
    return w  # the kernel's own output goes unused (XLA drops it): dropout comes first

  def __call__(self, x_BTF, allowed_B1TT, *, train: bool):
    deterministic = not train
    B, T = x_BTF.shape[:2]
    x_BTF = self.dropout(x_BTF, deterministic=deterministic)
    h_BTHD = self.proj(x_BTF).reshape(B, T, self.heads, self.head_dim)
    w_BHTS = self.dropout(self.weights(h_BTHD, allowed_B1TT), deterministic=deterministic)
    v_BSHD = self.dropout(h_BTHD, deterministic=deterministic)
    out_BTHD = jnp.einsum("bhts,bshd->bthd", w_BHTS.astype(v_BSHD.dtype), v_BSHD)
    out = out_BTHD.reshape(B, T, -1) if self.concat else out_BTHD.mean(2)
    if self.skip is not None:
      out = out + self.skip(x_BTF)
    return out + self.bias[...]


@register_model("gat", dict(num_heads=8, head_dim=8, output_heads=1, dropout=0.6,
                            attend="neighbours", score="additive", skip=False))
class GAT(nnx.Module):
  """Two GAT layers (the module docstring)."""
  uses_adjacency = True

  def __init__(self, cfg, task_info, rngs):
    _check_common("gat", cfg, task_info, ("num_heads", "head_dim", "output_heads"))
    check_choice("model.attend", cfg["attend"], ATTEND)
    check_choice("model.score", cfg["score"], SCORES)
    self.attend = cfg["attend"]
    if not isinstance(cfg["skip"], bool):
      raise ValueError(f"model.skip={cfg['skip']!r} must be True or False")
    common = dict(score=cfg["score"], dropout=cfg["dropout"], skip=cfg["skip"], rngs=rngs)
    self.hidden = GATLayer(task_info.input_size, cfg["num_heads"], cfg["head_dim"],
                           concat=True, **common)
    self.out = GATLayer(cfg["num_heads"] * cfg["head_dim"], cfg["output_heads"],
                        task_info.num_classes, concat=False, **common)

  def __call__(self, inputs, mask_BT, *, train: bool = False, adjacency=None):
    if adjacency is None:
      raise ValueError("GAT needs the batch's adjacency")
    real = real_pairs(mask_BT)
    allowed = (with_self_loops(adjacency) & real) if self.attend == "neighbours" else real
    allowed_B1TT = allowed[:, None]
    h = jax.nn.elu(self.hidden(inputs.astype(jnp.float32), allowed_B1TT, train=train))
    return self.out(h, allowed_B1TT, train=train)


class TwoLayer(nnx.Module):
  """dropout -> W0 -> (propagate) -> ReLU -> dropout -> W1 -> (propagate)."""
  uses_adjacency = True
  propagates = True

  def __init__(self, name, cfg, task_info, rngs):
    _check_common(name, cfg, task_info, ("d_model",))
    self.first = nnx.Linear(task_info.input_size, cfg["d_model"], kernel_init=GLOROT, rngs=rngs)
    self.second = nnx.Linear(cfg["d_model"], task_info.num_classes, kernel_init=GLOROT,
                             rngs=rngs)
    self.dropout = nnx.Dropout(cfg["dropout"], rngs=rngs)

  def __call__(self, inputs, mask_BT, *, train: bool = False, adjacency=None):
    deterministic = not train
    x = inputs.astype(jnp.float32)
    if self.propagates:
      if adjacency is None:
        raise ValueError(f"{type(self).__name__} needs the batch's adjacency")
      a_hat = normalized_adjacency(adjacency, mask_BT, x.dtype)
      propagate = lambda h: a_hat @ h  # noqa: E731
    else:
      propagate = lambda h: h  # noqa: E731
    # The bias is added after propagation (A_hat X W + b), as in Kipf's code.
    x = self.dropout(x, deterministic=deterministic)
    h = jax.nn.relu(propagate(x @ self.first.kernel[...]) + self.first.bias[...])
    h = self.dropout(h, deterministic=deterministic)
    return propagate(h @ self.second.kernel[...]) + self.second.bias[...]


@register_model("kipf_gcn", dict(d_model=16, dropout=0.5))
class KipfGCN(TwoLayer):
  """Kipf & Welling's two-layer GCN (the module docstring)."""

  def __init__(self, cfg, task_info, rngs):
    super().__init__("kipf_gcn", cfg, task_info, rngs)


@register_model("node_mlp", dict(d_model=16, dropout=0.5))
class NodeMLP(TwoLayer):
  """The two layers without propagation: each node from its own features."""
  propagates = False

  def __init__(self, cfg, task_info, rngs):
    super().__init__("node_mlp", cfg, task_info, rngs)
