"""Fair comparisons: widths solved for a parameter budget, and a refusal when the models
of a comparison differ too much in size.

Peers' comparisons have pitted models of very different sizes against each other (one
LRA default Performer had 248k parameters against the Transformer's 52k). Here
`budget.params` sets each model's d_model so its parameter count lands within
`budget.tolerance` of the target, and a comparison whose models differ by more than
`budget.max_spread` refuses to run (unless `budget.enforce=False`).
"""
from __future__ import annotations

import math

from flax import nnx

from attn_research.models.registry import count_params, get_model


def param_count(model_cfg, task_info) -> int:
  """Parameters of the model, from shapes only (nothing is initialised or compiled)."""
  return count_params(nnx.eval_shape(lambda: get_model(model_cfg, task_info,
                                                       rngs=nnx.Rngs(0))))


def width_step(model_cfg) -> int:
  """d_model must be a multiple of this: the head count (transformers) and 2 (two
  directions, sinusoidal pairs)."""
  return math.lcm(2, model_cfg.get("num_heads", 1))


def solve_width(model_cfg, task_info, target: int, *, max_width: int = 4096):
  """(d_model, params) with params closest to target (parameters grow with d_model)."""
  step = width_step(model_cfg)
  count = lambda k: param_count(dict(model_cfg, d_model=k * step), task_info)  # noqa: E731
  lo, hi = 1, max_width // step
  while lo < hi:  # smallest k with count(k) >= target
    mid = (lo + hi) // 2
    if count(mid) >= target:
      hi = mid
    else:
      lo = mid + 1
  candidates = [(abs(count(k) - target), k) for k in {max(lo - 1, 1), lo}]
  _, best = min(candidates)
  return best * step, count(best)


def spread(counts: dict) -> float:
  """(largest - smallest) / largest: how far below the largest model the smallest is."""
  return (max(counts.values()) - min(counts.values())) / max(counts.values())


def count_table(counts: dict, target=None) -> str:
  lines = [f"  {name:20s} {n:>10,d}" + ("" if not target else f"  ({n / target - 1:+.1%} of "
                                                                 f"{target:,d})")
           for name, n in counts.items()]
  return "\n".join(lines)
