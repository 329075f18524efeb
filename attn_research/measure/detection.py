"""Detection metrics in numpy: box IoU / GIoU and COCO-style average precision.

Boxes are (cx, cy, w, h) normalised to the image (the detection tasks' and DETR's form).

Average precision follows the COCO evaluation (Lin et al. 2014; pycocotools' COCOeval),
written here from its definition:
  - per class and IoU threshold t, every detection of that class over all images is taken
    in order of decreasing score; within an image, a detection matches the still unmatched
    ground-truth box of its class with the highest IoU, if that IoU is >= t (a true
    positive), else it is a false positive; so a duplicate of a matched box is a false
    positive and a missed box lowers the recall;
  - precision is made monotone (at each recall, the best precision at that recall or
    beyond) and read at the 101 recalls 0, 0.01, ..., 1 (0 beyond the largest recall
    reached); AP is their mean;
  - AP50 is the mean over classes at t = 0.5; AP (the "AP@[.5:.95]") the mean over classes
    and over t = 0.50, 0.55, ..., 0.95. A class without ground truth has no AP (nan) and
    is left out of the means, as COCO does.
Not modelled: COCO's crowd regions, area ranges and the 100-detection cap (the models here
make fewer predictions than that).
"""
from __future__ import annotations

import numpy as np

COCO_THRESHOLDS = np.round(np.arange(0.5, 0.951, 0.05), 2)  # 0.50, 0.55, ..., 0.95
RECALL_POINTS = np.linspace(0.0, 1.0, 101)


def to_corners(boxes):
  """(cx, cy, w, h) -> (x0, y0, x1, y1), over the last axis."""
  boxes = np.asarray(boxes, np.float64)
  cx, cy, w, h = (boxes[..., i] for i in range(4))
  return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)


def _iou_giou(a, b):
  inter = np.prod(np.clip(np.minimum(a[..., 2:], b[..., 2:]) - np.maximum(a[..., :2], b[..., :2]),
                          0, None), axis=-1)
  area = lambda c: np.prod(np.clip(c[..., 2:] - c[..., :2], 0, None), axis=-1)  # noqa: E731
  union = area(a) + area(b) - inter
  enclosing = np.prod(np.maximum(a[..., 2:], b[..., 2:]) - np.minimum(a[..., :2], b[..., :2]),
                      axis=-1)
  iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
  empty = np.divide(enclosing - union, enclosing, out=np.zeros_like(inter), where=enclosing > 0)
  return iou, iou - empty


def box_iou(a_N4, b_M4):
  """[N, M] IoU of every box of a against every box of b."""
  return _iou_giou(to_corners(a_N4)[:, None], to_corners(b_M4)[None])[0]


def box_giou(a_N4, b_M4):
  """[N, M] generalised IoU (Rezatofighi et al. 2019) of every pair."""
  return _iou_giou(to_corners(a_N4)[:, None], to_corners(b_M4)[None])[1]


def _greedy_true_positives(iou_DG, thresholds):
  """[len(thresholds), D] bool: detection d (rows in decreasing score) is a true positive
  at threshold t (the module docstring's matching)."""
  D, G = iou_DG.shape
  tp = np.zeros((len(thresholds), D), bool)
  for k, t in enumerate(thresholds):
    taken = np.zeros(G, bool)
    for d in range(D):
      candidates = np.where(taken, -1.0, iou_DG[d])
      if G and candidates.max() >= t:
        g = int(candidates.argmax())
        taken[g], tp[k, d] = True, True
  return tp


def _interpolated_ap(tp_sorted, num_gt: int) -> float:
  """COCO's 101-point AP of detections already in decreasing score order."""
  if num_gt == 0:
    return float("nan")
  if tp_sorted.size == 0:
    return 0.0
  tps = np.cumsum(tp_sorted)
  fps = np.cumsum(~tp_sorted)
  recall = tps / num_gt
  precision = tps / (tps + fps)
  precision = np.maximum.accumulate(precision[::-1])[::-1]  # the monotone envelope
  idx = np.searchsorted(recall, RECALL_POINTS, side="left")
  return float(np.where(idx < len(precision), precision[np.minimum(idx, len(precision) - 1)],
                        0.0).mean())


def check_shapes(pred_boxes, pred_scores, pred_labels, gt_boxes, gt_labels, gt_valid):
  N, Q = pred_scores.shape
  if pred_boxes.shape != (N, Q, 4) or pred_labels.shape != (N, Q):
    raise ValueError(f"predictions must be pred_boxes [N, Q, 4], pred_scores and pred_labels "
                     f"[N, Q]; got {pred_boxes.shape}, {pred_scores.shape}, {pred_labels.shape}")
  M = gt_labels.shape[1] if gt_labels.ndim == 2 else -1
  if gt_labels.shape != (N, M) or gt_valid.shape != (N, M) or gt_boxes.shape != (N, M, 4):
    raise ValueError(f"ground truth must be gt_boxes [N, M, 4], gt_labels and gt_valid [N, M] "
                     f"with N={N} images; got {gt_boxes.shape}, {gt_labels.shape}, "
                     f"{gt_valid.shape}")


def average_precision(pred_boxes, pred_scores, pred_labels, gt_boxes, gt_labels, gt_valid, *,
                      num_classes: int, thresholds=COCO_THRESHOLDS) -> dict:
  """COCO-style AP (module docstring) of detections [N, Q] against ground truth [N, M].

  Returns {"ap50": mean over classes at IoU 0.5 (nan if 0.5 is not a threshold), "ap":
  mean over classes and thresholds, "per_class_ap50" / "per_class_ap": [num_classes]
  (nan for a class without ground truth), "thresholds": list}."""
  pred_boxes, pred_scores = np.asarray(pred_boxes), np.asarray(pred_scores, np.float64)
  pred_labels, gt_labels = np.asarray(pred_labels), np.asarray(gt_labels)
  gt_boxes, gt_valid = np.asarray(gt_boxes), np.asarray(gt_valid, bool)
  check_shapes(pred_boxes, pred_scores, pred_labels, gt_boxes, gt_labels, gt_valid)
  thresholds = np.asarray(thresholds, np.float64)
  ap_CT = np.full((num_classes, len(thresholds)), np.nan)
  for c in range(num_classes):
    scores, flags, num_gt = [], [], 0
    for i in range(len(pred_scores)):
      det = np.flatnonzero(pred_labels[i] == c)
      det = det[np.argsort(-pred_scores[i, det], kind="stable")]
      gt = np.flatnonzero(gt_valid[i] & (gt_labels[i] == c))
      num_gt += len(gt)
      if len(det):
        iou = box_iou(pred_boxes[i, det], gt_boxes[i, gt]) if len(gt) else np.zeros((len(det), 0))
        flags.append(_greedy_true_positives(iou, thresholds))
        scores.append(pred_scores[i, det])
    if not scores:
      ap_CT[c] = 0.0 if num_gt else np.nan
      continue
    order = np.argsort(-np.concatenate(scores), kind="stable")
    tp_TD = np.concatenate(flags, axis=1)[:, order]
    ap_CT[c] = [_interpolated_ap(tp_TD[k], num_gt) for k in range(len(thresholds))]
  at50 = np.flatnonzero(np.isclose(thresholds, 0.5))
  per_class_ap50 = ap_CT[:, at50[0]] if len(at50) else np.full(num_classes, np.nan)
  per_class_ap = ap_CT.mean(axis=1)  # a class has AP at every threshold or at none (nan)
  has_gt = ~np.isnan(per_class_ap)
  mean = lambda x: float(np.mean(x[has_gt])) if has_gt.any() else float("nan")  # noqa: E731
  return {"ap50": mean(per_class_ap50), "ap": mean(per_class_ap),
          "per_class_ap50": per_class_ap50.tolist(), "per_class_ap": per_class_ap.tolist(),
          "thresholds": thresholds.tolist()}
