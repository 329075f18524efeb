"""Synthetic scenes for object detection: 1 to N shapes on a noisy canvas, with their boxes.

Each scene is a square RGB canvas (image_size x image_size, dark with Gaussian noise)
holding between min_objects and max_objects filled shapes: rectangles, ellipses and
isosceles triangles (apex up). An object's class is its shape, or, with
colour_classes=True, its shape and its colour (red, green or blue): 3 shapes x 3 colours
= 9 classes. Otherwise each object takes a random bright colour that says nothing about
its class. Sizes are uniform in [min_size, max_size] of the canvas per side; a new
object is placed where its box overlaps every earlier box by IoU <= max_iou (rejection
sampling), so objects may touch and partly cover each other (later ones are painted on
top) but never hide one another. Boxes are the shapes' exact bounding boxes as
(cx, cy, w, h) normalised to [0, 1], as DETR predicts them.

Batches (data/base.py's contract, plus the objects):
  inputs        [B, H*W, 3] float32 pixels, row-major (image_shape (H, W, 3), patch 1)
  mask          [B, H*W] bool, all True (no padding)
  targets       [B, M] int32 class of each object slot (0 on padding), M = max_objects
  target_boxes  [B, M, 4] float32 (cx, cy, w, h)
  target_mask   [B, M] bool, True on the scene's real objects (they come first)
The train stream is endless and a pure function of (seed, step); the evaluation set
(validation, eval_size scenes) and test set (test_scenes(), for the reproduction) are
fixed draws from their own streams. Rasterising is vectorised numpy: a batch of 64
scenes of 64x64 takes milliseconds.
"""
from __future__ import annotations

import functools

import numpy as np

from attn_research.data.base import Task, TaskInfo, pad_batch, register_task, save_figure

SHAPES = ("rectangle", "ellipse", "triangle")
COLOURS = {"red": (0.9, 0.15, 0.15), "green": (0.15, 0.85, 0.2), "blue": (0.25, 0.35, 1.0)}
STREAMS = {"train": 0, "validation": 1, "test": 2}
DEFAULTS = dict(image_size=64, min_objects=1, max_objects=3, shapes=SHAPES,
                colour_classes=False, min_size=0.15, max_size=0.45, max_iou=0.2, noise=0.05,
                eval_size=256, seed=0)
SMOKE = dict(image_size=32, eval_size=16)


def check_settings(cfg) -> tuple[str, ...]:
  """The shapes as a tuple; ValueError naming a bad setting and what would be valid."""
  shapes = cfg["shapes"]
  if isinstance(shapes, str):
    shapes = tuple(s.strip() for s in shapes.split(",") if s.strip())
  shapes = tuple(shapes)
  unknown = [s for s in shapes if s not in SHAPES]
  if unknown or not shapes or len(set(shapes)) != len(shapes):
    raise ValueError(f"data.shapes={cfg['shapes']!r} must be distinct names from {SHAPES} "
                     f"(at least one); unknown: {unknown}")
  for key in ("image_size", "min_objects", "max_objects", "eval_size"):
    if not isinstance(cfg[key], int) or isinstance(cfg[key], bool) or cfg[key] < 1:
      raise ValueError(f"data.{key}={cfg[key]!r} must be a positive int")
  if cfg["image_size"] < 8:
    raise ValueError(f"data.image_size={cfg['image_size']} must be >= 8 pixels")
  if cfg["min_objects"] > cfg["max_objects"]:
    raise ValueError(f"data.min_objects={cfg['min_objects']} must be <= data.max_objects="
                     f"{cfg['max_objects']}")
  if not 0 < cfg["min_size"] <= cfg["max_size"] <= 1:
    raise ValueError(f"data.min_size={cfg['min_size']!r} and data.max_size={cfg['max_size']!r} "
                     "must satisfy 0 < min_size <= max_size <= 1 (shares of the canvas side)")
  if not 0 <= cfg["max_iou"] < 1:
    raise ValueError(f"data.max_iou={cfg['max_iou']!r} must be in [0, 1): the largest IoU "
                     "allowed between two objects' boxes")
  if not 0 <= cfg["noise"] <= 1:
    raise ValueError(f"data.noise={cfg['noise']!r} must be in [0, 1] (pixel noise std)")
  if not isinstance(cfg["colour_classes"], bool):
    raise ValueError(f"data.colour_classes={cfg['colour_classes']!r} must be True or False")
  return shapes


def class_names(shapes, colour_classes: bool) -> list[str]:
  """Class index -> name: the shape, or 'colour shape' (shape-major) with colour classes."""
  if not colour_classes:
    return list(shapes)
  return [f"{c} {s}" for s in shapes for c in COLOURS]


def _iou(box, boxes_K4):
  """IoU of one (cx, cy, w, h) box with each of K boxes (numpy, for placement)."""
  lo = np.maximum(box[:2] - box[2:] / 2, boxes_K4[:, :2] - boxes_K4[:, 2:] / 2)
  hi = np.minimum(box[:2] + box[2:] / 2, boxes_K4[:, :2] + boxes_K4[:, 2:] / 2)
  inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
  return inter / (box[2] * box[3] + boxes_K4[:, 2] * boxes_K4[:, 3] - inter)


def _place(rng, count, cfg):
  """[count, 4] boxes with pairwise IoU <= max_iou, or fewer when 100 draws found no room."""
  boxes = np.zeros((0, 4))
  for _ in range(count):
    for _ in range(100):
      w, h = rng.uniform(cfg["min_size"], cfg["max_size"], 2)
      box = np.array([rng.uniform(w / 2, 1 - w / 2), rng.uniform(h / 2, 1 - h / 2), w, h])
      if not len(boxes) or _iou(box, boxes).max() <= cfg["max_iou"]:
        boxes = np.vstack([boxes, box])
        break
  return boxes


def _shape_masks(kinds_K, boxes_K4, size: int):
  """[K, size, size] bool: which pixel centres lie inside each object."""
  centres = (np.arange(size) + 0.5) / size
  y, x = centres[None, :, None], centres[None, None, :]
  cx, cy, w, h = (boxes_K4[:, i, None, None] for i in range(4))
  dx, dy = np.abs(x - cx), y - (cy - h / 2)  # dy: down from the top edge, in [0, h] inside
  inside_box = (dx <= w / 2) & (dy >= 0) & (dy <= h)
  ellipse = (dx / (w / 2)) ** 2 + ((dy - h / 2) / (h / 2)) ** 2 <= 1
  triangle = inside_box & (dx <= (w / 2) * dy / h)
  kinds = kinds_K[:, None, None]
  return np.where(kinds == 0, inside_box, np.where(kinds == 1, ellipse, triangle))


def render_scenes(rng, n: int, cfg, shapes) -> dict:
  """n scenes drawn with rng: the module docstring's arrays (inputs as [n, H, W, 3])."""
  size, M = cfg["image_size"], cfg["max_objects"]
  kind_of = np.array([SHAPES.index(s) for s in shapes])
  images = rng.normal(0.05, cfg["noise"], (n, size, size, 3)).astype(np.float32)
  labels = np.zeros((n, M), np.int32)
  boxes = np.zeros((n, M, 4), np.float32)
  valid = np.zeros((n, M), bool)
  palette = np.array(list(COLOURS.values()), np.float32)
  for i in range(n):
    placed = _place(rng, int(rng.integers(cfg["min_objects"], M + 1)), cfg)
    k = len(placed)
    shape_idx = rng.integers(0, len(shapes), k)
    if cfg["colour_classes"]:
      colour_idx = rng.integers(0, len(palette), k)
      colours = palette[colour_idx] * rng.uniform(0.8, 1.0, (k, 1))
      labels[i, :k] = shape_idx * len(palette) + colour_idx
    else:
      colours = rng.uniform(0.35, 1.0, (k, 3))
      labels[i, :k] = shape_idx
    masks = _shape_masks(kind_of[shape_idx], placed, size)
    for j in range(k):  # later objects are painted over earlier ones
      images[i][masks[j]] = colours[j]
    boxes[i, :k], valid[i, :k] = placed, True
  return dict(images=np.clip(images, 0, 1), targets=labels, target_boxes=boxes,
              target_mask=valid)


def to_batch(scenes: dict) -> dict:
  """render_scenes's arrays -> a batch (pixels as H*W row-major vectors of 3)."""
  images = scenes["images"]
  n, H, W, C = images.shape
  return dict(inputs=images.reshape(n, H * W, C), mask=np.ones((n, H * W), bool),
              targets=scenes["targets"], target_boxes=scenes["target_boxes"],
              target_mask=scenes["target_mask"])


class SceneTask(Task):
  """The endless seeded train stream and the fixed validation set (module docstring)."""

  def __init__(self, cfg):
    self.shapes = check_settings(cfg)
    self.cfg = dict(cfg, shapes=self.shapes)
    self.classes = class_names(self.shapes, cfg["colour_classes"])
    size = cfg["image_size"]
    self.info = TaskInfo(input_kind="pixels", input_size=3, output_kind="set",
                         num_classes=len(self.classes), max_length=size * size,
                         image_shape=(size, size, 3))

  def scenes(self, split: str, n: int, seed: int, step: int = 0) -> dict:
    """n scenes of a split's stream (train: per step; validation/test: fixed)."""
    rng = np.random.default_rng([self.cfg["seed"], STREAMS[split], seed, step])
    return render_scenes(rng, n, self.cfg, self.shapes)

  def train_batch(self, step, batch_size, seed):
    return to_batch(self.scenes("train", batch_size, seed, step))

  @functools.cached_property
  def evaluation(self) -> dict:
    return to_batch(self.scenes("validation", self.cfg["eval_size"], 0))

  def test_set(self, n: int | None = None) -> dict:
    """The test scenes (n, default eval_size): touched once, by the reproduction."""
    return to_batch(self.scenes("test", n or self.cfg["eval_size"], 0))

  def eval_batches(self, batch_size):
    n = self.cfg["eval_size"]
    for start in range(0, n, batch_size):
      yield pad_batch({k: v[start:start + batch_size] for k, v in self.evaluation.items()},
                      batch_size)

  def render(self, example, out_dir):
    size = self.cfg["image_size"]
    image = np.asarray(example["inputs"]).reshape(size, size, 3)

    def draw(ax):
      draw_boxes(ax, image, example["target_boxes"][example["target_mask"]],
                 [self.classes[c] for c in example["targets"][example["target_mask"]]])
      ax.set_title(f"{int(example['target_mask'].sum())} objects")

    return save_figure(draw, out_dir, "example.png", figsize=(3, 3))

  def summary(self) -> str:
    c = self.cfg
    return (f"{c['image_size']}x{c['image_size']} RGB scenes with {c['min_objects']}-"
            f"{c['max_objects']} objects of {len(self.classes)} classes ({', '.join(self.classes)}); "
            f"boxes (cx, cy, w, h); endless train stream, {c['eval_size']} validation scenes")


def draw_boxes(ax, image_HWC, boxes_K4, names, colour="yellow", scores=None,
               show_image=True):
  """image (unless show_image is False: already drawn) with each (cx, cy, w, h) box
  outlined and named on ax (matplotlib)."""
  from matplotlib.patches import Rectangle
  H, W = image_HWC.shape[:2]
  if show_image:
    ax.imshow(np.clip(image_HWC, 0, 1), extent=(0, W, H, 0))
  for k, (box, name) in enumerate(zip(np.asarray(boxes_K4), names)):
    cx, cy, w, h = box * np.array([W, H, W, H])
    ax.add_patch(Rectangle((cx - w / 2, cy - h / 2), w, h, fill=False, color=colour, lw=1.2))
    label = name if scores is None else f"{name} {scores[k]:.2f}"
    ax.text(cx - w / 2, cy - h / 2, label, color=colour, fontsize=6, va="bottom")
  ax.set_xlim(0, W)
  ax.set_ylim(H, 0)
  ax.axis("off")


@register_task("shapes_detection", DEFAULTS, SMOKE)
def shapes_detection(cfg):
  """Synthetic detection scenes (module docstring); output kind 'set' (model 'detr',
  objective 'set_prediction')."""
  return SceneTask(cfg)
