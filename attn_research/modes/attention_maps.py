"""`--config.report.attention_maps=True`: after training, the attention maps of one eval
example go into the workdir (attention_maps.npz and the PNGs of report/attention_maps.py)."""
from __future__ import annotations

import pathlib

import numpy as np

from attn_research.models.inspect import attention_weights
from attn_research.report.attention_maps import write_attention_report
from attn_research.train.restore import load_trained
from attn_research.train.writer import add_images


def first_eval_example(task):
  """The first evaluation example as a batch of one (any task: from its eval batches)."""
  first = next(iter(task.eval_batches(1)))
  return {k: np.asarray(v[:1]) for k, v in first.items()}


def save_attention_maps(workdir, *, example=None) -> list:
  """Writes workdir/attention_maps.npz (weights [L, H, T, S] of one example, its mask,
  and pixel coordinates for image tasks) and the pictures; returns the PNG paths."""
  workdir = pathlib.Path(workdir)
  trained = load_trained(workdir)
  batch = example or first_eval_example(trained.task)
  per_layer = [w[0] for w in attention_weights(trained.model, batch)]
  if len({w.shape for w in per_layer}) > 1:
    raise ValueError("its attention layers attend over sequences of different lengths "
                     f"({sorted({w.shape[-2:] for w in per_layer})}), e.g. an encoder-decoder")
  weights = np.stack(per_layer)  # [L, H, T, S]
  t = weights.shape[-1]
  mask = np.asarray(batch["mask"][0], bool)
  if len(mask) != t:  # a class token was prepended: it is real, and has no position
    mask = np.concatenate([np.ones(t - len(mask), bool), mask])
  arrays = {"weights": weights.astype(np.float32), "mask": mask}
  coords = image_coordinates(trained.task.info, t)
  if coords is not None:
    arrays["coords"] = coords
  np.savez(workdir / "attention_maps.npz", **arrays)
  pngs = write_attention_report(workdir / "attention_maps.npz")
  add_images(workdir, pngs)  # beside the run's curves in TensorBoard
  return pngs


def image_coordinates(info, t):
  """[T, 2] pixel coordinates of each vector's centre for image tasks whose vectors are
  patches in row-major order (None otherwise, or when the count does not match)."""
  shape = getattr(info, "image_shape", None)
  if shape is None:
    return None
  h, w = shape[0], shape[1]
  for p in (1, 2, 4, 8, 16):
    if h % p == 0 and w % p == 0 and (h // p) * (w // p) == t:
      rows, cols = np.meshgrid(np.arange(h // p), np.arange(w // p), indexing="ij")
      return (np.stack([rows.ravel(), cols.ravel()], -1) * p + (p - 1) / 2).astype(np.float32)
  return None


def save_all_attention_maps(workdir):
  """Attention maps for the run in workdir, or for every run below it (comparisons);
  runs without self-attention layers (CNN, RNN, GCN) are skipped with a note."""
  workdir = pathlib.Path(workdir)
  runs = [workdir] if (workdir / "summary.json").exists() else sorted(
      p.parent for p in workdir.rglob("summary.json"))
  for run_dir in runs:
    try:
      paths = save_attention_maps(run_dir)
    except ValueError as e:
      print(f"attention maps: {run_dir}: skipped ({e})")
      continue
    print(f"attention maps: {', '.join(str(p) for p in paths)}")
