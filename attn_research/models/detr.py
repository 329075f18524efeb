"""DETR, detection as set prediction (Carion et al. 2020, "End-to-End Object Detection with
Transformers", arXiv 2005.12872), at the size of the synthetic scenes (data/scenes.py).

  pixels [B, H*W, 3] -> grid [B, H, W, 3] -> small ResNet backbone (a stride-2 stem and
  backbone_stages stride-2 basic blocks of models/cnn2d.py) -> 1x1 projection to d_model
  -> S = H' W' feature vectors + fixed 2D sin-cos encodings -> encoder_layers pre-LN
  encoder blocks (nn/transformer.py) = memory [B, S, d]
  num_queries learned object queries -> decoder_layers decoder layers, each:
    x + self-attention(LN(x) + query_pos)               the queries see each other, no mask
    x + cross-attention(LN(x) + query_pos -> memory + pos, values memory)
    x + MLP(LN(x))
  -> after every decoder layer (a shared LN, then shared heads): class logits over the
  task's classes + 1 ("no object", the last index) and a box (cx, cy, w, h) = sigmoid of a
  3-layer MLP.

The decoder starts from zeros and the queries enter as query_pos at every layer, as in
DETR: a query is a learned position in "object space", not an input vector. Outputs:
{"logits": [L, B, Q, C + 1], "boxes": [L, B, Q, 4]} for the L decoder layers (the last
one is the prediction; the others feed DETR's auxiliary losses, objectives/
set_prediction.py). No anchors, no NMS: each query predicts one object or none.
`cross_attention_weights` recomputes the decoder's cross-attention with the reference
kernel (materialised weights) for plots. Cost per image: the backbone's convolutions,
O(S^2 d) per encoder layer, O(Q S d + Q^2 d) per decoder layer.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from attn_research import kernels
from attn_research.models.cnn2d import BasicBlock, conv
from attn_research.models.image_grid import vectors_to_grid
from attn_research.models.registry import register_model
from attn_research.models.vit import sinusoidal_2d
from attn_research.nn.attention import MultiHeadSelfAttention
from attn_research.nn.cross_attention import MultiHeadCrossAttention
from attn_research.nn.transformer import MLP, EncoderBlock

DEFAULTS = dict(d_model=64, num_heads=4, mlp_ratio=2, encoder_layers=2, decoder_layers=2,
                num_queries=8, backbone_width=32, backbone_stages=2, norm_groups=4,
                dropout=0.0, attention_impl="auto")


def check_task(task_info):
  if task_info.output_kind != "set" or task_info.image_shape is None:
    raise ValueError(f"model.name='detr' predicts a set of boxes from an image: it needs a "
                     f"detection task (output kind 'set' with an image shape) such as "
                     f"data.name='shapes_detection'; got output kind {task_info.output_kind!r}, "
                     f"image shape {task_info.image_shape}")


def check_settings(cfg):
  for key in ("d_model", "num_heads", "mlp_ratio", "encoder_layers", "decoder_layers",
              "num_queries", "backbone_width", "backbone_stages", "norm_groups"):
    if not isinstance(cfg[key], int) or isinstance(cfg[key], bool) or cfg[key] < 1:
      raise ValueError(f"model.{key}={cfg[key]!r} must be an int >= 1")
  d, heads = cfg["d_model"], cfg["num_heads"]
  if d % heads or d % 4:
    raise ValueError(f"model.d_model={d} must be a multiple of 4 (2D sin-cos encodings) and of "
                     f"model.num_heads={heads}")
  if cfg["backbone_width"] % cfg["norm_groups"]:
    raise ValueError(f"model.backbone_width={cfg['backbone_width']} must be a multiple of "
                     f"model.norm_groups={cfg['norm_groups']}")
  if not 0 <= cfg["dropout"] < 1:
    raise ValueError(f"model.dropout={cfg['dropout']} must be in [0, 1)")
  kernels.check_impl(cfg["attention_impl"])


class DetrDecoderLayer(nnx.Module):
  """Pre-LN: query self-attention, cross-attention to the memory, MLP (module docstring)."""

  def __init__(self, d_model, num_heads, mlp_ratio, dropout, *, impl, rngs):
    self.ln_self = nnx.LayerNorm(d_model, rngs=rngs)
    self.self_attn = MultiHeadSelfAttention(d_model, num_heads, impl=impl, rngs=rngs)
    self.ln_cross = nnx.LayerNorm(d_model, rngs=rngs)
    self.cross_attn = MultiHeadCrossAttention(d_model, num_heads, impl=impl, rngs=rngs)
    self.ln_mlp = nnx.LayerNorm(d_model, rngs=rngs)
    self.mlp = MLP(d_model, mlp_ratio * d_model, dropout, rngs=rngs)
    self.dropout = nnx.Dropout(dropout, rngs=rngs)

  def cross(self, x_BQD, query_pos_QD, memory_BSD, pos_SD, *, impl, return_weights=False):
    """Cross-attention with positions on queries and keys only (DETR), through the
    module's projections and kernels.dot_product_attention."""
    a = self.cross_attn
    q = a.query(self.ln_cross(x_BQD) + query_pos_QD)
    k, v = a.key(memory_BSD + pos_SD), a.value(memory_BSD)
    res = kernels.dot_product_attention(q, k, v, impl=impl, return_weights=return_weights)
    out, weights = res if return_weights else (res, None)
    return a.out(out), weights

  def __call__(self, x_BQD, query_pos_QD, memory_BSD, pos_SD, *, train: bool = False):
    drop = lambda h: self.dropout(h, deterministic=not train)  # noqa: E731
    x_BQD = x_BQD + drop(self.self_attn(self.ln_self(x_BQD) + query_pos_QD))
    x_BQD = x_BQD + drop(self.cross(x_BQD, query_pos_QD, memory_BSD, pos_SD,
                                    impl=self.cross_attn.impl)[0])
    return x_BQD + drop(self.mlp(self.ln_mlp(x_BQD), train=train))


@register_model("detr", DEFAULTS)
class DETR(nnx.Module):
  """Backbone -> encoder -> decoder of learned queries -> class and box heads per layer."""
  family = "detr"

  def __init__(self, cfg, task_info, rngs):
    check_task(task_info)
    check_settings(cfg)
    H, W, C = task_info.image_shape
    self.image_shape, self.task_patch = (H, W, C), 1
    if task_info.input_size != C:
      raise ValueError(f"model 'detr' reads one pixel per vector ({C} channels); the task gives "
                       f"vectors of {task_info.input_size}")
    d, heads, width, groups = (cfg["d_model"], cfg["num_heads"], cfg["backbone_width"],
                               cfg["norm_groups"])
    self.num_queries, self.num_classes = cfg["num_queries"], task_info.num_classes
    self.stem = conv(C, width, 3, 2, rngs=rngs)
    self.stem_norm = nnx.GroupNorm(width, num_groups=groups, rngs=rngs)
    self.backbone = nnx.List([BasicBlock(width, width, 2, groups, rngs=rngs)
                              for _ in range(cfg["backbone_stages"])])
    self.project = nnx.Linear(width, d, rngs=rngs)
    block = dict(mlp_ratio=cfg["mlp_ratio"], dropout=cfg["dropout"])
    self.impl = cfg["attention_impl"]
    self.encoder = nnx.List([EncoderBlock(d, heads, impl=self.impl, rngs=rngs, **block)
                             for _ in range(cfg["encoder_layers"])])
    self.encoder_norm = nnx.LayerNorm(d, rngs=rngs)
    self.query_pos = nnx.Param(jax.random.normal(rngs.params(), (self.num_queries, d)))
    self.decoder = nnx.List([DetrDecoderLayer(d, heads, impl=self.impl, rngs=rngs, **block)
                             for _ in range(cfg["decoder_layers"])])
    self.decoder_norm = nnx.LayerNorm(d, rngs=rngs)
    self.class_head = nnx.Linear(d, self.num_classes + 1, rngs=rngs)
    self.box_head = nnx.List([nnx.Linear(d, d, rngs=rngs), nnx.Linear(d, d, rngs=rngs),
                              nnx.Linear(d, 4, rngs=rngs)])

  def grid_shape(self) -> tuple[int, int]:
    """(H', W') of the feature grid the encoder reads (SAME padding, stride 2 each)."""
    H, W, _ = self.image_shape
    for _ in range(1 + len(self.backbone)):
      H, W = -(-H // 2), -(-W // 2)
    return H, W

  def encode(self, inputs_BTC, *, train: bool = False):
    """(memory [B, S, d], pos [S, d]): the encoder's output and the grid's encodings."""
    x = vectors_to_grid(inputs_BTC.astype(jnp.float32), self.image_shape, 1)
    x = jax.nn.relu(self.stem_norm(self.stem(x)))
    for block in self.backbone:
      x = block(x)
    B, Hg, Wg, _ = x.shape
    x_BSD = self.project(x.reshape(B, Hg * Wg, -1))
    pos_SD = sinusoidal_2d(Hg, Wg, x_BSD.shape[-1]).astype(x_BSD.dtype)
    x_BSD = x_BSD + pos_SD
    for block in self.encoder:
      x_BSD = block(x_BSD, None, train=train)
    return self.encoder_norm(x_BSD), pos_SD

  def heads(self, x_BQD):
    h = self.decoder_norm(x_BQD)
    b = h
    for i, layer in enumerate(self.box_head):
      b = layer(b) if i == len(self.box_head) - 1 else jax.nn.relu(layer(b))
    return self.class_head(h), jax.nn.sigmoid(b.astype(jnp.float32))

  def __call__(self, inputs, mask_BT=None, *, train: bool = False):
    del mask_BT  # scenes have no padding
    memory_BSD, pos_SD = self.encode(inputs, train=train)
    query_pos = self.query_pos[...].astype(memory_BSD.dtype)
    x = jnp.zeros((memory_BSD.shape[0], self.num_queries, memory_BSD.shape[-1]),
                  memory_BSD.dtype)
    logits, boxes = [], []
    for layer in self.decoder:
      x = layer(x, query_pos, memory_BSD, pos_SD, train=train)
      lg, bx = self.heads(x)
      logits.append(lg.astype(jnp.float32))
      boxes.append(bx)
    return {"logits": jnp.stack(logits), "boxes": jnp.stack(boxes)}

  def cross_attention_weights(self, inputs):
    """[L, B, heads, Q, S] cross-attention weights of every decoder layer (eval mode,
    reference kernel): where each query looks on the H' x W' grid (grid_shape())."""
    memory_BSD, pos_SD = self.encode(inputs)
    query_pos = self.query_pos[...].astype(memory_BSD.dtype)
    x = jnp.zeros((memory_BSD.shape[0], self.num_queries, memory_BSD.shape[-1]),
                  memory_BSD.dtype)
    out = []
    for layer in self.decoder:
      out.append(layer.cross(x, query_pos, memory_BSD, pos_SD, impl="reference",
                             return_weights=True)[1])
      x = layer(x, query_pos, memory_BSD, pos_SD)
    return jnp.stack(out)


def detections(output):
  """The last decoder layer's predictions as detections, DETR's inference (no NMS):
  {"boxes" [B, Q, 4], "scores" [B, Q] (the most likely real class's probability),
  "labels" [B, Q] (that class), "is_object" [B, Q] (the most likely class of all is not
  "no object"; what the count accuracy counts)}."""
  logits_BQK = output["logits"][-1].astype(jnp.float32)
  probs = jax.nn.softmax(logits_BQK, -1)
  return {"boxes": output["boxes"][-1], "scores": probs[..., :-1].max(-1),
          "labels": probs[..., :-1].argmax(-1),
          "is_object": logits_BQK.argmax(-1) != logits_BQK.shape[-1] - 1}
