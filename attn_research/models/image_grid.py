"""What the image families (vit, cnn2d, sagan_cnn) share: the task's vectors read back as
a pixel grid.

Image tasks (digits, tfds image datasets) give each image as a set of vectors laid out
as data/images.image_to_vectors makes them: row-major patches of p x p pixels, each
patch flattened channel-major (channel, row, column), so a vector holds F = C p^2
numbers; `TaskInfo.image_shape` is (H, W, C). p follows from F and C, so digits'
`view=pixels` ([B, 64, 1]) and `view=patches` ([B, 16, 4]) both give the [B, 8, 8, 1]
grid back. Image tasks have no padding: every vector is real, and the mask is unused.
"""
from __future__ import annotations

import math

import einops
import jax.numpy as jnp
from flax import nnx


def image_layout(family: str, task_info):
  """((H, W, C), p) of the task's vectors; ValueError when the task holds no image grid
  or asks for an output other than one label per image."""
  shape = task_info.image_shape
  if shape is None:
    raise ValueError(
        f"model {family!r} reads an image grid, but this task (input kind "
        f"{task_info.input_kind!r}) has no image shape (TaskInfo.image_shape = (H, W, C)); "
        "image tasks: digits, tfds:<an image dataset>. A 1D signal such as mnist1d is not "
        "an image: use model 'cnn' or 'transformer' for it")
  if task_info.output_kind != "per_sequence":
    raise ValueError(f"model {family!r} gives one label per image (output kind "
                     f"'per_sequence'); this task's output kind is {task_info.output_kind!r}")
  if len(shape) != 3 or min(shape) < 1:
    raise ValueError(f"TaskInfo.image_shape={shape!r} must be (H, W, C) of positive sizes")
  H, W, C = shape
  F, T = task_info.input_size, task_info.max_length
  p = math.isqrt(F // C) if F % C == 0 else 0
  if p < 1 or C * p * p != F or H % p or W % p or (H // p) * (W // p) != T:
    raise ValueError(f"the task's vectors ({T} of {F} numbers) are not the p x p patches of "
                     f"an image of shape {tuple(shape)} (need F = C p^2 and T = (H/p)(W/p))")
  return (H, W, C), p


def vectors_to_grid(x_BTF, image_shape, patch_size: int):
  """[B, (H/p)(W/p), C p p] patch vectors -> [B, H, W, C] (inverse of image_to_vectors)."""
  H, W, C = image_shape
  p = patch_size
  return einops.rearrange(x_BTF, "b (h w) (c p1 p2) -> b (h p1) (w p2) c", h=H // p, w=W // p,
                          p1=p, p2=p, c=C)


def grid_to_patches(x_BHWC, patch_size: int):
  """[B, H, W, C] -> [B, (H/p)(W/p), C p p] in the same layout (a ViT's patch sequence)."""
  p = patch_size
  return einops.rearrange(x_BHWC, "b (h p1) (w p2) c -> b (h w) (c p1 p2)", p1=p, p2=p)


class ImageModel(nnx.Module):
  """Base of the image families: knows the task's layout and turns inputs into a grid."""

  def __init__(self, family: str, task_info):
    self.image_shape, self.task_patch = image_layout(family, task_info)

  def grid(self, inputs_BTF):
    return vectors_to_grid(inputs_BTF.astype(jnp.float32), self.image_shape, self.task_patch)
