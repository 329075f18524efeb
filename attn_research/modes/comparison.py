"""Run mode `comparison`: the same task and training settings, several models, one or
more seeds, one workdir per model and seed, then one report (report/comparison.py).

A comparison config (experiment.make_comparison) holds `models` (a complete model
section each), `budget` and `num_seeds` instead of `model`. `comparison_runs` turns it
into the list of complete single-run configs once, after the budget has solved the
widths; nothing reshapes them afterwards.

Layout: WORKDIR/<model>/ with one seed (`num_seeds=1`, the default; as before), and
WORKDIR/<model>/seed_<s>/ with several; the seeds are config.seed, config.seed + 1, ...
A run that already exists is reused, never moved or overwritten: WORKDIR/<model>/
holding a run of seed s serves as seed s's run when more seeds are asked for later
(the other seeds go beside it in seed_<s>/), and seed_<s>/ is found again when a
comparison goes back to one seed.
"""
from __future__ import annotations

import copy
import json
import pathlib

import ml_collections
from flax import nnx

from attn_research.data import get_task
from attn_research.models import budget as budget_lib
from attn_research.models import get_model
from attn_research.modes.base import register_mode
from attn_research.report.comparison import write_comparison
from attn_research.workdir import read_config
from attn_research.train.loop import prepare, run
from attn_research.objectives.base import apply_model
from attn_research.measure import unrolled_flops

# Settings of the comparison, not of any one run: left out of each run's config.json
# (the solved widths are in each run's model settings).
COMPARISON_KEYS = ("models", "budget", "num_seeds")


def seeds(config) -> list[int]:
  n = config.get("num_seeds", 1)
  if not (isinstance(n, int) and n >= 1):
    raise ValueError(f"num_seeds={n!r} must be a positive int (runs use seeds seed, "
                     "seed + 1, ...)")
  return [config.seed + i for i in range(n)]


def run_dir(model_dir, seed: int, num_seeds: int) -> pathlib.Path:
  """Where the run of one model and seed lives (see the module docstring)."""
  model_dir = pathlib.Path(model_dir)
  stored = read_config(model_dir)
  if stored is not None and stored.get("seed") == seed:
    return model_dir
  nested = model_dir / f"seed_{seed}"
  return nested if num_seeds > 1 or nested.exists() else model_dir


def model_run_config(config, name, seed=None, stored=None):
  """The single-model config of one entry of config.models (and one seed). `stored`, the
  config.json of an existing run, keeps its copy of `budget`: runs made before comparison
  settings left the run config stored one, and resuming them must not see a change."""
  single = copy.deepcopy(config)
  with single.unlocked():
    for key in COMPARISON_KEYS:
      if key in single:
        del single[key]
    single.model = config.models[name]
    single.mode = "single"
    if seed is not None:
      single.seed = seed
    if stored is not None and "budget" in stored:
      single.budget = ml_collections.ConfigDict(stored["budget"])
  single.lock()
  return single


def model_flops(model_cfg, task_info, example):
  """FLOPs per example of the model's forward pass, from lowering an abstract model."""
  model = nnx.eval_shape(lambda: get_model(model_cfg, task_info, rngs=nnx.Rngs(0)))
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  # rest is abstract here (eval_shape): it goes in as an argument, not a constant.
  return unrolled_flops(lambda params, rest, batch: apply_model(graphdef, params, rest, batch,
                                                                train=False),
                        params, rest, example)


def _solve(config, task_info, kind, target, measure):
  b = config.budget
  for name, model_cfg in config.models.items():
    width, n = budget_lib.solve_width(dict(model_cfg), task_info, target, measure=measure)
    if abs(n / target - 1) > b.tolerance:
      raise ValueError(f"model {name!r}: the closest width (d_model={width}) gives {n:,.0f} "
                       f"{kind}, {n / target - 1:+.1%} from budget.{kind}={target:,} "
                       f"(tolerance {b.tolerance:.0%}); change the budget or the model's "
                       "other settings")
    model_cfg.d_model = width


def apply_budget(config):
  """Solves each model's d_model for budget.params or budget.flops (when > 0), then
  refuses a comparison whose counts (FLOPs per example under a FLOPs budget, else
  parameters) spread wider than budget.max_spread, unless budget.enforce is False.
  Prints the tables. Raises before anything trains; returns {model: parameters}."""
  b = config.budget
  flops_target = b.get("flops", 0)
  if (b.params < 0 or flops_target < 0 or not 0 < b.tolerance < 1 or not 0 < b.max_spread):
    raise ValueError(f"budget needs params >= 0, flops >= 0, 0 < tolerance < 1, "
                     f"max_spread > 0; got params={b.params}, flops={flops_target}, "
                     f"tolerance={b.tolerance}, max_spread={b.max_spread}")
  if b.params and flops_target:
    raise ValueError(f"budget.params={b.params:,} and budget.flops={flops_target:,} are both "
                     "set, but each model has one free width (d_model) and cannot meet two "
                     "targets; set one of them to 0")
  task = get_task(config.data)
  flops = {}
  with config.unlocked():
    if b.params:
      _solve(config, task.info, "params", b.params, budget_lib.param_count)
    if flops_target:
      example, measured = task.train_batch(0, 1, config.seed), {}

      def measure(cfg, info):
        key = json.dumps(cfg, sort_keys=True, default=str)
        if key not in measured:
          measured[key] = model_flops(cfg, info, example)
        return measured[key]

      unmeasurable = [n for n, m in config.models.items() if measure(dict(m), task.info) is None]
      if unmeasurable:
        raise ValueError(f"budget.flops needs FLOPs per example, which XLA cannot count for "
                         f"{unmeasurable} (a while loop of unknown trip count); set "
                         "budget.flops=0 or compare other models")
      _solve(config, task.info, "flops", flops_target, measure)
      flops = {n: measure(dict(m), task.info) for n, m in config.models.items()}
  counts = {name: budget_lib.param_count(dict(m), task.info) for name, m in config.models.items()}
  axis, sizes = ("FLOPs per example", flops) if flops_target else ("parameters", counts)
  tables = f"parameters:\n{budget_lib.count_table(counts, b.params or None)}"
  if flops:
    tables += f"\nFLOPs per example:\n{budget_lib.count_table(flops, flops_target, ',.0f')}"
  if budget_lib.spread(sizes) > b.max_spread and b.enforce:
    raise ValueError(f"the models differ by {budget_lib.spread(sizes):.0%} in {axis} "
                     f"(budget.max_spread={b.max_spread:.0%}); not a fair comparison:\n"
                     f"{tables}\nSet budget.params or budget.flops to solve the widths, "
                     "or budget.enforce=False.")
  print(f"{tables}\n(spread in {axis}: {budget_lib.spread(sizes):.1%})")
  return counts


def comparison_runs(config, workdir) -> dict:
  """{(model, seed): (complete single-run config, its workdir)} of a comparison whose
  budget has been applied: built once, in model then seed order."""
  seed_list = seeds(config)
  runs = {}
  for name in config.models:
    for seed in seed_list:
      where = run_dir(pathlib.Path(workdir) / name, seed, len(seed_list))
      runs[name, seed] = (model_run_config(config, name, seed, read_config(where)), where)
  return runs


def run_comparison(config, workdir, *, progress: bool = True):
  """Runs every model of config.models once per seed, then writes the report.
  Returns ({(model, seed): summary}, (table, png path)).

  The budget is applied and all configs are built (and so checked) before the first
  model trains.
  """
  workdir = pathlib.Path(workdir)
  seed_list = seeds(config)
  apply_budget(config)
  prepared = {key: prepare(single, where)
              for key, (single, where) in comparison_runs(config, workdir).items()}
  summaries = {}
  for (name, seed), p in prepared.items():
    desc = name if len(seed_list) == 1 else f"{name} seed {seed}"
    summaries[name, seed] = run(p.config, p.workdir, progress=progress, desc=desc, prepared=p)
  runs = {name: [prepared[name, s].workdir for s in seed_list] for name in config.models}
  return summaries, write_comparison(workdir, runs)


@register_mode("comparison")
def comparison_mode(config, workdir, *, progress: bool = True) -> str:
  _, (table, png) = run_comparison(config, workdir, progress=progress)
  return f"\n{table}\n\nlearning curves: {png}\ntable: {pathlib.Path(workdir) / 'comparison.md'}"
