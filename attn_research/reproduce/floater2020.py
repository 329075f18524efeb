"""Position encodings on length extrapolation (train at L, test at 2L and 4L), FLOATER's cost.

Liu et al. 2020 (FLOATER, arXiv 2003.09229) model positions as a continuous dynamical
system so that encodings exist at any position; the reproduction runs the project's
length-extrapolation experiment (experiments/positions.py, attn_research/modes/extrapolation.py)
for every encoding and reports each one's training speed beside its accuracy.
"""
from __future__ import annotations

import json

from attn_research.config import load_config
from attn_research.reproduce import common
from attn_research.reproduce.base import Report, markdown_table, register_reproduction
from attn_research.workdir import SUMMARY, read_summary

ARGS = {"smoke": "smoke", "tiny": None, "full": "full"}


@register_reproduction("floater2020")
def run(tier, out_dir):
  from attn_research.modes.extrapolation import run_extrapolation
  from attn_research.report.extrapolation import extrapolation_table
  arg = ARGS[tier]
  config = load_config(str(common.ROOT / "experiments" / "positions.py")
                       + (f":{arg}" if arg else ""), [])
  workdir = common.runs_dir(out_dir, tier)
  results, (_, png) = run_extrapolation(config, workdir, progress=False)
  (out_dir / "extrapolation.png").write_bytes(png.read_bytes())
  data = json.loads((workdir / "extrapolation.json").read_text())
  speed = {}
  for name in results:
    summary = read_summary(workdir / name) if (workdir / name / SUMMARY).exists() else {}
    speed[name] = summary.get("train_examples_per_second")
  ref = speed.get("learned") or next(iter(speed.values()))
  cost_rows = [(name, "n/a" if s is None else f"{s:,.0f}",
                "n/a" if s is None or not ref else f"{ref / s:.2f}x")
               for name, s in speed.items()]
  cost = markdown_table(("position", "train examples/s", "time per example vs learned"),
                        cost_rows)
  acc = {n: {e["factor"]: e["accuracy"] for e in r["evals"]} for n, r in results.items()}
  best_far = max(acc, key=lambda n: acc[n][max(acc[n])])
  verdict = (f"best at {max(acc[best_far])}L: {best_far} ({acc[best_far][max(acc[best_far])]:.1%}); "
             + ", ".join(f"{n} {acc[n][1]:.1%} at L" for n in acc)
             + (f"; FLOATER trains at {ref / speed['floater']:.2f}x the time per example of "
                "learned positions." if speed.get("floater") and ref else "."))
  return Report(
      claim="FLOATER's continuous dynamical model gives position encodings at any "
            "position and is claimed to generalise to longer sequences better than "
            "fixed or learned absolute encodings, at a small training overhead (Liu et al. "
            "2020, arXiv 2003.09229); relative encodings (rotary, ALiBi, T5) are the usual "
            "extrapolation baselines.",
      tables=[f"Multi-query associative recall trained at L = {results[best_far]['train_length']}"
              f", {config.train.num_steps} steps, evaluated at the lengths below "
              "(chance 1/num_values):\n\n" + extrapolation_table(data),
              "Training speed of the same runs (summary.json; other jobs may have shared "
              "the machine):\n\n" + cost],
      paper="FLOATER reports BLEU and GLUE/SQuAD gains over sinusoidal and learned "
            "encodings (e.g. WMT14 En-De) and better behaviour on longer test sentences; "
            "it gives no number for this recall task, so none is put beside ours.",
      differences="A synthetic recall task instead of translation and language "
                  "understanding; a small model trained for few steps, under which several "
                  "encodings never leave the no-position plateau (see the experiment's "
                  "docstring); our FLOATER shares one ODE across layers with a learned "
                  "start per layer (the paper's sharing choice is not reproduced exactly).",
      results=dict(extrapolation=data, train_examples_per_second=speed),
      figures=["extrapolation.png"], verdict=verdict)
