"""The reproduction protocol's shared pieces (DESIGN.md, "The reproduction protocol"):
seeds per tier, verdict labels, paired tests over seeds, chance and majority rates,
steps to a threshold and the plateau check, and scoring the best-on-validation
checkpoint on the test split once.

A reproduction writes its CRITERION as a module constant (fixed before any run), computes
its verdict with a pure function of the measured numbers (so a test can recompute it from
results.json), and returns both in its Report (`verdict_label`, `criterion`); write_report
refuses a report without them.
"""
from __future__ import annotations

import math

from scipy import stats as scipy_stats

from attn_research.report.stats import label_rates, summarize  # noqa: F401  (label_rates: one of the protocol's pieces)

VERDICTS = ("supported", "not supported", "inconclusive")
SEEDS = {"smoke": (0,), "tiny": (0, 1, 2), "full": (0, 1, 2, 3, 4)}


def seeds_for(tier: str) -> tuple:
  """>= 3 seeds at the tiny tier, 5 at full, 1 in the seconds-long smoke tests."""
  return SEEDS[tier]


def check_verdict(label: str) -> str:
  if label not in VERDICTS:
    raise ValueError(f"a verdict must be one of {VERDICTS}; got {label!r}")
  return label


def paired_test(diffs) -> dict:
  """Mean, 95 % CI half-width, n and the one-sided paired t-test's p (H1: mean > 0) of
  per-seed differences (arm minus baseline on the same seed)."""
  s = summarize(diffs)
  p = None
  if s.n >= 2 and s.std:
    t = s.mean / (s.std / math.sqrt(s.n))
    p = float(scipy_stats.t.sf(t, s.n - 1))
  elif s.n >= 2:  # every pair differs by the same amount: the sign decides
    p = 0.0 if s.mean > 0 else 1.0
  return dict(mean=s.mean, ci95=s.ci95, n=s.n, p_one_sided=p,
              differences=[None if d is None else float(d) for d in diffs])


def paired_verdict(test: dict, *, alpha: float = 0.05) -> str:
  """The common criterion on one paired_test: supported if the mean difference is > 0 with
  one-sided p < alpha, not supported if the mean is <= 0, inconclusive otherwise (and
  with fewer than two pairs)."""
  if test.get("mean") is None or test.get("n", 0) < 2:
    return "inconclusive"
  if test["mean"] <= 0:
    return "not supported"
  p = test.get("p_one_sided")
  return "supported" if p is not None and p < alpha else "inconclusive"


def all_paired_verdict(tests) -> str:
  """Several paired_tests that must all hold: 'not supported' if any is, 'supported' if
  all are, 'inconclusive' otherwise (and for none)."""
  labels = [paired_verdict(t) for t in tests]
  if "not supported" in labels:
    return "not supported"
  return "supported" if labels and all(x == "supported" for x in labels) else "inconclusive"


PLATEAU_CLAUSE = (
    "A 'not supported' outcome needs runs trained to a plateau: if the deciding runs were "
    "still improving at the end (protocol.plateaued), the verdict is 'inconclusive' "
    "(compute-limited at this tier) instead.")


def needs_plateau(label: str, plateau: bool | None) -> str:
  """PLATEAU_CLAUSE: 'not supported' from runs that had not plateaued is 'inconclusive'."""
  return "inconclusive" if label == "not supported" and plateau is not True else label


def format_p(p) -> str:
  return "n/a" if p is None else (f"{p:.3f}" if p >= 0.01 else f"{p:.2e}")


def format_ci(values, spec: str = ".3f") -> str:
  """'0.850 ± 0.050 (n=3)': mean ± 95 % CI half-width and n, the protocol's table cell."""
  return summarize(values).format(spec, spread="ci95", show_n=True)


def steps_to_threshold(rows, metric: str, threshold: float, *, below: bool = True):
  """The first step whose `metric` is below (or above) threshold in metric rows
  [{"step", metric, ...}] (for example workdir.read_metrics(dir, "eval")); None if never."""
  for row in rows:
    value = row.get(metric)
    if value is not None and (value < threshold if below else value > threshold):
      return int(row["step"])
  return None


def plateaued(rows, metric: str, *, last_fraction: float = 0.25, tolerance: float = 0.01,
              higher_is_better: bool = True, relative: bool = False) -> dict:
  """Did `metric` stop improving? Compares the best value of the last `last_fraction` of
  the eval rows with the best before them: a plateau if it improved by less than
  `tolerance` (absolute, or a fraction of the earlier best when relative). Returns
  {"plateau": bool|None, "gain_last": float|None} (gain relative when relative)."""
  values = [r[metric] for r in rows if r.get(metric) is not None]
  k = max(1, int(round(len(values) * last_fraction)))
  if len(values) < k + 1:
    return {"plateau": None, "gain_last": None}
  pick = max if higher_is_better else min
  before, last = pick(values[:-k]), pick(values[-k:])
  gain = (last - before) if higher_is_better else (before - last)
  if relative:
    gain = gain / abs(before) if before else float("inf") * (gain > 0)
  return {"plateau": bool(gain < tolerance), "gain_last": float(gain)}


def test_eval(prepared, test_examples: int = 0) -> dict:
  """The best-on-validation checkpoint (train.keep_best) of a prepared run scored on the
  test split, once (cached in WORKDIR/test_eval.json); the run's data settings must have
  data.eval_split ("validation" while training)."""
  from attn_research.modes.transfer import test_eval as _test_eval
  return _test_eval(prepared, test_examples)
