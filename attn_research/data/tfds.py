"""`tfds:<name>`: datasets of tensorflow-datasets, read with tfds.data_source (no TensorFlow).

`tfds:mnist` is `tfds:dataset=mnist` in the grammar of every NAME:ARG (attn_research/args.py).

Only datasets already prepared in the TFDS data directory are read; this task never
downloads and never waits on the network. Prepare one on a machine with network
access with `tfds build <name> --file_format=array_record --data_dir <dir>` and copy the
folder here (the directory is data.dir, else $TFDS_DATA_DIR, else
~/tensorflow_datasets).

Supported features:
  image + label    (mnist, cifar10, fashion_mnist, ...): image patches as vectors
  text + label     (imdb_reviews, ...): UTF-8 bytes as tokens
"""
from __future__ import annotations

import os
import pathlib

import numpy as np

from attn_research import args
from attn_research.data.base import ArrayTask, TaskInfo, lengths_to_mask, register_task
from attn_research.data.images import ImageTask, image_to_vectors
from attn_research.data.text import PAD_BYTE, decode_bytes, encode_bytes

DEFAULTS = dict(dir=None, train_split="train", eval_split="test", patch_size=4,
                max_tokens=512, max_train=None, seed=0)
EMBEDDED = "digits or mnist1d (images), fortunes (text), spoken_digits (speech)"


def tfds_dir(configured):
  return pathlib.Path(configured or os.environ.get("TFDS_DATA_DIR")
                      or pathlib.Path.home() / "tensorflow_datasets")


def _not_prepared(name, directory, error):
  return ValueError(
      f"tensorflow-datasets dataset {name!r} is not prepared in {directory} ({error}). "
      f"This task never downloads. On a machine with network access run "
      f"`tfds build {name} --file_format=array_record --data_dir {directory}` and copy the "
      f"folder here (or set data.dir / $TFDS_DATA_DIR), or use an embedded task instead: "
      f"{EMBEDDED}.")


def _read_split(name, split, directory):
  import tensorflow_datasets as tfds
  try:
    source = tfds.data_source(name, split=split, data_dir=str(directory), download=False)
    return [source[i] for i in range(len(source))]
  except Exception as e:  # tfds raises several types; all mean "not here"
    raise _not_prepared(name, directory, f"{type(e).__name__}: {str(e).splitlines()[0]}") from None


def _images(examples, patch_size):
  """[N, T, C * p * p] patch vectors (channel-major within a patch) and the image shape."""
  images = np.stack([np.asarray(e["image"]) for e in examples]).astype(np.float32) / 255.0
  if images.ndim == 3:
    images = images[..., None]
  per_channel = [image_to_vectors(images[..., c], patch_size) for c in range(images.shape[-1])]
  return np.concatenate(per_channel, axis=-1), images.shape[1:]


def _texts(examples, max_tokens):
  """Byte tokens as the fortunes task has them (text.encode_bytes): (tokens, lengths)."""
  texts = [t if isinstance(t, bytes) else str(t).encode("utf-8")
           for t in (e["text"] for e in examples)]
  return encode_bytes(texts, max_tokens)


def _num_classes(name, directory):
  import tensorflow_datasets as tfds
  return int(tfds.builder(name, data_dir=str(directory)).info.features["label"].num_classes)


class TextTask(ArrayTask):
  def render(self, example, out_dir):
    del out_dir
    return f"label {int(example['targets'])}: {decode_bytes(example['inputs'], example['mask'])}"


@register_task("tfds", DEFAULTS, smoke=dict(max_train=64, patch_size=7, max_tokens=64),
               takes_arg=True)
def tfds_task(cfg):
  """Any prepared image or text classification dataset of tensorflow-datasets."""
  name = args.parse_arg(args.split(cfg["name"])[1], where=f"data.name={cfg['name']!r}",
                        what="tfds setting", dataset="")["dataset"]
  if not name:
    raise ValueError(f"data.name={cfg['name']!r} names no dataset; write tfds:<name>, "
                     f"e.g. tfds:mnist")
  directory = tfds_dir(cfg["dir"])
  train = _read_split(name, cfg["train_split"], directory)
  evaluation = _read_split(name, cfg["eval_split"], directory)
  if cfg["max_train"] is not None:
    order = np.random.default_rng(cfg["seed"]).permutation(len(train))[:cfg["max_train"]]
    train = [train[i] for i in sorted(order)]
  features = set(train[0])
  splits = {}
  if {"image", "label"} <= features:
    for split, examples in (("train", train), ("eval", evaluation)):
      vectors, image_shape = _images(examples, cfg["patch_size"])
      splits[split] = {"inputs": vectors, "mask": np.ones(vectors.shape[:2], bool),
                       "targets": np.array([int(e["label"]) for e in examples], np.int32)}
    kind, size = "patches", vectors.shape[-1]
  elif {"text", "label"} <= features:
    for split, examples in (("train", train), ("eval", evaluation)):
      tokens, lengths = _texts(examples, cfg["max_tokens"])
      splits[split] = {"inputs": tokens, "mask": lengths_to_mask(lengths, tokens.shape[1]),
                       "targets": np.array([int(e["label"]) for e in examples], np.int32)}
    kind, size = "tokens", PAD_BYTE + 1
  else:
    raise ValueError(f"tfds:{name} has features {sorted(features)}; supported: image+label, "
                     f"text+label")
  num_classes = _num_classes(name, directory)
  info = TaskInfo(input_kind=kind, input_size=size, output_kind="per_sequence",
                  num_classes=num_classes, max_length=splits["train"]["inputs"].shape[1],
                  train_size=len(splits["train"]["targets"]),
                  image_shape=tuple(image_shape) if kind == "patches" else None)
  if kind == "patches":
    return ImageTask(info, splits["train"], splits["eval"], image_shape=image_shape,
                     patch_size=cfg["patch_size"])
  return TextTask(info, splits["train"], splits["eval"])
