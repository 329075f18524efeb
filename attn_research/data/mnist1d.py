"""MNIST-1D (Greydanus & Kobak 2020, arXiv 2011.14439): ten 1D digit templates, padded,
scaled, translated, sheared and noised into 40-sample signals; 10 classes.

Generated offline with the `mnist1d` package's make_dataset (its get_dataset()
downloads, and is never called). The data come in chunks: chunk k is the paper's
default dataset (5,000 signals, 500 per class, shuffled, normalised to mean 0 and
standard deviation 1 over the chunk) generated with a seed made from (seed, k).

- eval: the last 1,000 signals of chunk 0, i.e. the paper's test split when seed=42
  (the package's default). It is the same whatever train_size is, so a data-size
  sweep compares every size on one test set.
- train: the first 4,000 signals of chunk 0 (the paper's training split), then all
  5,000 of chunks 1, 2, ..., cut at train_size. Training sets are therefore nested:
  a smaller train_size is a prefix of a larger one.
- validation (validation_fraction > 0): the last round(validation_fraction * train_size)
  of those train_size signals, carved out of the training set (which keeps the rest, so
  training sets stay nested across sizes at one fraction); eval_split="validation"
  evaluates on them, "test" (the default) on the fixed 1,000 above. With
  validation_from="generator" the validation signals are instead the first ones of a
  chunk of their own (chunk seed (seed, VALIDATION_CHUNK)): fresh draws from the same
  generator, so the training set keeps all train_size signals (the paper's 4,000).

Chunks are cached in the data directory. Measured on a busy 2-core CPU: the default
(one chunk) takes 6 s the first time (2 s of it importing mnist1d's matplotlib and
scipy), train_size=100,000 (20 chunks) 95 s the first time; cached, 0.01 s and 0.3 s.
Class balance is that of a prefix of shuffled, balanced chunks, measured with seed 42:
train_size=4,000: 394 to 411 per class (9.9 % to 10.3 %); 500: 41 to 60 (8.2 % to
12.0 %); 100,000: 9,980 to 10,027. The eval set holds 89 to 106 per class.
"""
from __future__ import annotations

import random

import numpy as np

from attn_research.data.base import (ArrayTask, TaskInfo, check_eval_split, register_task,
                                     save_figure)
from attn_research.data.cache import cached_arrays, data_dir

CHUNK = 5000        # the paper's dataset size: one make_dataset call
EVAL_SIZE = 1000    # the paper's test split: the last 20 % of chunk 0
MIN_TRAIN, MAX_TRAIN = 500, 100_000


def _package():
  """mnist1d.data, imported on first use (it imports matplotlib and scipy: slow)."""
  try:
    import mnist1d
    import mnist1d.data
  except ImportError as e:
    raise ImportError("the mnist1d task needs the `mnist1d` package: pip install mnist1d") from e
  return mnist1d, mnist1d.data


def generate_chunk(seed: int) -> dict:
  """{'x': [5000, 40] float32, 'y': [5000] int32}: make_dataset with the package's default
  arguments and this seed, train and test parts rejoined in order. make_dataset seeds
  numpy's and Python's global generators; their states are put back afterwards."""
  _, data = _package()
  args = data.get_dataset_args()
  args.num_samples, args.seed = CHUNK, seed
  np_state, py_state = np.random.get_state(), random.getstate()
  try:
    d = data.make_dataset(args)
  finally:
    np.random.set_state(np_state)
    random.setstate(py_state)
  return {"x": np.concatenate([d["x"], d["x_test"]]).astype(np.float32),
          "y": np.concatenate([d["y"], d["y_test"]]).astype(np.int32)}


def chunk_seed(seed: int, k: int) -> int:
  """Chunk 0 uses seed itself (42: the paper's data); later chunks a 32-bit seed mixed
  from (seed, k), so the later chunks of one seed are not another seed's first ones."""
  if k == 0:
    return seed
  return int(np.random.SeedSequence([seed, k]).generate_state(1)[0])


def load_chunk(directory, seed: int) -> dict:
  """A chunk from the cache (without importing mnist1d), else generated and cached."""
  from importlib.metadata import PackageNotFoundError, version
  try:
    package_version = version("mnist1d")
  except PackageNotFoundError:
    _package()  # raises the error that names the package
    raise
  params = {"seed": seed, "num_samples": CHUNK, "mnist1d_version": package_version}
  return cached_arrays(directory, "mnist1d", params, lambda: generate_chunk(seed))


class MNIST1DTask(ArrayTask):
  def render(self, example, out_dir):
    signal = np.asarray(example["inputs"]).reshape(-1)  # patches back to the 40 samples

    def draw(ax):
      ax.plot(np.arange(len(signal)), signal, "k.-", lw=1.5)
      ax.set_title(f"MNIST-1D digit {int(example['targets'])}: {len(signal)} samples")
      ax.set_xlabel("position")

    return save_figure(draw, out_dir, "example.png", figsize=(4, 2.5))


EVAL_SPLITS = ("test", "validation")
VALIDATION_FROM = ("train", "generator")
VALIDATION_CHUNK = 2**20  # the chunk index of validation_from="generator" (no train_size reaches it)


@register_task("mnist1d", dict(train_size=4000, seed=42, patch=1, dir=None,
                               validation_fraction=0.0, eval_split="test",
                               validation_from="train"),
               smoke=dict(train_size=500))
def mnist1d_task(cfg):
  """MNIST-1D: 40 scalar frames per signal, one label of 10; train_size in
  [500, 100000] (default 4,000, the paper's), a fixed eval set of 1,000 (or, with
  eval_split="validation", the validation_fraction carved from the training signals).

  patch=p > 1 groups p consecutive samples into one vector (40 / p vectors of p
  features): ViT's patches for a 1D signal; p must divide 40."""
  n, seed, p = cfg["train_size"], cfg["seed"], cfg["patch"]
  if not (isinstance(n, int) and MIN_TRAIN <= n <= MAX_TRAIN):
    raise ValueError(f"data.train_size={n!r} must be an int in [{MIN_TRAIN}, {MAX_TRAIN}]")
  if not (isinstance(p, int) and p >= 1 and 40 % p == 0):
    raise ValueError(f"data.patch={p!r} must divide the 40 samples (1, 2, 4, 5, 8, 10, 20, 40)")
  if not 0 <= seed < 2**32:
    raise ValueError(f"data.seed={seed} must be in [0, 2**32) (numpy's global seed range)")
  f = cfg["validation_fraction"]
  if not 0 <= f <= 0.5:
    raise ValueError(f"data.validation_fraction={f!r} must be in [0, 0.5]: the share of the "
                     "train_size signals kept aside for validation")
  check_eval_split(cfg["eval_split"], EVAL_SPLITS, got=round(f * n),
                   needs=f"data.validation_fraction > 0, keeping at least one of the {n} "
                   f"training signals (validation_fraction={f!r})")
  if cfg["validation_from"] not in VALIDATION_FROM:
    raise ValueError(f"data.validation_from={cfg['validation_from']!r} must be one of "
                     f"{VALIDATION_FROM}")
  if cfg["validation_from"] == "generator" and round(f * n) > CHUNK:
    raise ValueError(f"data.validation_fraction={f!r} of train_size={n} asks for "
                     f"{round(f * n)} fresh validation signals; validation_from='generator' "
                     f"draws at most one chunk ({CHUNK})")
  directory = data_dir(cfg["dir"])
  first = load_chunk(directory, chunk_seed(seed, 0))
  head = CHUNK - EVAL_SIZE
  xs, ys = [first["x"][:head]], [first["y"][:head]]
  k = 1
  while sum(len(y) for y in ys) < n:
    chunk = load_chunk(directory, chunk_seed(seed, k))
    xs.append(chunk["x"])
    ys.append(chunk["y"])
    k += 1
  fresh = cfg["validation_from"] == "generator"
  n_train = n if fresh else n - round(f * n)
  x_N, y_N = np.concatenate(xs)[:n, :, None], np.concatenate(ys)[:n]
  train = {"inputs": x_N[:n_train], "targets": y_N[:n_train]}
  if cfg["eval_split"] == "validation" and fresh:
    chunk = load_chunk(directory, chunk_seed(seed, VALIDATION_CHUNK))
    m = round(f * n)
    evaluation = {"inputs": chunk["x"][:m, :, None], "targets": chunk["y"][:m]}
  elif cfg["eval_split"] == "validation":
    evaluation = {"inputs": x_N[n_train:], "targets": y_N[n_train:]}
  else:
    evaluation = {"inputs": first["x"][head:, :, None], "targets": first["y"][head:]}
  for split in (train, evaluation):
    x = split["inputs"]
    split["inputs"] = x.reshape(x.shape[0], x.shape[1] // p, p)
    split["mask"] = np.ones(split["inputs"].shape[:2], bool)
  info = TaskInfo(input_kind="frames", input_size=p, output_kind="per_sequence",
                  num_classes=10, max_length=first["x"].shape[1] // p, train_size=n_train)
  return MNIST1DTask(info, train, evaluation)
