"""A small ResNet over the pixel grid (He et al. 2016, "Deep Residual Learning for Image
Recognition", arXiv 1512.03385).

conv stem (3x3, stride 1: the CIFAR-style stem, as the images here are tiny) -> stages
of residual basic blocks -> global average pool -> linear head. A basic block is
conv3x3 - norm - ReLU - conv3x3 - norm, added to the shortcut, then ReLU; the first
block of every stage after the first has stride `stage_stride` (2 halves the grid) and,
like ResNet, doubles the channels whenever it halves the grid, so stage s has
d_model * 2^s channels (stride 1: d_model throughout). A shortcut whose shape changes
is a strided 1x1 convolution and a norm (the paper's option B).

Norm: GroupNorm (Wu & He 2018) with `norm_groups` groups instead of the paper's
BatchNorm, because the train step (objectives/base.py) is a pure function of parameters
and batch with no batch-statistics state; norm_groups=1 normalises each example's
whole feature map (a LayerNorm over H, W, C). d_model must be a multiple of
norm_groups. A 3x3 convolution sees a 3x3 neighbourhood: the receptive field grows by
2 (times the stride so far) per convolution, where self-attention sees every pixel at
once. Cost per example: O(H W C^2 * 9) per convolution.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from attn_research.models.image_grid import ImageModel
from attn_research.models.registry import register_model

DEFAULTS = dict(d_model=32, num_stages=2, blocks_per_stage=1, stage_stride=2, norm_groups=2,
                dropout=0.0)


def conv(c_in, c_out, kernel, stride, *, rngs):
  """A bias-free convolution (a norm follows every one, so a bias would be redundant)."""
  return nnx.Conv(c_in, c_out, (kernel, kernel), strides=(stride, stride), padding="SAME",
                  use_bias=False, rngs=rngs)


class BasicBlock(nnx.Module):
  def __init__(self, c_in, c_out, stride, groups, *, rngs):
    self.conv1 = conv(c_in, c_out, 3, stride, rngs=rngs)
    self.norm1 = nnx.GroupNorm(c_out, num_groups=groups, rngs=rngs)
    self.conv2 = conv(c_out, c_out, 3, 1, rngs=rngs)
    self.norm2 = nnx.GroupNorm(c_out, num_groups=groups, rngs=rngs)
    reshape = stride != 1 or c_in != c_out
    self.project = conv(c_in, c_out, 1, stride, rngs=rngs) if reshape else None
    self.project_norm = nnx.GroupNorm(c_out, num_groups=groups, rngs=rngs) if reshape else None

  def __call__(self, x_BHWC):
    h = jax.nn.relu(self.norm1(self.conv1(x_BHWC)))
    h = self.norm2(self.conv2(h))
    shortcut = x_BHWC if self.project is None else self.project_norm(self.project(x_BHWC))
    return jax.nn.relu(h + shortcut)


@register_model("cnn2d", DEFAULTS)
class CNN2D(ImageModel):
  """stem -> num_stages x blocks_per_stage basic blocks -> global average pool -> head."""
  family = "cnn2d"

  @staticmethod
  def width_multiple(cfg) -> int:
    """What d_model must be a multiple of (models/budget.py): the norm's group count."""
    return max(1, cfg["norm_groups"])

  def __init__(self, cfg, task_info, rngs):
    super().__init__(self.family, task_info)
    d, groups = cfg["d_model"], cfg["norm_groups"]
    for key in ("num_stages", "blocks_per_stage", "norm_groups"):
      if not isinstance(cfg[key], int) or cfg[key] < 1:
        raise ValueError(f"model.{key}={cfg[key]!r} must be an int >= 1")
    if cfg["stage_stride"] not in (1, 2):
      raise ValueError(f"model.stage_stride={cfg['stage_stride']!r} must be 1 (keep the grid) "
                       "or 2 (halve it and double the channels at each new stage)")
    if d < 1 or d % groups:
      raise ValueError(f"model.d_model={d} must be a positive multiple of model.norm_groups="
                       f"{groups}")
    if not 0 <= cfg["dropout"] < 1:
      raise ValueError(f"model.dropout={cfg['dropout']} must be in [0, 1)")
    C = self.image_shape[2]
    self.stem = conv(C, d, 3, 1, rngs=rngs)
    self.stem_norm = nnx.GroupNorm(d, num_groups=groups, rngs=rngs)
    stride = cfg["stage_stride"]
    self.widths = tuple(d * stride ** s for s in range(cfg["num_stages"]))
    stages, c_in = [], d
    for s, width in enumerate(self.widths):
      stages.append(nnx.List([
          BasicBlock(c_in if b == 0 else width, width, stride if (s > 0 and b == 0) else 1,
                     groups, rngs=rngs)
          for b in range(cfg["blocks_per_stage"])]))
      c_in = width
    self.stages = nnx.List(stages)
    self.dropout = nnx.Dropout(cfg["dropout"], rngs=rngs)
    self.head = nnx.Linear(self.widths[-1], task_info.num_classes, rngs=rngs)

  def after_stage(self, s, x_BHWC, *, train):
    """Hook between stages (sagan_cnn inserts its attention block here)."""
    del s, train
    return x_BHWC

  def features(self, inputs, *, train: bool = False):
    """[B, T, F] task vectors -> the last stage's feature map [B, H', W', C']."""
    x_BHWC = jax.nn.relu(self.stem_norm(self.stem(self.grid(inputs))))
    for s, stage in enumerate(self.stages):
      for block in stage:
        x_BHWC = block(x_BHWC)
      x_BHWC = self.after_stage(s, x_BHWC, train=train)
    return x_BHWC

  def __call__(self, inputs, mask_BT=None, *, train: bool = False):
    del mask_BT  # image tasks have no padding
    pooled_BC = jnp.mean(self.features(inputs, train=train), axis=(1, 2))
    return self.head(self.dropout(pooled_BC, deterministic=not train))
