"""Pictures of what a trained model attends to, from saved attention weights.

Reads `attention_maps.npz` (written by attn_research.models.inspect.save_attention_maps):
`weights` [L, H, T, T] for one example (layer, head, query, key), `mask` [T], and
optionally `coords` [T, 2] (pixel coordinates of each vector, for images).

- Per-head heat maps of one layer (rows = queries, columns = keys).
- Attention rollout (Abnar and Zuidema 2020, arXiv 2005.00928): the residual connection is
  modelled by averaging each layer's head-mean attention with the identity,
  A'_l = (A_l + I) / 2 (rows renormalised), and the layers compose by matrix product,
  rollout = A'_L ... A'_1: how much each input vector feeds each output vector.
- Mean attention distance (Dosovitskiy et al. 2020, arXiv 2010.11929, Figure 7): for each
  head, sum_j a_ij * dist(i, j) averaged over the queries i, against depth; dist is the
  distance in positions, or in pixels when coords are given. Early heads that attend
  locally show small distances, like a CNN's receptive field.
This module only reads files and draws (it imports no models or training code).
"""
from __future__ import annotations

import pathlib

import numpy as np
from attn_research.report.plotting import pyplot, save


def load(path):
  data = np.load(path)
  return {k: data[k] for k in data.files}


def rollout(weights_LHTT, mask_T=None):
  """[T, T] attention rollout; padded positions are dropped first."""
  w = np.asarray(weights_LHTT, np.float64)
  if mask_T is not None:
    keep = np.asarray(mask_T, bool)
    w = w[:, :, keep][:, :, :, keep]
  t = w.shape[-1]
  result = np.eye(t)
  for layer in w.mean(axis=1):
    a = 0.5 * layer + 0.5 * np.eye(t)
    a = a / a.sum(-1, keepdims=True)
    result = a @ result
  return result


def mean_attention_distance(weights_LHTT, mask_T=None, coords_T2=None):
  """[L, H]: each head's attention-weighted distance, averaged over real queries."""
  w = np.asarray(weights_LHTT, np.float64)
  t = w.shape[-1]
  keep = np.ones(t, bool) if mask_T is None else np.asarray(mask_T, bool)
  if coords_T2 is None:
    pos = np.arange(t, dtype=np.float64)
    dist = np.abs(pos[:, None] - pos[None, :])
  else:
    c = np.asarray(coords_T2, np.float64)
    dist = np.sqrt(((c[:, None] - c[None, :]) ** 2).sum(-1))
  per_query = (w * dist).sum(-1)  # [L, H, T]
  return per_query[:, :, keep].mean(-1)


def plot_heads(path, weights_LHTT, mask_T, layer: int = 0):
  plt = pyplot()
  keep = np.asarray(mask_T, bool)
  w = np.asarray(weights_LHTT)[layer][:, keep][:, :, keep]
  heads = w.shape[0]
  fig, axes = plt.subplots(1, heads, figsize=(3 * heads, 3.2), squeeze=False)
  for h, ax in enumerate(axes[0]):
    ax.imshow(w[h], cmap="viridis", vmin=0)
    ax.set(title=f"layer {layer}, head {h}", xlabel="key", ylabel="query")
  save(fig, path, dpi=110)


def plot_rollout(path, weights_LHTT, mask_T):
  plt = pyplot()
  fig, ax = plt.subplots(figsize=(4, 3.6))
  im = ax.imshow(rollout(weights_LHTT, mask_T), cmap="magma", vmin=0)
  fig.colorbar(im, ax=ax)
  ax.set(title=f"attention rollout over {len(weights_LHTT)} layers", xlabel="input vector",
         ylabel="output vector")
  save(fig, path, dpi=110)


def plot_distance(path, weights_LHTT, mask_T, coords_T2=None):
  plt = pyplot()
  d = mean_attention_distance(weights_LHTT, mask_T, coords_T2)
  fig, ax = plt.subplots(figsize=(4.5, 3.5))
  for layer in range(d.shape[0]):
    ax.scatter(np.full(d.shape[1], layer), d[layer], s=25)
  ax.set(xlabel="layer (depth)", ylabel="mean attention distance "
         + ("(pixels)" if coords_T2 is not None else "(positions)"),
         title="each head's mean attention distance")
  ax.set_xticks(range(d.shape[0]))
  ax.grid(alpha=0.3)
  save(fig, path, dpi=110)


def write_attention_report(npz_path, out_dir=None) -> list:
  """Draws every picture from one attention_maps.npz; returns the PNG paths."""
  npz_path = pathlib.Path(npz_path)
  out_dir = pathlib.Path(out_dir or npz_path.parent)
  data = load(npz_path)
  w, mask, coords = data["weights"], data["mask"], data.get("coords")
  paths = []
  for layer in range(w.shape[0]):
    paths.append(out_dir / f"attention_heads_layer{layer}.png")
    plot_heads(paths[-1], w, mask, layer)
  paths.append(out_dir / "attention_rollout.png")
  plot_rollout(paths[-1], w, mask)
  paths.append(out_dir / "attention_distance.png")
  plot_distance(paths[-1], w, mask, coords)
  return paths
