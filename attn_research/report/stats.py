"""Summary statistics of repeated measurements (one number per seed) and how a report
writes them: one type, one formula, one format for every table.

mean      arithmetic mean of the values given (None values, runs that produced no number,
          are dropped and not counted in n)
std       sample standard deviation, n - 1 in the denominator: the seeds are a sample of
          the seeds one could have run
ci95      half-width of the 95 % confidence interval of the mean from Student's t with
          n - 1 degrees of freedom, t(0.975, n - 1) * std / sqrt(n); with 3 seeds t is
          4.30, so the interval is 2.5 std wide on each side, which is what 3 seeds know
std and ci95 are None below two values: one value says nothing about the spread.
"""
from __future__ import annotations

import dataclasses
import math
import statistics

import numpy as np
from scipy import stats as scipy_stats


@dataclasses.dataclass(frozen=True)
class Stats:
  mean: float | None
  std: float | None
  n: int
  ci95: float | None

  def format(self, spec: str = ".4f", *, spread: str = "std", show_n: bool = False) -> str:
    """'0.8500 ± 0.0500 (n=3)': the mean, ± the spread ("std" or "ci95") where there is
    one, and n when show_n; 'n/a' for no values."""
    if spread not in ("std", "ci95"):
      raise ValueError(f"spread must be 'std' or 'ci95'; got {spread!r}")
    if self.mean is None:
      return "n/a"
    width = getattr(self, spread)
    text = f"{self.mean:{spec}}" + ("" if width is None else f" ± {width:{spec}}")
    return text + (f" (n={self.n})" if show_n else "")


def summarize(values) -> Stats:
  """Stats of the values that are not None (an empty Stats, mean None and n 0, for none)."""
  values = [float(v) for v in values if v is not None]
  n = len(values)
  if n == 0:
    return Stats(None, None, 0, None)
  if n == 1:
    return Stats(values[0], None, 1, None)
  std = statistics.stdev(values)
  return Stats(statistics.fmean(values), std, n,
               float(scipy_stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n))


def label_rates(labels, num_classes: int) -> dict:
  """Chance (a uniform guess) and majority (always the commonest label) accuracy of a set
  of integer labels (any shape; negative labels, padding, are ignored)."""
  labels = np.asarray(labels).reshape(-1)
  labels = labels[labels >= 0]
  counts = np.bincount(labels, minlength=num_classes)
  return {"chance": 1 / num_classes, "majority": float(counts.max() / max(counts.sum(), 1)),
          "majority_class": int(counts.argmax()), "examples": int(labels.size)}
