"""A run's logs: metrics.jsonl (one JSON object per line with step, split and metric
values) and, beside it, a TensorBoard event file with the same numbers.

metrics.jsonl is what report/ reads; the event file is for watching runs live
(`./launch.sh tensorboard WORKDIR_OR_SWEEP_DIR`). Tags are SPLIT/METRIC (train/loss,
train/learning_rate, eval/accuracy). At eval steps the parameters are summarised as one
histogram of the L2 norm of every parameter array (params/l2_norms) and one scalar per
top-level layer, the L2 norm of all its parameters together (params/norm/blocks.0,
params/norm/embed, ...): a layer is the path up to its first list index, else its first
name. Attention-map PNGs are added as images by add_images once they are written.

Only process 0 writes: every process of a multi-host run logs the same numbers.
"""
from __future__ import annotations

import json
import math
import pathlib
import struct

import jax
import jax.numpy as jnp
import numpy as np
import tensorboardX
from tensorboardX.proto.summary_pb2 import Summary

from attn_research.workdir.files import METRICS, SUMMARY

# Seconds between the event writer's flushes: short enough to watch a run live.
FLUSH_SECS = 5


def _is_writer() -> bool:
  return jax.process_index() == 0


def _event_file_suffix(workdir: pathlib.Path) -> str:
  """A suffix that keeps this writer's file apart from earlier ones. tensorboardX names
  files events.out.tfevents.SECONDS.HOST and opens them with 'wb': a resumed run (or the
  attention-map images) started within the same second would otherwise overwrite the
  earlier file. TensorBoard reads a run's files in name order, which the count keeps."""
  return f".{len(list(workdir.glob('events.out.tfevents.*'))):04d}"


class MetricWriter:
  """Writes metrics.jsonl and the event file of one run; close() when done.

  resume_step: the step a resumed run continues from (0 for a fresh start), or None to
  keep earlier logs untouched. Rows and events past it came from the interrupted run and
  will be logged again, identically, by this one: metrics.jsonl drops them, and the event
  file tells TensorBoard to drop them (purge_step) so its curves show each step once.
  """

  def __init__(self, workdir, resume_step: int | None):
    self.workdir = pathlib.Path(workdir)
    self.path = self.workdir / METRICS
    self.resume_step = resume_step
    self._events = None  # opened at the first write: a run with nothing to log adds no file
    if not _is_writer():
      return
    if resume_step is not None and self.path.exists():
      kept = [l for l in self.path.read_text().splitlines()
              if l.strip() and json.loads(l)["step"] <= resume_step]
      self.path.write_text("".join(l + "\n" for l in kept))

  def _event_writer(self):
    if self._events is None:
      self.workdir.mkdir(parents=True, exist_ok=True)
      # The step at resume_step itself was logged before the checkpoint was saved, so
      # only later steps are purged.
      purge = None if self.resume_step is None else self.resume_step + 1
      self._events = tensorboardX.SummaryWriter(
          str(self.workdir), purge_step=purge, flush_secs=FLUSH_SECS,
          filename_suffix=_event_file_suffix(self.workdir))
    return self._events

  def write(self, step: int, split: str, metrics: dict):
    if not _is_writer():
      return
    row = {"step": int(step), "split": split}
    row.update({k: float(v) if math.isfinite(float(v)) else str(float(v))
                for k, v in metrics.items()})
    with self.path.open("a") as f:
      f.write(json.dumps(row) + "\n")
    events = self._event_writer()
    for name, value in metrics.items():
      events.add_scalar(f"{split}/{name}", float(value), int(step))

  def write_params(self, step: int, params):
    """Parameter norms at `step`. Every process calls it: the norms of sharded arrays
    are computed by all of them together; only process 0 writes them."""
    norms = param_norms(params)
    if not _is_writer():
      return
    events = self._event_writer()
    events.add_histogram("params/l2_norms", np.asarray(list(norms.values())), int(step))
    for layer, norm in layer_norms(norms).items():
      events.add_scalar(f"params/norm/{layer}", norm, int(step))

  def flush(self):
    if self._events is not None:
      self._events.flush()

  def close(self):
    """Writes out what is queued and closes the event file; safe to call twice."""
    if self._events is not None:
      self._events.close()
      self._events = None

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


def _key_name(key):
  for attr in ("key", "idx", "name"):
    if hasattr(key, attr):
      return getattr(key, attr)
  return str(key)


@jax.jit
def _l2_norms(params):
  return jax.tree.map(lambda x: jnp.sqrt(jnp.sum(jnp.square(x.astype(jnp.float32)))), params)


def param_norms(params) -> dict:
  """{path tuple: L2 norm} of every parameter array; one compiled call for all of them."""
  flat = jax.tree_util.tree_flatten_with_path(jax.device_get(_l2_norms(params)))[0]
  # nnx.State leaves end in a `.value` attribute: not part of the parameter's name.
  return {tuple(n for n in map(_key_name, path) if n != "value"): float(norm)
          for path, norm in flat}


def layer_norms(norms: dict) -> dict:
  """{layer name: L2 norm of all its parameters}; a layer is the path up to its first
  list index (blocks.0), else the path's first name (embed, head)."""
  squares = {}
  for path, norm in norms.items():
    ints = [i for i, part in enumerate(path) if isinstance(part, int)]
    head = path[:ints[0] + 1] if ints else path[:1]
    layer = ".".join(str(part) for part in head)
    squares[layer] = squares.get(layer, 0.0) + norm * norm
  return {layer: math.sqrt(total) for layer, total in squares.items()}


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# PNG colour type -> TensorBoard's colorspace (1 grey, 2 grey+alpha, 3 RGB, 4 RGBA).
_COLORSPACE = {0: 1, 4: 2, 2: 3, 3: 3, 6: 4}


def _png_image(path: pathlib.Path) -> Summary.Image:
  """The PNG as TensorBoard's image proto, its bytes as they are (no decoding)."""
  data = path.read_bytes()
  if data[:8] != _PNG_SIGNATURE or data[12:16] != b"IHDR":
    raise ValueError(f"{str(path)!r} is not a PNG file; add_images takes the PNGs a run wrote")
  width, height = struct.unpack(">II", data[16:24])
  return Summary.Image(height=height, width=width, colorspace=_COLORSPACE.get(data[25], 3),
                       encoded_image_string=data)


def add_images(workdir, png_paths, *, step: int | None = None, prefix: str = "attention_maps"):
  """Adds PNGs a run wrote (attention maps) to the run's TensorBoard logs as images
  tagged PREFIX/FILE_STEM, at `step` (default: the run's final step from summary.json)."""
  workdir = pathlib.Path(workdir)
  paths = [pathlib.Path(p) for p in png_paths]
  if not paths or not _is_writer():
    return
  if step is None:
    summary = workdir / SUMMARY
    step = json.loads(summary.read_text()).get("step", 0) if summary.exists() else 0
  values = [Summary.Value(tag=f"{prefix}/{p.stem}", image=_png_image(p)) for p in paths]
  writer = tensorboardX.FileWriter(str(workdir), flush_secs=FLUSH_SECS,
                                   filename_suffix=_event_file_suffix(workdir))
  try:
    writer.add_summary(Summary(value=values), int(step))
  finally:
    writer.close()
