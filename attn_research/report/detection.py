"""Figures of detection runs from arrays (reproduce/detr2020.py computes them): predicted
boxes over scenes, and where a decoder query looks (its cross-attention over the grid)."""
from __future__ import annotations

import numpy as np

from attn_research.data.scenes import draw_boxes
from attn_research.report.plotting import pyplot, save


def boxes_figure(path, rows: dict, class_names, num_scenes: int = 6):
  """One row per label: {label: (images [N, H, W, 3], gt (boxes [N, M, 4], labels, valid),
  pred (boxes [N, Q, 4], scores, labels, keep [N, Q] bool))}; ground truth in white,
  the kept predictions in yellow with class and score."""
  plt = pyplot()
  fig, axes = plt.subplots(len(rows), num_scenes, figsize=(1.9 * num_scenes, 2.1 * len(rows)),
                           squeeze=False)
  for r, (label, (images, gt, pred)) in enumerate(rows.items()):
    for i in range(num_scenes):
      ax = axes[r, i]
      gt_boxes, gt_labels, gt_valid = (x[i] for x in gt)
      draw_boxes(ax, images[i], gt_boxes[gt_valid], [""] * int(gt_valid.sum()), colour="white")
      boxes, scores, labels, keep = (x[i] for x in pred)
      draw_boxes(ax, images[i], boxes[keep], [class_names[c] for c in labels[keep]],
                 scores=scores[keep], show_image=False)
      if i == 0:
        ax.set_title(label, fontsize=8, loc="left")
  save(fig, path, dpi=110)


def attention_figure(path, image_HW3, boxes_K4, names, maps_KHW, title: str):
  """The scene with the predicted boxes, then each query's attention map (K queries)
  over the scene, upsampled from the feature grid."""
  plt = pyplot()
  K = len(maps_KHW)
  fig, axes = plt.subplots(1, K + 1, figsize=(2.2 * (K + 1), 2.4), squeeze=False)
  draw_boxes(axes[0, 0], image_HW3, boxes_K4, names)
  axes[0, 0].set_title("predictions", fontsize=8)
  H, W = image_HW3.shape[:2]
  for k in range(K):
    ax = axes[0, k + 1]
    ax.imshow(np.clip(image_HW3, 0, 1), extent=(0, W, H, 0))
    ax.imshow(maps_KHW[k], extent=(0, W, H, 0), cmap="magma", alpha=0.6,
              interpolation="nearest")
    draw_boxes(ax, image_HW3, boxes_K4[k:k + 1], [names[k]], colour="cyan", show_image=False)
    ax.set_title(f"query of '{names[k]}'", fontsize=8)
  fig.suptitle(title, fontsize=9)
  save(fig, path, dpi=110)
