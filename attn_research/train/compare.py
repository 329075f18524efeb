"""A comparison: the same task and training settings, several models, one workdir each."""
from __future__ import annotations

import copy
import pathlib

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


def run_comparison(config, workdir, *, progress: bool = True):
  """Runs every model of config.models under workdir/<name>, then writes the report.

  All configs are built (and so checked) before the first model trains.
  """
  workdir = pathlib.Path(workdir)
  prepared = {name: prepare(model_run_config(config, name), workdir / name)
              for name in config.models}
  summaries = {name: run(p.config, p.workdir, progress=progress, desc=name, prepared=p)
               for name, p in prepared.items()}
  return summaries, write_comparison(workdir, {n: p.workdir for n, p in prepared.items()})
