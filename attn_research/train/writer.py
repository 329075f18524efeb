"""metrics.jsonl: one JSON object per line with step, split and metric values."""
from __future__ import annotations

import json
import math
import pathlib


class MetricWriter:
  def __init__(self, workdir, resume_step: int | None):
    self.path = pathlib.Path(workdir) / "metrics.jsonl"
    if resume_step is not None and self.path.exists():
      # Lines past the checkpoint came from the interrupted run and will be logged
      # again, identically, by this one.
      kept = [l for l in self.path.read_text().splitlines()
              if l.strip() and json.loads(l)["step"] <= resume_step]
      self.path.write_text("".join(l + "\n" for l in kept))

  def write(self, step: int, split: str, metrics: dict):
    row = {"step": int(step), "split": split}
    row.update({k: float(v) if math.isfinite(float(v)) else str(float(v))
                for k, v in metrics.items()})
    with self.path.open("a") as f:
      f.write(json.dumps(row) + "\n")

