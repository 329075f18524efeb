"""A comparison: the same task and training settings, several models, one workdir each."""
from __future__ import annotations

import copy
import pathlib

from attn_research.data import get_task
from attn_research.models import budget as budget_lib
from attn_research.report.comparison import write_comparison
from attn_research.train.loop import prepare, run


def model_run_config(config, name):
  """The single-model config of one entry of config.models."""
  single = copy.deepcopy(config)
  with single.unlocked():
    del single["models"]
    single.model = config.models[name]
  single.lock()
  return single


def apply_budget(config):
  """Solves each model's d_model for config.budget.params (when > 0), then refuses a
  comparison whose parameter counts spread wider than budget.max_spread (unless
  budget.enforce is False). Prints the table of counts. Raises before any compilation."""
  b = config.budget
  task_info = get_task(config.data).info
  if b.params < 0 or not 0 < b.tolerance < 1 or not 0 < b.max_spread:
    raise ValueError(f"budget needs params >= 0, 0 < tolerance < 1, max_spread > 0; got "
                     f"params={b.params}, tolerance={b.tolerance}, max_spread={b.max_spread}")
  counts = {}
  with config.unlocked():
    for name, model_cfg in config.models.items():
      if b.params:
        width, n = budget_lib.solve_width(dict(model_cfg), task_info, b.params)
        if abs(n / b.params - 1) > b.tolerance:
          raise ValueError(f"model {name!r}: the closest width (d_model={width}) gives {n:,} "
                           f"parameters, {n / b.params - 1:+.1%} from budget.params="
                           f"{b.params:,} (tolerance {b.tolerance:.0%}); change the budget "
                           "or the model's other settings")
        model_cfg.d_model = width
      counts[name] = budget_lib.param_count(dict(model_cfg), task_info)
  table = budget_lib.count_table(counts, b.params or None)
  if budget_lib.spread(counts) > b.max_spread and b.enforce:
    raise ValueError(f"the models differ by {budget_lib.spread(counts):.0%} in parameters "
                     f"(budget.max_spread={b.max_spread:.0%}); not a fair comparison:\n{table}\n"
                     "Set budget.params to solve the widths, or budget.enforce=False.")
  print(f"parameters (spread {budget_lib.spread(counts):.1%}):\n{table}")
  return counts


def run_comparison(config, workdir, *, progress: bool = True):
  """Runs every model of config.models under workdir/<name>, then writes the report.

  The budget is applied and all configs are built (and so checked) before the first
  model trains.
  """
  workdir = pathlib.Path(workdir)
  apply_budget(config)
  prepared = {name: prepare(model_run_config(config, name), workdir / name)
              for name in config.models}
  summaries = {name: run(p.config, p.workdir, progress=progress, desc=name, prepared=p)
               for name, p in prepared.items()}
  return summaries, write_comparison(workdir, {n: p.workdir for n, p in prepared.items()})
