"""Where a task's data comes from, and whether this machine has it.

Most tasks generate their data or read a package that setup.py installs, so they always
work. A few read something that may be missing: a Debian corpus, or a pip package left
out of an environment someone else made. Their modules register a probe here, so that
`./launch.sh doctor` can say which tasks this machine can run and how to get the others,
and tests can skip (naming the install) instead of failing, before they compile anything.
"""
from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util


@dataclasses.dataclass(frozen=True)
class Source:
  """A task's data source as found on this machine."""
  available: bool
  source: str     # what the task reads (found), or what it would read (missing)
  hint: str = ""  # how to get it; for a found source, what else would serve


PROBES = {}  # task name -> probe() -> Source


def data_source(*task_names: str):
  """Decorator registering probe() -> Source for the named tasks (their base names)."""
  def wrap(probe):
    for name in task_names:
      if name in PROBES:
        raise ValueError(f"task {name!r} has a data source probe already")
      PROBES[name] = probe
    return probe
  return wrap


def task_source(name: str) -> Source | None:
  """The task's Source (default settings), or None for a task that needs nothing beyond
  the installed packages (generated data, scikit-learn's digits, networkx graphs, ...).
  NAME:ARG is looked up by NAME."""
  probe = PROBES.get(name.split(":", 1)[0])
  return None if probe is None else probe()


def pip_package(distribution: str, module: str) -> str | None:
  """'NAME VERSION' when the module can be imported (without importing it), else None."""
  if importlib.util.find_spec(module) is None:
    return None
  try:
    return f"{distribution} {importlib.metadata.version(distribution)}"
  except importlib.metadata.PackageNotFoundError:
    return distribution
