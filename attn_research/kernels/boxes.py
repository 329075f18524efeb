"""Box geometry as pure JAX functions: the pairwise IoU and generalised IoU that DETR's
matching cost and loss use (Carion et al. 2020, arXiv 2005.12872; GIoU: Rezatofighi et
al. 2019, arXiv 1902.09630).

Boxes are (cx, cy, w, h), normalised to the image, as the detection tasks give them and
as the DETR head predicts them; the corner form (x0, y0, x1, y1) is internal. GIoU is
IoU minus the share of the smallest enclosing box that the union leaves empty: in
[-1, 1], 1 for identical boxes, and, unlike IoU, it still has a gradient that pulls
two disjoint boxes together (IoU is 0 wherever they do not touch). The numpy twins for
evaluation live in measure/detection.py.
"""
from __future__ import annotations

import jax.numpy as jnp

EPS = 1e-7  # keeps a degenerate (zero-area) pair finite; real boxes have area >> EPS


def to_corners(boxes_N4):
  """(cx, cy, w, h) -> (x0, y0, x1, y1), over the last axis."""
  cx, cy, w, h = (boxes_N4[..., i] for i in range(4))
  return jnp.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)


def _area(corners):
  return jnp.clip(corners[..., 2] - corners[..., 0], 0) * jnp.clip(
      corners[..., 3] - corners[..., 1], 0)


def _iou_union_giou(a, b):
  """(IoU, union, GIoU) of corner boxes a and b, broadcast against each other."""
  inter = jnp.prod(jnp.clip(jnp.minimum(a[..., 2:], b[..., 2:])
                            - jnp.maximum(a[..., :2], b[..., :2]), 0), axis=-1)
  union = _area(a) + _area(b) - inter
  enclosing = jnp.prod(jnp.clip(jnp.maximum(a[..., 2:], b[..., 2:])
                                - jnp.minimum(a[..., :2], b[..., :2]), 0), axis=-1)
  iou = inter / (union + EPS)
  return iou, union, iou - (enclosing - union) / (enclosing + EPS)


def pairwise_iou(a_N4, b_M4):
  """[N, M] IoU of every box of a against every box of b."""
  return _iou_union_giou(to_corners(a_N4)[:, None, :], to_corners(b_M4)[None, :, :])[0]


def pairwise_giou(a_N4, b_M4):
  """[N, M] generalised IoU: IoU - (enclosing area - union) / enclosing area."""
  return _iou_union_giou(to_corners(a_N4)[:, None, :], to_corners(b_M4)[None, :, :])[2]


def giou(a_N4, b_N4):
  """[...] generalised IoU of aligned pairs (a[i] with b[i]; any leading axes)."""
  return _iou_union_giou(to_corners(a_N4), to_corners(b_N4))[2]
