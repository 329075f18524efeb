"""A sweep's plan: every run's settings, flags, resolved config and workdir, checked
before anything runs; sweep.json, and the refusal of a sweep dir holding another plan."""
from __future__ import annotations

import dataclasses
import importlib.util
import json
import pathlib

from attn_research.config import load_config, split_spec
from attn_research.report.sweep import SWEEP_FILE
from attn_research.sweep.expand import check_collisions, cli_value, collect_axes, expand, run_name
from attn_research.workdir import LOCK
from attn_research.workdir.checkpoint import config_differences


@dataclasses.dataclass
class Run:
  name: str
  settings: dict
  flags: list          # --config.KEY=VALUE: the common overrides, then the settings
  config: dict         # the resolved config, as JSON sees it
  workdir: pathlib.Path


@dataclasses.dataclass
class Plan:
  spec: str
  sweep_dir: pathlib.Path
  axes: list
  overrides: list
  seeds: int | None
  runs: list

  def record(self) -> dict:
    """What sweep.json holds; the report reads nothing else about the sweep."""
    return json.loads(json.dumps({
        "config": self.spec, "overrides": [list(kv) for kv in self.overrides],
        "seeds": self.seeds,
        "axes": [{"keys": list(a.keys), "values": [list(p) for p in a.points]}
                 for a in self.axes],
        "runs": [{"name": r.name, "workdir": r.name, "settings": r.settings,
                  "flags": r.flags, "config": r.config} for r in self.runs]}))


def default_sweep_dir(spec: str) -> pathlib.Path:
  from attn_research.main import default_workdir
  return pathlib.Path("workdirs") / "sweeps" / default_workdir(spec).name


def load_sweep_fn(path: pathlib.Path):
  if not path.is_file():
    raise ValueError(f"config file {str(path)!r} does not exist; experiments live in experiments/")
  module_spec = importlib.util.spec_from_file_location(f"_attn_sweep_{path.stem}", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  if not callable(getattr(module, "sweep", None)):
    raise ValueError(f"{path} defines no sweep(add) to expand; add one, e.g.\n"
                     "  def sweep(add):\n"
                     '    add(**{"model.attention": ["softmax", "linear"]})')
  return module.sweep


def plan_sweep(spec: str, overrides=(), *, seeds=None, sweep_dir=None) -> Plan:
  """Expands and checks the sweep; writes nothing. Raises ValueError on any refusal."""
  overrides = [tuple(kv) for kv in overrides]
  axes, settings_list = expand(collect_axes(load_sweep_fn(split_spec(spec)[0])), seeds)
  swept = {k for a in axes for k in a.keys}
  clash = sorted({k for k, _ in overrides} & swept)
  if clash:
    raise ValueError(f"--config.{clash[0]} overrides a swept key ({', '.join(clash)}); "
                     "drop the override or the axis")
  names = [run_name(s) for s in settings_list]
  check_collisions(names, settings_list)
  sweep_dir = pathlib.Path(sweep_dir) if sweep_dir else default_sweep_dir(spec)
  runs, by_config = [], {}
  for name, settings in zip(names, settings_list):
    pairs = [*overrides, *((k, cli_value(v)) for k, v in settings.items())]
    try:
      config = load_config(spec, pairs)
    except ValueError as e:
      raise ValueError(f"run {name}: {e}") from None
    if config.get("mode", "single") != "single":
      raise ValueError(f"{spec} is a {config.mode} (config.mode={config.mode!r}); sweep a "
                       "single-run config instead, e.g. with model.name as an axis")
    if not config.resume:
      raise ValueError("a sweep resumes its runs; resume=False is refused (use a new "
                       "--sweep-dir to start afresh)")
    config_dict = json.loads(json.dumps(config.to_dict()))
    same = by_config.setdefault(json.dumps(config_dict, sort_keys=True), name)
    if same != name:
      raise ValueError(f"the runs {same} and {name} resolve to the same config; "
                       "the sweep would train it twice")
    runs.append(Run(name, settings, [f"--config.{k}={v}" for k, v in pairs], config_dict,
                    sweep_dir / name))
  return Plan(spec, sweep_dir, axes, overrides, seeds, runs)


def expansion_differences(old: dict, new: dict):
  """Lines saying how two sweep.json records differ (empty: the same runs and configs)."""
  old_runs = {r["name"]: r for r in old["runs"]}
  new_runs = {r["name"]: r for r in new["runs"]}

  def names(ns):
    return ", ".join(ns[:4]) + (f", ... ({len(ns)} in all)" if len(ns) > 4 else "")

  out = []
  gone = [n for n in old_runs if n not in new_runs]
  added = [n for n in new_runs if n not in old_runs]
  if gone:
    out.append(f"runs only in the existing sweep: {names(gone)}")
  if added:
    out.append(f"runs only in the new sweep: {names(added)}")
  common = [n for n in new_runs if n in old_runs]
  by_line = {}
  for n in common:
    for line in config_differences(old_runs[n]["config"], new_runs[n]["config"]):
      by_line.setdefault(line, []).append(n)
  for line, ns in by_line.items():
    where = f"all {len(common)} runs" if len(ns) == len(common) else names(ns)
    out.append(f"{line} (existing -> new; {where})")
  return out


def check_sweep_dir(plan: Plan) -> bool:
  """True when the sweep dir already holds this very expansion; raises when it holds
  another one, or files that are not a sweep's."""
  path = plan.sweep_dir / SWEEP_FILE
  if path.exists():
    diffs = expansion_differences(json.loads(path.read_text()), plan.record())
    if diffs:
      raise ValueError(
          f"{plan.sweep_dir} holds a different sweep (its {SWEEP_FILE}); refusing to mix "
          "results:\n  " + "\n  ".join(diffs) + f"\nChoose another --sweep-dir, or remove "
          f"{plan.sweep_dir} yourself to start afresh.")
    return True
  if plan.sweep_dir.exists() and any(p.name != LOCK for p in plan.sweep_dir.iterdir()):
    raise ValueError(f"{plan.sweep_dir} is not empty and holds no {SWEEP_FILE}; refusing to "
                     "write into it (choose another --sweep-dir)")
  return False


def write_record(plan: Plan):
  plan.sweep_dir.mkdir(parents=True, exist_ok=True)
  tmp = plan.sweep_dir / (SWEEP_FILE + ".tmp")
  tmp.write_text(json.dumps(plan.record(), indent=1) + "\n")
  tmp.replace(plan.sweep_dir / SWEEP_FILE)


