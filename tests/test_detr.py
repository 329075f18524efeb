"""DETR on synthetic scenes: the scenes (data/scenes.py), the model (models/detr.py), the
set prediction objective (objectives/set_prediction.py) and their refusals; the loop's
resume and data parallelism with this objective (slow)."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attn_research.data import get_task, task_defaults
from attn_research.measure import detection
from attn_research.models import get_model
from attn_research.models.detr import detections
from attn_research.objectives.set_prediction import (SET_PREDICTION_DEFAULTS, image_losses,
                                                     set_prediction_settings)
from attn_research.train.loop import prepare, run
from tests.conftest import ROOT, make_config, last_json_line, run_on_devices

SMOKE = "experiments/detr.py:smoke"


def scene_task(**settings):
  return get_task(dict(task_defaults("shapes_detection"), **settings))


# ------------------------------------------------------------------- the scenes

def test_scenes_are_seeded_in_range_and_overlaps_capped():
  task = scene_task(image_size=32, max_objects=4, max_iou=0.1)
  a, b = task.train_batch(5, 32, seed=0), task.train_batch(5, 32, seed=0)
  other = task.train_batch(6, 32, seed=0)
  assert all(np.array_equal(a[k], b[k]) for k in a)
  assert not np.array_equal(a["inputs"], other["inputs"])
  assert a["inputs"].shape == (32, 32 * 32, 3) and a["target_boxes"].shape == (32, 4, 4)
  n = a["target_mask"].sum(1)
  assert n.min() >= 1 and n.max() <= 4 and len(set(n.tolist())) > 1
  assert np.all(a["target_mask"][:, :-1] >= a["target_mask"][:, 1:])  # real objects first
  boxes = a["target_boxes"][a["target_mask"]]
  corners = detection.to_corners(boxes)
  assert corners.min() >= -1e-6 and corners.max() <= 1 + 1e-6
  for i in range(32):
    real = a["target_boxes"][i][a["target_mask"][i]]
    iou = detection.box_iou(real, real)
    assert np.all(iou[~np.eye(len(real), dtype=bool)] <= 0.1 + 1e-6)
  assert set(a["targets"][a["target_mask"]].tolist()) == {0, 1, 2}
  val = list(task.eval_batches(100))
  assert len(val) == 3 and val[-1]["mask"][56:].sum() == 0  # 256 scenes, padded rows empty
  assert not np.array_equal(task.test_set()["inputs"], task.evaluation["inputs"])


@pytest.mark.parametrize("shape", ["rectangle", "ellipse", "triangle"])
def test_each_shape_fills_its_box(shape):
  """One object on a noise-free canvas: the painted pixels span the box, to a pixel."""
  task = scene_task(image_size=48, min_objects=1, max_objects=1, shapes=(shape,), noise=0.0,
                    eval_size=8)
  batch = task.evaluation
  for i in range(8):
    image = batch["inputs"][i].reshape(48, 48, 3)
    ys, xs = np.nonzero(image.max(-1) > 0.2)
    x0, y0, x1, y1 = detection.to_corners(batch["target_boxes"][i, 0]) * 48
    assert abs(xs.min() - x0) <= 1 and abs(xs.max() + 1 - x1) <= 1, (shape, i)
    apex = 2 if shape == "triangle" else 1  # a triangle's apex is thinner than a pixel
    assert abs(ys.min() - y0) <= apex and abs(ys.max() + 1 - y1) <= 1, (shape, i)
    area = len(xs) / ((x1 - x0) * (y1 - y0))
    expected = {"rectangle": 1.0, "ellipse": np.pi / 4, "triangle": 0.5}[shape]
    assert abs(area - expected) < 0.2, (shape, area)


def test_colour_classes_make_nine_classes():
  task = scene_task(image_size=16, colour_classes=True, eval_size=64)
  assert task.info.num_classes == 9 and task.classes[0] == "red rectangle"
  assert task.evaluation["targets"].max() <= 8


@pytest.mark.parametrize("settings,message", [
    (dict(shapes=("rectangle", "hexagon")), "data.shapes=.*hexagon"),
    (dict(shapes=()), "data.shapes="),
    (dict(min_objects=4, max_objects=3), "data.min_objects=4"),
    (dict(max_objects=0), "data.max_objects=0"),
    (dict(max_iou=1.0), "data.max_iou=1.0"),
    (dict(min_size=0.6, max_size=0.5), "data.min_size=0.6"),
    (dict(colour_classes="yes"), "data.colour_classes='yes'"),
])
def test_bad_scene_settings_are_refused(settings, message):
  with pytest.raises(ValueError, match=message):
    scene_task(**settings)


# --------------------------------------------------------------- model and loss

@pytest.mark.slow  # compiles DETR forward and its attention maps: ~8 s
def test_detr_predicts_a_box_set_per_layer_and_shows_its_cross_attention():
  config = make_config(SMOKE)
  task = get_task(config.data)
  model = get_model(config.model, task.info, rngs=nnx.Rngs(0))
  batch = task.train_batch(0, 2, 0)
  out = model(jnp.asarray(batch["inputs"]), jnp.asarray(batch["mask"]))
  L, Q, K = config.model.decoder_layers, config.model.num_queries, task.info.num_classes + 1
  assert out["logits"].shape == (L, 2, Q, K) and out["boxes"].shape == (L, 2, Q, 4)
  assert float(out["boxes"].min()) > 0 and float(out["boxes"].max()) < 1
  weights = model.cross_attention_weights(jnp.asarray(batch["inputs"]))
  Hg, Wg = model.grid_shape()
  assert weights.shape == (L, 2, config.model.num_heads, Q, Hg * Wg)
  np.testing.assert_allclose(np.asarray(weights.sum(-1)), 1.0, rtol=1e-5)
  det = detections(out)
  assert det["boxes"].shape == (2, Q, 4) and int(det["labels"].max()) < task.info.num_classes


def test_matching_makes_the_loss_a_function_of_the_set():
  """Permuting the queries changes nothing under Hungarian matching, but changes the
  fixed-order loss; the true set predicted scores lower than a random one."""
  rng = np.random.default_rng(0)
  Q, K = 5, 4
  labels = jnp.asarray([2, 0, 1])
  tboxes = jnp.asarray([[0.7, 0.3, 0.2, 0.2], [0.2, 0.6, 0.3, 0.2], [0.5, 0.8, 0.2, 0.1]])
  valid = jnp.asarray([True, True, False])
  logits = jnp.asarray(rng.normal(size=(Q, K)), jnp.float32)
  boxes = jnp.asarray(rng.uniform(0.2, 0.8, (Q, 4)), jnp.float32)
  perm = jnp.asarray([3, 0, 4, 1, 2])

  def losses(assignment):
    s = dict(SET_PREDICTION_DEFAULTS, assignment=assignment)
    return jax.jit(lambda lg, bx: image_losses(lg, bx, labels, tboxes, valid, s))

  for assignment, same in (("hungarian", True), ("fixed_order", False)):
    both = jax.vmap(losses(assignment))(jnp.stack([logits, logits[perm]]),
                                        jnp.stack([boxes, boxes[perm]]))[0]
    assert (abs(float(both[0] - both[1])) < 1e-5) == same, (assignment, both)
  perfect_logits = jnp.full((Q, K), -5.0).at[:, K - 1].set(5.0)
  perfect_logits = perfect_logits.at[3, 2].set(10.0).at[1, 0].set(10.0)
  perfect_boxes = boxes.at[3].set(tboxes[0]).at[1].set(tboxes[1])
  loss, _, l1, giou, count_ok = jax.vmap(losses("hungarian"))(
      jnp.stack([perfect_logits, logits]), jnp.stack([perfect_boxes, boxes]))
  assert float(l1[0]) < 1e-6 and float(giou[0]) < 1e-5 and count_ok.tolist() == [1.0, 0.0]
  assert float(loss[0]) < 0.01 < float(loss[1])


def test_more_objects_than_queries_is_refused_before_compiling(tmp_path):
  with pytest.raises(ValueError, match="data.max_objects=3 is more than model.num_queries=2"):
    prepare(make_config(SMOKE, model__num_queries=2), tmp_path)
  assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("settings,message", [
    (dict(assignment="greedy"), "set_prediction.assignment='greedy'"),
    (dict(no_object_weight=-1.0), "set_prediction.no_object_weight=-1.0"),
    (dict(aux="yes"), r"set_prediction \['aux'\] is not a set_prediction setting"),
])
def test_bad_set_prediction_settings_are_refused(settings, message):
  config = make_config(SMOKE)
  with config.unlocked():
    config.set_prediction.update(settings)
  with pytest.raises(ValueError, match=message):
    set_prediction_settings(config)


def test_detection_pieces_refuse_the_wrong_partner(tmp_path):
  # DETR on a classification task, a classifier with the set objective.
  with pytest.raises(ValueError, match="model.name='detr'.*shapes_detection"):
    prepare(make_config(SMOKE, data__name="digits"), tmp_path)
  with pytest.raises(ValueError, match="objective='set_prediction'.*detr"):
    prepare(make_config("experiments/base.py:smoke", objective="set_prediction"), tmp_path)


@pytest.mark.slow  # ~13 s of compiling; experiments/detr.py:smoke trains DETR in the fast tier
def test_detr_trains_a_few_steps(tmp_path):
  summary = run(make_config(SMOKE), tmp_path, progress=False)
  rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  train = [r for r in rows if r["split"] == "train"]
  assert all(np.isfinite(r["loss"]) and r["loss"] > 0 for r in train)
  norms = [r["param_norm"] for r in train]
  assert abs(norms[-1] - norms[0]) > 1e-6, norms
  ev = summary["final_eval"]
  assert {"loss", "loss_ce", "loss_l1", "loss_giou", "count_accuracy"} <= set(ev)
  assert 0 <= ev["count_accuracy"] <= 1 and summary["objective"] == "set_prediction"


# ------------------------------------------------------------------------ slow

def ap50_of(workdir, task):
  """AP50 on the validation scenes of the trained run in workdir."""
  from attn_research.train.restore import load_trained
  trained = load_trained(workdir)
  batch = task.evaluation
  det = detections(trained.model(jnp.asarray(batch["inputs"]), jnp.asarray(batch["mask"])))
  return detection.average_precision(
      np.asarray(det["boxes"]), np.asarray(det["scores"]), np.asarray(det["labels"]),
      batch["target_boxes"], batch["targets"], batch["target_mask"],
      num_classes=task.info.num_classes)["ap50"]


@pytest.mark.slow  # ~60 s on 2 cores
def test_detr_learns_to_detect_one_shape(tmp_path):
  """One object per 24x24 scene: the loss falls and AP50 beats a trivial detector that
  puts every class's box at the average object's place."""
  config = make_config(SMOKE, data__image_size=24, data__min_objects=1, data__max_objects=1,
                       data__eval_size=128, model__d_model=32, model__backbone_width=16,
                       model__num_queries=3, model__norm_groups=4, train__num_steps=300,
                       train__batch_size=32, train__learning_rate=2e-3,
                       train__eval_every=300, train__checkpoint_every=300, train__log_every=50)
  run(config, tmp_path, progress=False)
  rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  losses = [r["loss"] for r in rows if r["split"] == "train"]
  assert losses[-1] < 0.7 * losses[0], losses
  task = get_task(config.data)
  batch = task.evaluation
  n, C = len(batch["targets"]), task.info.num_classes
  mean_box = batch["target_boxes"][batch["target_mask"]].mean(0)
  trivial = detection.average_precision(
      np.broadcast_to(mean_box, (n, C, 4)), np.ones((n, C)), np.tile(np.arange(C), (n, 1)),
      batch["target_boxes"], batch["targets"], batch["target_mask"], num_classes=C)["ap50"]
  learned = ap50_of(tmp_path, task)
  assert learned > trivial + 0.2, (learned, trivial)


TWO_DEVICES = f"""
import json, sys
sys.path.insert(0, {str(ROOT)!r})
import jax
from tests.conftest import make_config
from attn_research.train.loop import run
assert jax.device_count() == 2, jax.devices()
summary = run(make_config({SMOKE!r}, train__log_every=1), sys.argv[1], progress=False)
print(json.dumps(summary))
"""


@pytest.mark.slow  # a subprocess with 2 forced CPU devices: ~30 s
def test_two_devices_match_one(tmp_path):
  single = run(make_config(SMOKE, train__log_every=1), tmp_path / "one", progress=False)
  multi = last_json_line(run_on_devices(2, TWO_DEVICES, tmp_path / "two", timeout=300))
  assert multi["device"]["count"] == 2 and single["device"]["count"] == 1
  for split in ("final_train", "final_eval"):
    for key in ("loss", "loss_l1", "count_accuracy"):
      assert multi[split][key] == pytest.approx(single[split][key], rel=1e-4, abs=1e-5), (
          split, key)


@pytest.mark.slow  # two short runs: ~25 s
def test_interrupted_detr_run_resumes_to_identical_results(tmp_path, monkeypatch):
  from attn_research.train import writer as writer_lib
  settings = dict(train__num_steps=4, train__checkpoint_every=2, train__log_every=1,
                  train__eval_every=2)
  reference = run(make_config(SMOKE, **settings), tmp_path / "straight", progress=False)
  real_write = writer_lib.MetricWriter.write

  def write(self, step, split, metrics):
    real_write(self, step, split, metrics)
    if step == 3 and split == "train":
      raise KeyboardInterrupt

  monkeypatch.setattr(writer_lib.MetricWriter, "write", write)
  with pytest.raises(KeyboardInterrupt):
    run(make_config(SMOKE, **settings), tmp_path / "killed", progress=False)
  monkeypatch.setattr(writer_lib.MetricWriter, "write", real_write)
  resumed = run(make_config(SMOKE, **settings), tmp_path / "killed", progress=False)
  assert resumed["resumed_from_step"] == 3
  assert resumed["final_eval"] == reference["final_eval"]
  assert resumed["final_train"] == reference["final_train"]
