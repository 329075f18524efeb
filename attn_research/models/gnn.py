"""Models that read the graph: self-attention restricted to neighbours, and a GCN.

Graph tasks put `adjacency` [B, T, T] (symmetric, no self loops) in the batch; these
models declare `uses_adjacency` and the train step passes it. The lecture's point:
self-attention on a graph is attention whose mask is the adjacency, so a node only
attends its neighbours (and itself).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from attn_research.models.common import SequenceModel
from attn_research.models.registry import register_model
from attn_research.models.transformer import DEFAULTS as TRANSFORMER_DEFAULTS
from attn_research.models.transformer import Transformer


def with_self_loops(adjacency_BTT):
  eye = jnp.eye(adjacency_BTT.shape[-1], dtype=bool)
  return adjacency_BTT.astype(bool) | eye


def check_graph_task(name, task_info):
  if task_info.input_kind != "graph_nodes":
    raise ValueError(f"model {name!r} reads a graph's adjacency; task input kind "
                     f"{task_info.input_kind!r} has none (use a graph task: karate, "
                     "graph_property)")


def normalized_adjacency(adjacency_BTT, mask_BT, dtype):
  """GCN's propagation matrix D^-1/2 (A + I) D^-1/2 over the real nodes: [B, T, T]."""
  real = mask_BT[:, :, None] & mask_BT[:, None, :]
  a = (with_self_loops(adjacency_BTT) & real).astype(dtype)
  d_inv_sqrt = jax.lax.rsqrt(jnp.maximum(a.sum(-1), 1.0))
  return a * d_inv_sqrt[:, :, None] * d_inv_sqrt[:, None, :]


class GraphModel(SequenceModel):
  uses_adjacency = True

  def __call__(self, inputs, mask_BT, *, train: bool = False, adjacency=None):
    if adjacency is None:
      raise ValueError(f"{type(self).__name__} needs the batch's adjacency")
    h_BTD, mask_BT = self.graph_backbone(self.embed(inputs), mask_BT, adjacency, train=train)
    return self.head(h_BTD, mask_BT)


@register_model("graph_attention", dict(TRANSFORMER_DEFAULTS, position="none"))
class GraphAttention(GraphModel, Transformer):
  """The Transformer with each node attending only its neighbours and itself (the
  kernels' boolean mask = adjacency + self loops). Mean pooling for graph labels."""

  def __init__(self, cfg, task_info, rngs):
    check_graph_task("graph_attention", task_info)
    if cfg["pooling"] != "mean":
      raise ValueError(f"model.pooling={cfg['pooling']!r}: graph_attention pools by 'mean' "
                       "(a CLS vector has no place in the graph)")
    Transformer.__init__(self, cfg, task_info, rngs)

  def graph_backbone(self, x_BTD, mask_BT, adjacency_BTT, *, train):
    return self.backbone(x_BTD, mask_BT, train=train,
                         attn_mask_BTT=with_self_loops(adjacency_BTT))


class GCNLayer(nnx.Module):
  def __init__(self, d, dropout, *, rngs):
    self.norm = nnx.LayerNorm(d, rngs=rngs)
    self.linear = nnx.Linear(d, d, rngs=rngs)
    self.dropout = nnx.Dropout(dropout, rngs=rngs)

  def __call__(self, x_BTD, a_hat_BTT, *, train):
    h = a_hat_BTT @ self.linear(self.norm(x_BTD))
    return x_BTD + self.dropout(jax.nn.gelu(h), deterministic=not train)


@register_model("gcn", dict(d_model=64, num_layers=2, dropout=0.0))
class GCN(GraphModel):
  """Graph convolution (Kipf & Welling 2017): H' = act(D^-1/2 (A + I) D^-1/2 H W), here
  with pre-LayerNorm residual layers like the other families."""

  def __init__(self, cfg, task_info, rngs):
    check_graph_task("gcn", task_info)
    super().__init__(cfg, task_info, cfg["d_model"], rngs=rngs)
    self.layers = nnx.List([GCNLayer(cfg["d_model"], cfg["dropout"], rngs=rngs)
                            for _ in range(cfg["num_layers"])])

  def graph_backbone(self, x_BTD, mask_BT, adjacency_BTT, *, train):
    a_hat = normalized_adjacency(adjacency_BTT, mask_BT, x_BTD.dtype)
    for layer in self.layers:
      x_BTD = layer(x_BTD, a_hat, train=train)
    return x_BTD, mask_BT
