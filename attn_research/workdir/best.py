"""The best-on-validation checkpoint (train.keep_best), kept beside the latest ones.

The latest checkpoints (checkpoints/) are for resuming; the best one (checkpoints_best/,
one step) is the model to report when the eval metric peaks before the end. It is an
orbax CheckpointManager of its own with max_to_keep=1 and orbax's best_fn, so the
metrics are stored with the step, and a resumed run reads the best so far back from
disk instead of starting the comparison over.
"""
from __future__ import annotations

import math

from attn_research.workdir.checkpoint import Checkpointer

# The metrics a best checkpoint can be chosen by, and which way is better.
BEST_METRICS = {"accuracy": "max", "loss": "min"}


def check_keep_best(metric: str):
  """Raises ValueError unless metric is "" (off) or one of BEST_METRICS."""
  if metric != "" and metric not in BEST_METRICS:
    valid = ", ".join(f"{m!r} ({'higher' if mode == 'max' else 'lower'} is better)"
                      for m, mode in BEST_METRICS.items())
    raise ValueError(f"train.keep_best={metric!r} is not a metric to keep the best "
                     f"checkpoint by; valid: '' (off), {valid}")


class BestCheckpoint:
  """checkpoints_best/: the step whose eval `metric` is the best so far.

  self.best is {"step": s, **its eval metrics} or None before the first eval.
  """

  def __init__(self, directory, metric: str):
    check_keep_best(metric)
    if not metric:
      raise ValueError("BestCheckpoint needs a metric; train.keep_best='' keeps none")
    self.metric, self.mode = metric, BEST_METRICS[metric]
    self.checkpointer = Checkpointer(directory, 1, best_fn=lambda m: m[metric],
                                     best_mode=self.mode)
    self.best = self._read_back()

  def _read_back(self):
    manager = self.checkpointer.manager
    step = manager.best_step()
    metrics = manager.metrics(step) if step is not None else None
    if not metrics or self.metric not in metrics:
      return None
    return {"step": int(step), **metrics}

  def improves(self, metrics: dict) -> bool:
    value = metrics.get(self.metric)
    if value is None or not math.isfinite(value):
      return False
    if self.best is None:
      return True
    old = self.best[self.metric]
    return value > old if self.mode == "max" else value < old

  def offer(self, step: int, state, metrics: dict) -> bool:
    """Saves state as the best when its eval metrics improve on the best so far
    (strictly: a tie keeps the earlier step); True when it did."""
    if not self.improves(metrics):
      return False
    metrics = {k: float(v) for k, v in metrics.items()}
    if self.best is not None and step <= self.best["step"]:
      # Only after resuming from an older checkpoint than the best (an unreadable
      # latest one was set aside): this step beats it, and orbax keeps steps in order.
      self.checkpointer.manager.delete(self.best["step"])
      self.checkpointer.manager.reload()
    self.checkpointer.save(step, state, metrics=metrics)
    self.best = {"step": int(step), **metrics}
    return True

  def restore(self, abstract_state, **kwargs):
    return self.checkpointer.restore(abstract_state, **kwargs)

  def close(self):
    self.checkpointer.close()
