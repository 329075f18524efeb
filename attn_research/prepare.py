"""`./launch.sh data NAME [--config.KEY=VALUE ...] [--out DIR]`: prepare a task, show it.

Builds the task (generating, synthesizing or reading its data, and caching what is
prepared), then prints its summary, the label balance of its training set, and one
rendered example (text, or the path of a PNG: a spectrogram, a graph, an image).
Keys are the task's own settings, e.g. `./launch.sh data digits --config.view=pixels`.
"""
from __future__ import annotations

import argparse
import pathlib
import time

import ml_collections
import numpy as np


def label_balance(task, batches: int = 20, batch_size: int = 256) -> str:
  """Share of each class among scored training targets (over a few training batches)."""
  counts = np.zeros(task.info.num_classes, np.int64)
  size = task.info.train_size
  if size is not None:
    batch_size = min(batch_size, size)
  steps = batches if size is None else max(1, min(batches, -(-size // batch_size)))
  for step in range(steps):
    b = task.train_batch(step, batch_size, seed=0)
    w = b.get("target_mask", np.ones(b["targets"].shape, bool))
    counts += np.bincount(b["targets"][w].ravel(), minlength=task.info.num_classes)
  share = counts / max(counts.sum(), 1)
  return f"class shares (train): min {share.min():.3f}, max {share.max():.3f} over {counts.sum():,} targets"


def main(argv=None):
  parser = argparse.ArgumentParser(prog="launch.sh data", description=__doc__.splitlines()[0])
  parser.add_argument("name", help="a task name, e.g. digits, listops, tfds:mnist")
  parser.add_argument("--out", default="workdirs/data", help="where rendered files go")
  args, rest = parser.parse_known_args(argv)

  from attn_research.config import apply_overrides, parse_override_args
  from attn_research.data import get_task, task_defaults
  try:
    cfg = ml_collections.ConfigDict(task_defaults(args.name))
    apply_overrides(cfg, parse_override_args(rest))
    t0 = time.perf_counter()
    task = get_task(cfg)
  except (ValueError, RuntimeError) as e:
    parser.exit(2, f"error: {e}\n")
  print(f"{args.name}: {task.summary()} (ready in {time.perf_counter() - t0:.1f} s)")
  print(label_balance(task))
  example = {k: v[0] for k, v in task.train_batch(0, 1, seed=0).items()}
  print("example:", task.render(example, pathlib.Path(args.out) / args.name.replace(":", "_")))


if __name__ == "__main__":
  main()
