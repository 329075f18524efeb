"""The batch contract, TaskInfo, and the task registry: get_task(config.data).

A batch is a dict of numpy arrays:
  inputs       int tokens [B, T] or real features [B, T, F]
  mask         [B, T] bool, True = a real vector (padding comes last)
  targets      [B] (a label per sequence) or [B, T] (a label per vector, or the next
               token of a decoder-only sequence output)
  target_mask  same shape as targets: which targets count in the loss and metrics
  adjacency    optional [B, T, T] bool (graph tasks)
  decoder_inputs  seq2seq tasks (TaskInfo.seq2seq): [B, T'] int, a start token then
               targets[:, :-1]; targets / target_mask are then [B, T'] too

Training batches are a pure function of (seed, step), so a run's data position is
just its step: resuming from a checkpoint at step s replays exactly the batches an
uninterrupted run would have seen.
"""
from __future__ import annotations

import dataclasses
import functools
import pathlib

import numpy as np

from attn_research.registry import Registry, check_choice

# "set": a set of objects per example (detection: targets [B, M] with target_boxes, data/scenes.py)
OUTPUT_KINDS = ("per_vector", "per_sequence", "sequence", "set")
INPUT_KINDS = ("tokens", "frames", "pixels", "patches", "graph_nodes")

TASKS = Registry("data.name")
EVAL_SPLITS = ("test", "validation")  # data.eval_split of the tasks that hold both


def check_eval_split(eval_split, splits=EVAL_SPLITS, *, needs: str = "", got=None):
  """data.eval_split must name one of the task's held-out splits; "validation" also needs
  the task's validation set to be non-empty (`needs` names the setting that makes it,
  `got` is its value, falsy when empty). Raised before any data is made."""
  check_choice("data.eval_split", eval_split, tuple(splits))
  if eval_split == "validation" and needs and not got:
    raise ValueError(f"data.eval_split='validation' needs {needs}; got {got!r}")


@dataclasses.dataclass(frozen=True)
class TaskInfo:
  input_kind: str      # one of INPUT_KINDS
  input_size: int      # vocabulary size for tokens, else the feature size F
  output_kind: str     # one of OUTPUT_KINDS
  num_classes: int     # classes, or vocabulary of a sequence output
  max_length: int      # T
  train_size: int | None = None  # None for generators without an end
  # (H, W, C) when the inputs are one image's patches, laid out as
  # data/images.image_to_vectors does (row-major patches, channel-major within one);
  # image models (vit, cnn2d, sagan_cnn) read the grid back from it. None otherwise.
  image_shape: tuple | None = None
  # True: source -> target (output_kind "sequence"); batches carry decoder_inputs, tokens
  # in range(num_classes), and max_length covers both the source and the target.
  seq2seq: bool = False

  def __post_init__(self):
    if self.input_kind not in INPUT_KINDS:
      raise ValueError(f"input_kind {self.input_kind!r} not in {INPUT_KINDS}")
    if self.output_kind not in OUTPUT_KINDS:
      raise ValueError(f"output_kind {self.output_kind!r} not in {OUTPUT_KINDS}")
    if self.seq2seq and self.output_kind != "sequence":
      raise ValueError(f"seq2seq=True needs output_kind 'sequence'; got {self.output_kind!r}")


def register_task(name: str, defaults: dict, smoke: dict | None = None, *,
                  takes_arg: bool = False):
  """Decorator: builder(cfg: dict) -> Task. defaults lists every setting the task reads;
  smoke holds the settings that shrink it to seconds for tests; takes_arg: the builder
  reads NAME:ARG from cfg["name"] (tfds:mnist), which other tasks refuse."""
  return TASKS.register(name, defaults, smoke, takes_arg=takes_arg)


def task_defaults(name: str) -> dict:
  return TASKS.defaults(name)


def task_smoke(name: str) -> dict:
  return TASKS.smoke(name)


def get_task(data_cfg):
  builder, cfg = TASKS.resolve(data_cfg)
  return builder(cfg)


class Task:
  """A task: `info`, `train_batch(step, batch_size, seed)`, `eval_batches(batch_size)`."""
  info: TaskInfo

  def train_batch(self, step: int, batch_size: int, seed: int) -> dict:
    raise NotImplementedError

  def eval_batches(self, batch_size: int):
    """Fixed evaluation set in batches of exactly batch_size (the last one padded,
    with target_mask False on the padding), so evaluation compiles once."""
    raise NotImplementedError

  def render(self, example: dict, out_dir) -> str:
    """A human view of one example (a dict of arrays without the batch axis): text, or
    the path of a file written into out_dir (a PNG). Tasks override this."""
    del out_dir
    n = int(example["mask"].sum())
    return (f"inputs[:{n}] = {np.asarray(example['inputs'])[:n].tolist()}\n"
            f"targets = {np.asarray(example['targets']).tolist()}")

  def summary(self) -> str:
    i = self.info
    size = "unbounded (generated)" if i.train_size is None else f"{i.train_size:,}"
    return (f"{i.input_kind} (input size {i.input_size}) -> {i.output_kind} with "
            f"{i.num_classes} classes; max length {i.max_length}; train examples {size}")


def save_figure(draw, out_dir, filename: str, figsize=(4, 3), dpi: int = 100) -> str:
  """draw(ax) on a fresh figure (no pyplot state), saved as out_dir/filename; its path."""
  from matplotlib.figure import Figure
  fig = Figure(figsize=figsize)
  draw(fig.add_subplot())
  out = pathlib.Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  fig.savefig(out / filename, dpi=dpi, bbox_inches="tight")
  return str(out / filename)


def bucket_boundaries(max_length: int, num_buckets: int):
  """num_buckets lengths spread evenly up to max_length, each a multiple of 8 (the last
  is max_length): the sequence lengths a bucketed batch may be trimmed to."""
  if num_buckets < 1:
    raise ValueError(f"train.length_buckets={num_buckets} must be >= 1 (1 = no buckets)")
  cuts = set()
  for i in range(1, num_buckets + 1):
    length = -(-max_length * i // num_buckets)  # ceil(max_length * i / num_buckets)
    cuts.add(min(max_length, -(-length // 8) * 8))
  return sorted(cuts | {max_length})


def trim_to_bucket(batch: dict, boundaries) -> dict:
  """Cuts the sequence axis to the shortest boundary that keeps every real vector.

  Padding comes last in every task, so only padding is dropped; with a few buckets a
  batch of short sequences costs a short sequence's compute, at one compilation per
  bucket. Arrays with a sequence axis: inputs, mask, and targets / target_mask when
  they are per vector, adjacency on both axes."""
  T = batch["mask"].shape[1]
  if boundaries[0] >= T:  # one bucket (the default): nothing to trim, nothing to compute
    return batch
  used = int(np.max(np.nonzero(batch["mask"].any(axis=0))[0], initial=-1)) + 1
  keep = next(b for b in boundaries if b >= used)
  if keep >= T:
    return batch
  out = dict(batch, inputs=batch["inputs"][:, :keep], mask=batch["mask"][:, :keep])
  for key in ("targets", "target_mask"):
    if key in batch and batch[key].ndim >= 2 and batch[key].shape[1] == T:
      out[key] = batch[key][:, :keep]
  if "adjacency" in batch:
    out["adjacency"] = batch["adjacency"][:, :keep, :keep]
  return out


def lengths_to_mask(lengths_N, max_length: int):
  """[N] lengths -> [N, max_length] mask, True on each row's first lengths[i] vectors."""
  return np.arange(max_length)[None, :] < np.asarray(lengths_N)[:, None]


def with_target_mask(batch: dict) -> dict:
  """Adds target_mask when absent: the input mask for per-vector targets, else all True.
  (Padding an eval batch then leaves the padded rows unscored.)"""
  if "target_mask" not in batch:
    t = batch["targets"]
    batch["target_mask"] = batch["mask"].copy() if t.ndim == 2 else np.ones(t.shape, bool)
  return batch


def pad_batch(batch: dict, batch_size: int) -> dict:
  """Pads every array to batch_size rows with zeros (False for target_mask and mask)."""
  n = len(batch["targets"])
  if n == batch_size:
    return batch
  return {k: np.concatenate([v, np.zeros((batch_size - n,) + v.shape[1:], v.dtype)])
          for k, v in batch.items()}


class ArrayTask(Task):
  """A finite dataset in memory, reshuffled every epoch with a permutation drawn from
  (seed, epoch): example p of the stream is perm(epoch = p // N)[p % N]."""

  def __init__(self, info: TaskInfo, train: dict, evaluation: dict):
    self.info, self.train, self.evaluation = info, train, evaluation
    self.num_train = len(train["targets"])
    for split in (train, evaluation):
      with_target_mask(split)

  @functools.lru_cache(maxsize=4)  # noqa: B019  (a task lives as long as its run)
  def _permutation(self, seed: int, epoch: int):
    return np.random.default_rng([seed, epoch]).permutation(self.num_train)

  def train_batch(self, step, batch_size, seed):
    positions = step * batch_size + np.arange(batch_size)
    epochs, offsets = np.divmod(positions, self.num_train)
    idx = np.empty(batch_size, np.int64)
    for epoch in np.unique(epochs):
      sel = epochs == epoch
      idx[sel] = self._permutation(seed, int(epoch))[offsets[sel]]
    return {k: v[idx] for k, v in self.train.items()}

  def eval_batches(self, batch_size):
    n = len(self.evaluation["targets"])
    for start in range(0, n, batch_size):
      yield pad_batch({k: v[start:start + batch_size] for k, v in self.evaluation.items()},
                      batch_size)
