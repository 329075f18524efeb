"""The small classifier whose feature space the GAN's Fréchet distance is measured in (the
FID's Inception network, in small): trained once on the real training images of a task,
its parameters and its accuracy on the task's eval images cached on disk under a key of
the data settings and its own, so every run on the same data measures with the same net.

Network (pure JAX, no state): conv3-ReLU-conv3-ReLU-avgpool2 (w channels),
conv3-ReLU-avgpool2 (2w), mean over positions, dense to `features` numbers, ReLU (the
feature vector), dense to the class logits. Input: images [B, H, W, C] in [0, 1].
Trained with Adam for `steps` steps of `batch_size` images drawn with a fixed seed.
"""
from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from attn_research.data.cache import cached_arrays, data_dir
from attn_research.models.image_grid import vectors_to_grid

SETTINGS = dict(width=16, features=64, steps=400, batch_size=128, learning_rate=2e-3, seed=0)
VERSION = 1  # bump when the network or its training changes: cached nets are retrained
# Data settings that do not change the images (how they are read, where they are cached).
NOT_IMAGE_SETTINGS = ("view", "patch_size", "dir")


def init(key, channels: int, num_classes: int, width: int, features: int) -> dict:
  shapes = {"c1": (3, 3, channels, width), "c2": (3, 3, width, width),
            "c3": (3, 3, width, 2 * width), "d1": (2 * width, features),
            "d2": (features, num_classes)}
  keys = jax.random.split(key, len(shapes))
  params = {}
  for k, (name, shape) in zip(keys, shapes.items()):
    params[f"{name}_w"] = jax.nn.initializers.he_normal()(k, shape, jnp.float32)
    params[f"{name}_b"] = jnp.zeros(shape[-1:], jnp.float32)
  return params


def _conv(params, name, x):
  y = jax.lax.conv_general_dilated(x, params[f"{name}_w"], (1, 1), "SAME",
                                   dimension_numbers=("NHWC", "HWIO", "NHWC"))
  return jax.nn.relu(y + params[f"{name}_b"])


def _pool(x):
  B, H, W, C = x.shape
  return x.reshape(B, H // 2, 2, W // 2, 2, C).mean((2, 4))


def apply(params, images_BHWC):
  """(features [B, F], logits [B, K]) of images in [0, 1]."""
  x = images_BHWC.astype(jnp.float32) * 2 - 1
  x = _pool(_conv(params, "c2", _conv(params, "c1", x)))
  x = _pool(_conv(params, "c3", x)).mean((1, 2))
  feats = jax.nn.relu(x @ params["d1_w"] + params["d1_b"])
  return feats, feats @ params["d2_w"] + params["d2_b"]


def task_images(task, split: str):
  """(images [N, H, W, C] float32 in [0, 1], labels [N]) of an image task's split."""
  arrays = task.train if split == "train" else task.evaluation
  images = vectors_to_grid(np.asarray(arrays["inputs"], np.float32), task.image_shape,
                           task.patch_size)
  return np.asarray(images), np.asarray(arrays["targets"])


def accuracy(params, images, labels, batch: int = 512) -> float:
  predict = jax.jit(lambda p, x: jnp.argmax(apply(p, x)[1], -1))
  hits = sum(int((np.asarray(predict(params, images[i:i + batch])) == labels[i:i + batch]).sum())
             for i in range(0, len(labels), batch))
  return hits / len(labels)


def train(task, settings: dict) -> tuple[dict, float]:
  """(params, eval accuracy) of the net trained on the task's training images."""
  s = settings
  images, labels = task_images(task, "train")
  params = init(jax.random.key(s["seed"]), task.image_shape[2], task.info.num_classes,
                s["width"], s["features"])
  tx = optax.adam(s["learning_rate"])

  @jax.jit
  def step(params, opt_state, x, y):
    def loss(p):
      return optax.softmax_cross_entropy_with_integer_labels(apply(p, x)[1], y).mean()
    grads = jax.grad(loss)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  opt_state = tx.init(params)
  rng = np.random.default_rng(s["seed"])
  for _ in range(s["steps"]):
    idx = rng.integers(0, len(labels), s["batch_size"])
    params, opt_state = step(params, opt_state, images[idx], labels[idx])
  eval_images, eval_labels = task_images(task, "eval")
  return params, accuracy(params, eval_images, eval_labels)


def cache_params(data_cfg, settings: dict) -> dict:
  data = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(data_cfg).items()
          if k not in NOT_IMAGE_SETTINGS}
  return {"data": data, "net": dict(settings), "version": VERSION}


def load_or_train(data_cfg, task, settings: dict | None = None, *, log=print):
  """(params, eval accuracy) of the feature net for this data, trained once and cached in
  the data directory (data.dir, $ATTN_RESEARCH_DATA or the user cache)."""
  settings = dict(SETTINGS, **(settings or {}))
  unknown = sorted(set(settings) - set(SETTINGS))
  if unknown:
    raise ValueError(f"feature net settings {unknown} are unknown; valid: {sorted(SETTINGS)}")
  if task.info.num_classes < 2 or getattr(task, "image_shape", None) is None:
    raise ValueError(f"the Fréchet distance's feature net is a classifier of the task's "
                     f"images: task {data_cfg.get('name')!r} needs images and >= 2 classes")

  def build():
    t0 = time.perf_counter()
    params, acc = train(task, settings)
    log(f"[frechet] feature net trained in {time.perf_counter() - t0:.1f} s: eval accuracy "
        f"{acc:.4f} on {len(task.evaluation['targets'])} real eval images")
    out = {k: np.asarray(v) for k, v in params.items()}
    out["eval_accuracy"] = np.asarray(acc, np.float64)
    return out

  arrays = cached_arrays(data_dir(data_cfg.get("dir")), "feature_net",
                         cache_params(data_cfg, settings), build, log=log)
  acc = float(arrays.pop("eval_accuracy"))
  return {k: jnp.asarray(v) for k, v in arrays.items()}, acc
