"""Fair comparisons: widths solved for a parameter or FLOPs budget, and a refusal when the
models of a comparison differ too much in size.

Peers' comparisons have pitted models of very different sizes against each other (one
LRA default Performer had 248k parameters against the Transformer's 52k). Here
`budget.params` (or `budget.flops`, FLOPs per example of the forward pass) sets each
model's d_model so its count lands within `budget.tolerance` of the target, and a
comparison whose models differ by more than `budget.max_spread` refuses to run (unless
`budget.enforce=False`). One width per model is one free variable: it meets one target,
so a budget of parameters and of FLOPs together is refused (modes/comparison.py).

solve_width needs a count that grows with d_model. Parameters and FLOPs of these
families are quadratic in d_model, so a quadratic through three widths guesses the
answer; a galloping search from the guess then brackets it, so the result is the
closest width whatever the shape of the curve, in about five counts when the guess is
right instead of the dozen of a bisection over every width (each FLOPs count lowers a
program).
"""
from __future__ import annotations

import functools
import math

import numpy as np
from flax import nnx

from attn_research.models.registry import MODELS, count_params, get_model


def param_count(model_cfg, task_info) -> int:
  """Parameters of the model, from shapes only (nothing is initialised or compiled)."""
  return count_params(nnx.eval_shape(lambda: get_model(model_cfg, task_info,
                                                       rngs=nnx.Rngs(0))))


def width_step(model_cfg) -> int:
  """d_model must be a multiple of this: the head count (transformers), 2 (two
  directions, sinusoidal pairs) and whatever the family declares in a static
  `width_multiple(cfg)` (norm groups, 2D sin-cos quarters)."""
  family = MODELS.get(model_cfg["name"])
  extra = family.width_multiple(model_cfg) if hasattr(family, "width_multiple") else 1
  return math.lcm(2, model_cfg.get("num_heads", 1), extra)


def _quadratic_guess(count, target, k0: int, kmax: int) -> int:
  """The k where a quadratic through count(k0), count(2 k0), count(3 k0) meets target."""
  ks = sorted({min(max(k, 1), kmax) for k in (k0, 2 * k0, 3 * k0)})
  if len(ks) < 3:
    return k0
  c2, c1, c0 = np.polyfit(ks, [count(k) for k in ks], 2)
  roots = [r.real for r in np.roots([c2, c1, c0 - target]) if abs(r.imag) < 1e-9 and r.real > 0]
  if not roots:
    return k0
  return min(max(round(min(roots, key=lambda r: abs(r - k0))), 1), kmax)


def solve_width(model_cfg, task_info, target, *, measure=param_count, max_width: int = 4096):
  """(d_model, count) with measure(cfg, task_info) closest to target over the allowed
  widths (multiples of width_step up to max_width); measure must grow with d_model."""
  step = width_step(model_cfg)
  kmax = max(max_width // step, 1)
  count = functools.cache(
      lambda k: measure(dict(model_cfg, d_model=k * step), task_info))
  k = _quadratic_guess(count, target, min(max(model_cfg["d_model"] // step, 1), kmax), kmax)
  # Gallop from the guess to lo < hi with count(lo) < target <= count(hi), where lo = 0
  # and hi = kmax + 1 stand for "none below" and "none above".
  jump = 1
  if count(k) >= target:
    hi = k
    while (lo := max(hi - jump, 0)) > 0 and count(lo) >= target:
      hi, jump = lo, 2 * jump
  else:
    lo = k
    while (hi := min(lo + jump, kmax + 1)) <= kmax and count(hi) < target:
      lo, jump = hi, 2 * jump
  while hi - lo > 1:  # bisect the bracket
    mid = (lo + hi) // 2
    lo, hi = (lo, mid) if count(mid) >= target else (mid, hi)
  best = min((k for k in (lo, hi) if 1 <= k <= kmax), key=lambda k: (abs(count(k) - target), k))
  return best * step, count(best)


def spread(counts: dict) -> float:
  """(largest - smallest) / largest: how far below the largest model the smallest is."""
  return (max(counts.values()) - min(counts.values())) / max(counts.values())


def count_table(counts: dict, target=None, fmt: str = ",d") -> str:
  lines = [f"  {name:20s} {format(n, fmt):>14s}"
           + ("" if not target else f"  ({n / target - 1:+.1%} of {format(target, fmt)})")
           for name, n in counts.items()]
  return "\n".join(lines)
