"""DETR's set prediction loss (Carion et al. 2020, arXiv 2005.12872, section 3.1).

The model (models/detr.py) predicts, after each of its L decoder layers, Q (class
logits over C classes + "no object", box) pairs; an image holds n <= M <= Q objects
(batch keys targets [B, M], target_boxes [B, M, 4], target_mask [B, M]; data/scenes.py).

Assignment (set_prediction.assignment):
  hungarian    per image and per decoder layer, the one-to-one matching of objects to
               queries with the least total cost
                 cost(query q, object j) = -class_weight p_q(c_j) + l1_weight |b_q - b_j|_1
                                           - giou_weight GIoU(b_q, b_j)
               found by optax.assignment.hungarian_algorithm (jit- and vmap-able) on the
               [Q, M] cost; padding objects get the same cost (0) against every query, so
               they do not change which queries the real objects take, and are dropped
               afterwards. The matching is not differentiated (stop_gradient).
  fixed_order  the baseline: no matching; the objects sorted by their box centre from left
               to right (ties: top to bottom) go to queries 0, 1, ..., n-1 in that order.
Either way the queries left over are trained to say "no object".

Loss per image and decoder layer: cross-entropy over all Q queries, weighted mean with
weight no_object_weight on "no object" targets and 1 on objects, plus l1_weight x L1 and
giou_weight x (1 - GIoU) summed over the matched pairs and divided by the image's object
count (DETR divides by the batch's count: a per-image mean keeps the loss a sum over
images, so microbatches and devices add up exactly). With aux_loss the losses of all
decoder layers are added (DETR's auxiliary decoding losses), else the last layer only.
The objective's loss is the mean over real images (a padded eval row, all-False input
mask, is not counted).

Metrics (last decoder layer): loss, loss_ce, loss_l1, loss_giou and count_accuracy, the
share of images where the number of queries whose most likely class is not "no object"
equals the number of objects. AP is computed from the predictions by the reproduction
(measure/detection.py).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from attn_research.kernels import boxes as box_ops
from attn_research.objectives.base import Objective, register_objective, settings_block
from attn_research.registry import check_choice

ASSIGNMENTS = ("hungarian", "fixed_order")
SET_PREDICTION_DEFAULTS = dict(assignment="hungarian", class_weight=1.0, l1_weight=5.0,
                               giou_weight=2.0, no_object_weight=0.1, aux_loss=True)
DUMMY_BOX = (0.5, 0.5, 0.1, 0.1)  # stands in for padding objects: keeps GIoU's gradient finite


def set_prediction_settings(config) -> dict:
  """config.set_prediction over SET_PREDICTION_DEFAULTS, refused when a key is unknown or a
  value is out of range."""
  s = settings_block(config, "set_prediction", SET_PREDICTION_DEFAULTS)
  check_choice("set_prediction.assignment", s["assignment"], ASSIGNMENTS)
  for key in ("class_weight", "l1_weight", "giou_weight", "no_object_weight"):
    if isinstance(s[key], bool) or not isinstance(s[key], (int, float)) or not s[key] >= 0:
      raise ValueError(f"set_prediction.{key}={s[key]!r} must be a number >= 0 (DETR: "
                       f"{SET_PREDICTION_DEFAULTS[key]})")
  if not isinstance(s["aux_loss"], bool):
    raise ValueError(f"set_prediction.aux_loss={s['aux_loss']!r} must be True or False")
  return s


def check_model(config, model):
  """Refuses a model without object queries, and a task with more objects per image than
  the model has queries (each object needs its own query), before compiling."""
  queries = getattr(model, "num_queries", None)
  data = config.data.get("name") if "data" in config else None
  if queries is None:
    raise ValueError(f"objective='set_prediction' needs a model that predicts a set of "
                     f"(class, box) pairs with object queries, such as model.name='detr'; got "
                     f"{type(model).__name__}")
  max_objects = config.data.get("max_objects") if "data" in config else None
  if max_objects is None:
    raise ValueError(f"objective='set_prediction' needs a detection task with data.max_objects "
                     f"(such as data.name='shapes_detection'); got data.name={data!r}")
  if max_objects > queries:
    raise ValueError(f"data.max_objects={max_objects} is more than model.num_queries={queries}: "
                     f"every object needs its own query; use num_queries >= {max_objects}")


def matching_cost(prob_QC, boxes_Q4, labels_M, tboxes_M4, valid_M, s):
  """[Q, M] DETR matching cost (module docstring); 0 in the columns of padding objects."""
  cost = (-s["class_weight"] * prob_QC[:, labels_M]
          + s["l1_weight"] * jnp.abs(boxes_Q4[:, None, :] - tboxes_M4[None, :, :]).sum(-1)
          - s["giou_weight"] * box_ops.pairwise_giou(boxes_Q4, tboxes_M4))
  return jnp.where(valid_M[None, :], cost, 0.0)


def hungarian_queries(cost_QM):
  """[M] the query each object is matched to, minimising the total cost (Q >= M)."""
  rows, cols = optax.assignment.hungarian_algorithm(cost_QM)
  return jnp.zeros(cost_QM.shape[1], jnp.int32).at[cols].set(rows.astype(jnp.int32))


def fixed_order_queries(tboxes_M4, valid_M):
  """[M] query of each object in the fixed-order baseline: rank by centre x (then y)."""
  key = jnp.where(valid_M, tboxes_M4[:, 0] + 1e-3 * tboxes_M4[:, 1], 3.0)
  order = jnp.argsort(key, stable=True)  # order[k] = the object with rank k
  return jnp.zeros_like(order).at[order].set(jnp.arange(order.shape[0])).astype(jnp.int32)


def image_losses(logits_QK, boxes_Q4, labels_M, tboxes_M4, valid_M, s):
  """(loss, ce, l1, giou term, count correct) of one image and decoder layer."""
  Q, K = logits_QK.shape
  no_object = K - 1
  tboxes_M4 = jnp.where(valid_M[:, None], tboxes_M4, jnp.asarray(DUMMY_BOX, tboxes_M4.dtype))
  if s["assignment"] == "hungarian":
    prob = jax.nn.softmax(logits_QK, -1)
    cost = matching_cost(prob, boxes_Q4, labels_M, tboxes_M4, valid_M, s)
    query_of = hungarian_queries(jax.lax.stop_gradient(cost))
  else:
    query_of = fixed_order_queries(tboxes_M4, valid_M)
  target_class = jnp.full((Q,), no_object, jnp.int32).at[jnp.where(valid_M, query_of, Q)].set(
      labels_M.astype(jnp.int32), mode="drop")
  weight = jnp.where(target_class == no_object, s["no_object_weight"], 1.0)
  ce_Q = optax.softmax_cross_entropy_with_integer_labels(logits_QK, target_class)
  ce = (weight * ce_Q).sum() / jnp.maximum(weight.sum(), 1e-9)
  matched_M4 = boxes_Q4[query_of]
  v = valid_M.astype(jnp.float32)
  n = jnp.maximum(v.sum(), 1.0)
  l1 = (v * jnp.abs(matched_M4 - tboxes_M4).sum(-1)).sum() / n
  giou_term = (v * (1.0 - box_ops.giou(matched_M4, tboxes_M4))).sum() / n
  loss = ce + s["l1_weight"] * l1 + s["giou_weight"] * giou_term
  predicted = (jnp.argmax(logits_QK, -1) != no_object).sum()
  return loss, ce, l1, giou_term, (predicted == valid_M.sum()).astype(jnp.float32)


@register_objective("set_prediction")
class SetPrediction(Objective):
  """DETR's set loss with Hungarian matching or the fixed-order baseline (module docstring)."""
  progress_metrics = ("loss", "count_accuracy")

  def __init__(self, config, model):
    self.settings = set_prediction_settings(config)
    check_model(config, model)
    super().__init__(config, model)

  def loss_and_sums(self, output, batch):
    logits_LBQK = output["logits"].astype(jnp.float32)
    boxes_LBQ4 = output["boxes"].astype(jnp.float32)
    per_image = jax.vmap(lambda lg, bx, lab, tb, val: image_losses(lg, bx, lab, tb, val,
                                                                   self.settings))
    per_layer = jax.vmap(per_image, in_axes=(0, 0, None, None, None))
    loss_LB, ce_LB, l1_LB, giou_LB, count_LB = per_layer(
        logits_LBQK, boxes_LBQ4, batch["targets"], batch["target_boxes"].astype(jnp.float32),
        batch["target_mask"])
    real_B = batch["mask"].any(-1).astype(jnp.float32)  # padded eval rows have no pixels
    total_B = loss_LB.sum(0) if self.settings["aux_loss"] else loss_LB[-1]
    sums = {"loss": (real_B * total_B).sum(), "loss_ce": (real_B * ce_LB[-1]).sum(),
            "loss_l1": (real_B * l1_LB[-1]).sum(), "loss_giou": (real_B * giou_LB[-1]).sum(),
            "count_accuracy": (real_B * count_LB[-1]).sum(), "count": real_B.sum()}
    return sums["loss"] / jnp.maximum(sums["count"], 1.0), sums
