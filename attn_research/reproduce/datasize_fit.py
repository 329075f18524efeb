"""Accuracy against log10(training-set size): least-squares lines, their slopes per decade
over seeds, and where two arms' lines cross (the ViT data-size reproduction's analysis).

Pure functions of measured numbers (no training), so tests can check them on synthetic
curves. Accuracies come as {size: [one value per seed]} with the seeds in the same order
at every size, so per-seed curves and paired differences line up.
"""
from __future__ import annotations

import math

import numpy as np

from attn_research.reproduce.protocol import paired_test


def fit_line(sizes, values) -> dict:
  """Least squares of values on log10(sizes): {"intercept", "slope"} (slope = change per
  decade of data, i.e. per tenfold N). Needs two distinct sizes."""
  x = np.log10(np.asarray(sizes, float))
  y = np.asarray(values, float)
  if x.shape != y.shape or len(np.unique(x)) < 2:
    raise ValueError(f"a line in log10 N needs >= 2 distinct sizes and one value per size; "
                     f"got sizes {list(sizes)} and {len(y)} values")
  slope, intercept = np.polyfit(x, y, 1)
  return {"intercept": float(intercept), "slope": float(slope)}


def seed_curves(by_size: dict, sizes) -> list[list[float]]:
  """{size: [per-seed values]} -> one curve over sizes per seed (seed order kept)."""
  counts = {len(by_size[n]) for n in sizes}
  if len(counts) != 1:
    raise ValueError(f"every size needs the same number of seeds to pair curves; got "
                     f"{ {n: len(by_size[n]) for n in sizes} }")
  return [[by_size[n][i] for n in sizes] for i in range(counts.pop())]


def seed_slopes(by_size: dict, sizes) -> list[float]:
  """One least-squares slope per decade per seed."""
  return [fit_line(sizes, curve)["slope"] for curve in seed_curves(by_size, sizes)]


def mean_line(by_size: dict, sizes) -> dict:
  """The line through the per-size means (equal to the mean of the per-seed lines)."""
  return fit_line(sizes, [float(np.mean(by_size[n])) for n in sizes])


def gap_tests(a_by_size: dict, b_by_size: dict, sizes) -> dict:
  """{size: protocol.paired_test of a - b per seed}: the gap and its 95 % CI at each size."""
  return {n: paired_test([x - y for x, y in zip(a_by_size[n], b_by_size[n])]) for n in sizes}


def slope_difference(a_by_size: dict, b_by_size: dict, sizes) -> dict:
  """protocol.paired_test of (a's slope - b's slope) per seed: > 0 when a gains on b as
  N grows (the slope of the per-seed gap a - b against log10 N)."""
  a, b = seed_slopes(a_by_size, sizes), seed_slopes(b_by_size, sizes)
  return paired_test([x - y for x, y in zip(a, b)])


def crossover(line_a: dict, line_b: dict, sizes) -> dict:
  """Where line a (e.g. the ViT's) meets line b (the CNN's), in log10 N.

  Returns {"n": N where they meet or None (parallel), "position": "below" / "inside" /
  "above" the measured sizes or "parallel", "a_gains": whether a's slope exceeds b's,
  "a_ahead_at_largest": whether a's line is above b's at the largest size}."""
  lo, hi = math.log10(min(sizes)), math.log10(max(sizes))
  d_slope = line_a["slope"] - line_b["slope"]
  ahead = line_a["intercept"] + line_a["slope"] * hi > line_b["intercept"] + line_b["slope"] * hi
  if d_slope == 0:
    return {"n": None, "log10_n": None, "position": "parallel", "a_gains": False,
            "a_ahead_at_largest": bool(ahead)}
  x = (line_b["intercept"] - line_a["intercept"]) / d_slope
  position = "below" if x < lo else "above" if x > hi else "inside"
  return {"n": float(10 ** x) if x < 300 else math.inf, "log10_n": float(x),
          "position": position, "a_gains": bool(d_slope > 0), "a_ahead_at_largest": bool(ahead)}


def describe_crossover(c: dict, a: str, b: str, sizes) -> str:
  """The crossover in one sentence (what the report prints)."""
  lo, hi = f"{min(sizes):,}", f"{max(sizes):,}"
  if c["position"] == "parallel":
    return f"the fitted lines of {a} and {b} are parallel: they never cross"
  where = (f"N ≈ {c['n']:.3g} (log10 N = {c['log10_n']:.2f})" if math.isfinite(c["n"])
           else f"log10 N = {c['log10_n']:.3g}")
  if c["position"] == "inside":
    lead = a if c["a_gains"] else b
    return (f"{a}'s fitted line crosses {b}'s at {where}, inside the measured {lo} to {hi}; "
            f"{lead} is ahead above it")
  if c["position"] == "above":
    leader, chaser = (b, a) if c["a_gains"] else (a, b)
    return (f"no crossover in {lo} to {hi}: {leader} leads throughout and {chaser}'s line "
            f"gains on it, meeting it only at {where} (extrapolated beyond the data)")
  leader = a if c["a_ahead_at_largest"] else b
  return (f"no crossover in {lo} to {hi}: {leader} leads throughout and the lines move "
          f"apart with N (they would meet only below the data, at {where})")
