"""Detection maths: Hungarian matching against scipy, GIoU against hand-computed boxes,
COCO-style AP on hand-made cases (measure/detection.py, kernels/boxes.py,
objectives/set_prediction.py)."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from attn_research.kernels import boxes as jax_boxes
from attn_research.measure import detection
from attn_research.objectives.set_prediction import (fixed_order_queries, hungarian_queries,
                                                     matching_cost)


def corners_to_cxcywh(x0, y0, x1, y1, scale=4.0):
  return [(x0 + x1) / 2 / scale, (y0 + y1) / 2 / scale, (x1 - x0) / scale, (y1 - y0) / scale]


# (box a, box b) in corners on a 4x4 canvas, and their GIoU by hand.
GIOU_CASES = [
    ((0, 0, 2, 2), (0, 0, 2, 2), 1.0),                          # identical
    ((0, 0, 2, 2), (1, 1, 3, 3), 1 / 7 - 2 / 9),                # inter 1, union 7, hull 9
    ((0, 0, 1, 1), (2, 0, 3, 1), 0 - 1 / 3),                    # disjoint: hull 3, union 2
    ((0, 0, 4, 2), (1, 0, 2, 2), 0.25),                         # b inside a: hull = union
    ((0, 0, 1, 1), (3, 3, 4, 4), 0 - 14 / 16),                  # far apart: hull 16, union 2
]


@pytest.mark.parametrize("a,b,expected", GIOU_CASES)
def test_giou_matches_hand_computed_boxes(a, b, expected):
  A, B = np.array([corners_to_cxcywh(*a)]), np.array([corners_to_cxcywh(*b)])
  assert detection.box_giou(A, B)[0, 0] == pytest.approx(expected, abs=1e-9)
  assert float(jax_boxes.pairwise_giou(jnp.asarray(A), jnp.asarray(B))[0, 0]) == pytest.approx(
      expected, abs=1e-5)
  assert float(jax_boxes.giou(jnp.asarray(A), jnp.asarray(B))[0]) == pytest.approx(expected,
                                                                                   abs=1e-5)
  iou = max(expected, 0) if expected >= 0 else 0.0
  if a != (0, 0, 2, 2) or b != (1, 1, 3, 3):  # the one case where IoU != max(GIoU, 0)
    assert detection.box_iou(A, B)[0, 0] == pytest.approx(iou, abs=1e-9)
  else:
    assert detection.box_iou(A, B)[0, 0] == pytest.approx(1 / 7)


def test_hungarian_matches_scipy_on_random_costs():
  rng = np.random.default_rng(0)
  solve = jax.jit(hungarian_queries)
  for Q, M in [(5, 5), (8, 3), (6, 1), (10, 4)]:
    for _ in range(5):
      cost = rng.normal(size=(Q, M))
      query_of = np.asarray(solve(jnp.asarray(cost, jnp.float32)))
      assert len(set(query_of.tolist())) == M  # one query per object
      rows, cols = linear_sum_assignment(cost)
      assert cost[query_of, np.arange(M)].sum() == pytest.approx(cost[rows, cols].sum(), abs=1e-5)


def test_padded_targets_do_not_change_the_matching_of_real_ones():
  """A [Q, M] cost whose padding columns are 0: the real objects get the queries scipy
  gives on the real columns alone (more queries than objects, several paddings)."""
  rng = np.random.default_rng(1)
  Q, M = 7, 4
  for n_real in (1, 2, 3, 4):
    probs = jax.nn.softmax(jnp.asarray(rng.normal(size=(Q, 3)), jnp.float32), -1)
    boxes = jnp.asarray(rng.uniform(0.2, 0.6, (Q, 4)), jnp.float32)
    tboxes = jnp.asarray(rng.uniform(0.2, 0.6, (M, 4)), jnp.float32)
    labels = jnp.asarray(rng.integers(0, 3, M))
    valid = jnp.arange(M) < n_real
    settings = dict(class_weight=1.0, l1_weight=5.0, giou_weight=2.0)
    cost = matching_cost(probs, boxes, labels, tboxes, valid, settings)
    assert np.all(np.asarray(cost)[:, n_real:] == 0)
    query_of = np.asarray(jax.vmap(hungarian_queries)(cost[None]))[0]
    real = np.asarray(cost)[:, :n_real]
    rows, cols = linear_sum_assignment(real)
    assert real[query_of[:n_real], np.arange(n_real)].sum() == pytest.approx(
        real[rows, cols].sum(), abs=1e-5)


def test_hungarian_is_optimal_against_brute_force():
  rng = np.random.default_rng(2)
  Q, M = 5, 3
  cost = rng.uniform(size=(Q, M))
  best = min(sum(cost[p[j], j] for j in range(M)) for p in itertools.permutations(range(Q), M))
  query_of = np.asarray(hungarian_queries(jnp.asarray(cost, jnp.float32)))
  assert cost[query_of, np.arange(M)].sum() == pytest.approx(best, abs=1e-5)


def test_fixed_order_sends_objects_left_to_right_to_queries():
  boxes = jnp.asarray([[0.8, 0.5, 0.1, 0.1], [0.2, 0.5, 0.1, 0.1], [0.5, 0.1, 0.1, 0.1],
                       [0.0, 0.0, 0.0, 0.0]])
  valid = jnp.asarray([True, True, True, False])
  query_of = np.asarray(fixed_order_queries(boxes, valid))
  assert query_of[:3].tolist() == [2, 0, 1]  # x = 0.8 -> third, 0.2 -> first, 0.5 -> second


# ------------------------------------------------------------------------ AP

GT_BOXES = np.array([[[0.3, 0.3, 0.2, 0.2], [0.7, 0.7, 0.2, 0.3]],
                     [[0.5, 0.5, 0.4, 0.4], [0.0, 0.0, 0.0, 0.0]]])
GT_LABELS = np.array([[0, 1], [1, 0]])
GT_VALID = np.array([[True, True], [True, False]])


def ap(pred_boxes, scores, labels, **kw):
  return detection.average_precision(np.asarray(pred_boxes, float), np.asarray(scores, float),
                                     np.asarray(labels), GT_BOXES, GT_LABELS, GT_VALID,
                                     num_classes=2, **kw)


def test_perfect_predictions_have_ap_one():
  result = ap(GT_BOXES, [[0.9, 0.8], [0.7, 0.0]], [[0, 1], [1, 1]]
              )  # the padding slot predicts class 1 with score 0: a low false positive
  assert result["ap50"] == 1.0 and result["ap"] == 1.0
  assert result["per_class_ap50"] == [1.0, 1.0]


def test_shuffled_labels_and_boxes_score_lower():
  perfect = ap(GT_BOXES, [[0.9, 0.8], [0.7, 0.1]], [[0, 1], [1, 0]])
  swapped_labels = ap(GT_BOXES, [[0.9, 0.8], [0.7, 0.1]], [[1, 0], [1, 0]])
  shuffled_boxes = ap(GT_BOXES[::-1], [[0.9, 0.8], [0.7, 0.1]], [[0, 1], [1, 0]])
  assert perfect["ap50"] == 1.0
  assert swapped_labels["ap50"] < perfect["ap50"] and shuffled_boxes["ap50"] < perfect["ap50"]


def test_a_missed_object_halves_the_recall():
  """Class 1 has two objects; only one is found: precision 1 up to recall 0.5, then 0."""
  result = ap([[[0.3, 0.3, 0.2, 0.2], [0.1, 0.9, 0.05, 0.05]], GT_BOXES[1]],
              [[0.9, 0.0], [0.8, 0.0]], [[0, 0], [1, 0]])
  assert result["per_class_ap50"][1] == pytest.approx(51 / 101)
  # Class 0's one object is found first; the far-off second guess is a lower false positive.
  assert result["per_class_ap50"][0] == 1.0


def test_a_duplicate_ranked_above_a_true_detection_is_a_false_positive():
  """Class 1: a true box (0.9), its duplicate (0.8), the other image's true box (0.7):
  precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1 -> (51 * 1 + 50 * 2/3) / 101."""
  boxes = [[GT_BOXES[0, 0], GT_BOXES[0, 1], GT_BOXES[0, 1]], [GT_BOXES[1, 0]] * 3]
  result = ap(boxes, [[0.95, 0.9, 0.8], [0.7, 0.0, 0.0]], [[0, 1, 1], [1, 0, 0]])
  assert result["per_class_ap50"][1] == pytest.approx((51 + 50 * 2 / 3) / 101)
  # The same duplicate scored below every true box costs nothing (COCO's ranking).
  late = ap(boxes, [[0.95, 0.9, 0.5], [0.7, 0.0, 0.0]], [[0, 1, 1], [1, 0, 0]])
  assert late["per_class_ap50"][1] == 1.0


def test_ap_over_thresholds_counts_the_thresholds_a_box_passes():
  """A box of IoU 0.62 with its object passes 0.50, 0.55, 0.60 of the ten thresholds."""
  gt = np.array([[[0.5, 0.5, 0.2, 0.2]]])
  pred = np.array([[[0.5, 0.5, 0.2, 0.2 * 0.62]]])
  result = detection.average_precision(pred, np.array([[0.9]]), np.array([[0]]), gt,
                                       np.array([[0]]), np.array([[True]]), num_classes=1)
  assert result["ap50"] == 1.0 and result["ap"] == pytest.approx(0.3)


def test_a_class_without_objects_is_left_out_and_bad_shapes_are_refused():
  result = detection.average_precision(GT_BOXES, np.ones((2, 2)), GT_LABELS, GT_BOXES,
                                       GT_LABELS, GT_VALID, num_classes=3)
  assert np.isnan(result["per_class_ap50"][2]) and result["ap50"] == 1.0
  with pytest.raises(ValueError, match=r"pred_boxes \[N, Q, 4\]"):
    detection.average_precision(GT_BOXES[..., :3], np.ones((2, 2)), GT_LABELS, GT_BOXES,
                                GT_LABELS, GT_VALID, num_classes=2)
