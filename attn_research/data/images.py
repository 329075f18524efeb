"""Images as vector sets."""
from __future__ import annotations

import functools
import importlib.util
import pathlib

import einops
import numpy as np

from attn_research.data.base import (ArrayTask, TaskInfo, check_eval_split, register_task,
                                     save_figure)


def image_to_vectors(images_BHW, patch_size: int):
  """[B, H, W] images -> [B, (H/p) * (W/p), p * p] patch vectors, row-major (p=1: pixels)."""
  _, H, W = images_BHW.shape
  p = patch_size
  if p < 1 or H % p or W % p:
    raise ValueError(f"patch_size={p} must divide the image size {H}x{W}")
  return einops.rearrange(images_BHW, "b (h p1) (w p2) -> b (h w) (p1 p2)", p1=p, p2=p)


def vectors_to_image(vectors_TF, image_shape, patch_size: int):
  """Inverse of image_to_vectors for one image: [T, p*p*C] -> [H, W, C]."""
  H, W, C = image_shape
  p = patch_size
  return einops.rearrange(vectors_TF, "(h w) (c p1 p2) -> (h p1) (w p2) c", h=H // p, w=W // p,
                          p1=p, p2=p, c=C)


class ImageTask(ArrayTask):
  """Images as vector sets; remembers the image shape so an example can be drawn."""

  def __init__(self, info, train, evaluation, *, image_shape, patch_size):
    super().__init__(info, train, evaluation)
    self.image_shape, self.patch_size = tuple(image_shape), patch_size

  def render(self, example, out_dir):
    image = vectors_to_image(np.asarray(example["inputs"]), self.image_shape, self.patch_size)

    def draw(ax):
      ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray_r")
      ax.set_title(f"label {int(example['targets'])}: {self.info.max_length} vectors of "
                   f"{self.info.input_size}")
      ax.axis("off")

    return save_figure(draw, out_dir, "example.png", figsize=(3, 3))


@functools.lru_cache(maxsize=1)
def _load_digits():
  """(images [1797, 8, 8] in [0, 1], labels [1797]); loaded once per process.

  Reads the CSV that scikit-learn ships (what sklearn.datasets.load_digits reads)
  without importing scikit-learn, which costs seconds on a small machine.
  """
  spec = importlib.util.find_spec("sklearn")  # finds the package without importing it
  path = pathlib.Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"
  if path.exists():
    table = np.loadtxt(path, delimiter=",", dtype=np.float32)
    images, labels = table[:, :-1].reshape(-1, 8, 8), table[:, -1]
  else:  # a future scikit-learn that moved the file
    from sklearn.datasets import load_digits
    bunch = load_digits()
    images, labels = bunch.images, bunch.target
  return (images / 16.0).astype(np.float32), labels.astype(np.int32)


DIGITS_SPLITS = ("test", "validation")


@register_task("digits", dict(view="patches", patch_size=2, eval_fraction=0.2, seed=0,
                              validation_fraction=0.0, eval_split="test", label_fraction=1.0))
def digits(cfg):
  """scikit-learn's handwritten digits (1,797 images of 8x8, 10 classes; UCI optdigits).

  view="pixels": 64 vectors of one pixel each (the lecture's "an image is a set of
  pixel vectors"); view="patches": (8/p)^2 vectors of p*p pixels (ViT style).
  One label per image; a seeded, stratified-by-chance split keeps eval_fraction aside
  (the test images) and, when validation_fraction > 0, that share of all images more
  (the validation images); eval_split says which of the two the run evaluates on.
  label_fraction < 1 keeps the labels of round(label_fraction * n) of each class's n
  training images (at least one), drawn with seed (pretrain-then-fine-tune curves).
  """
  if cfg["view"] not in ("pixels", "patches"):
    raise ValueError(f"data.view={cfg['view']!r} must be 'pixels' or 'patches'")
  for key in ("eval_fraction", "validation_fraction"):
    if not 0 <= cfg[key] < 1 or (key == "eval_fraction" and not cfg[key]):
      raise ValueError(f"data.{key}={cfg[key]} must be in {'(0' if key == 'eval_fraction' else '[0'}, 1)")
  if cfg["eval_fraction"] + cfg["validation_fraction"] >= 0.9:
    raise ValueError(f"data.eval_fraction={cfg['eval_fraction']} + data.validation_fraction="
                     f"{cfg['validation_fraction']} must leave at least 10 % of the images "
                     "for training")
  check_eval_split(cfg["eval_split"], DIGITS_SPLITS, got=cfg["validation_fraction"],
                   needs="data.validation_fraction > 0 (the share of the images kept aside "
                   "for validation)")
  if not 0 < cfg["label_fraction"] <= 1:
    raise ValueError(f"data.label_fraction={cfg['label_fraction']} must be in (0, 1]: the "
                     "share of the training images whose labels are used")
  images, labels = _load_digits()
  p = 1 if cfg["view"] == "pixels" else cfg["patch_size"]
  vectors = image_to_vectors(images, p)
  order = np.random.default_rng(cfg["seed"]).permutation(len(labels))
  n_test = int(round(cfg["eval_fraction"] * len(labels)))
  n_val = int(round(cfg["validation_fraction"] * len(labels)))
  split = {"test": order[:n_test], "validation": order[n_test:n_test + n_val],
           "train": order[n_test + n_val:]}
  if cfg["label_fraction"] < 1:
    train = split["train"]
    keep = []
    for c in range(10):
      of_c = train[labels[train] == c]
      keep.extend(of_c[:max(1, int(round(cfg["label_fraction"] * len(of_c))))])
    split["train"] = np.asarray(keep)
  split["eval"] = split[cfg["eval_split"]]
  arrays = {name: {"inputs": vectors[idx], "mask": np.ones(vectors[idx].shape[:2], bool),
                   "targets": labels[idx]} for name, idx in split.items()
            if name in ("train", "eval")}
  info = TaskInfo(input_kind="pixels" if p == 1 else "patches", input_size=p * p,
                  output_kind="per_sequence", num_classes=10, max_length=vectors.shape[1],
                  train_size=len(split["train"]), image_shape=(8, 8, 1))
  return ImageTask(info, arrays["train"], arrays["eval"], image_shape=(8, 8, 1), patch_size=p)
