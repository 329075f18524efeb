"""One model, one task, one run of the loop."""
from __future__ import annotations

from attn_research.modes.base import register_mode
from attn_research.train.loop import run


@register_mode("single")
def run_single(config, workdir, *, progress: bool = True) -> str:
  summary = run(config, workdir, progress=progress)
  shown = ", ".join(f"{k} {v}" for k, v in (summary["final_eval"] or {}).items())
  return f"step {summary['step']}: eval {shown}; summary: {workdir}/summary.json"
