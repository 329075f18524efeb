"""The workdir's file names and how to read and write them.

Every module that touches a workdir names its files through these constants, so the
layout (DESIGN.md, "Workdir") is written down once. This module imports nothing from
train/, models/ or data/: report/ reads workdirs through it while runs are going.
"""
from __future__ import annotations

import json
import os
import pathlib
import tempfile

CONFIG = "config.json"            # the run's config, written at start
METRICS = "metrics.jsonl"         # one JSON object per line: step, split, metrics
SUMMARY = "summary.json"          # written once the run has finished
CHECKPOINTS = "checkpoints"       # orbax: the latest train.keep_checkpoints steps
CHECKPOINTS_BEST = "checkpoints_best"  # orbax: the best eval step (train.keep_best)
# Beside an orbax directory D, D + UNREADABLE_SUFFIX holds the steps that could not be
# restored (moved there, never deleted), out of orbax's sight.
UNREADABLE_SUFFIX = "_unreadable"
LOCK = ".lock"                    # who is writing the directory now (workdir/lock.py)


def read_metrics(workdir, split: str | None = None):
  """Rows of metrics.jsonl (optionally only one split), in file order."""
  path = pathlib.Path(workdir) / METRICS
  if not path.exists():
    return []
  rows = [json.loads(l) for l in path.read_text().splitlines() if l.strip()]
  return [r for r in rows if split is None or r["split"] == split]


def read_summary(workdir):
  return json.loads((pathlib.Path(workdir) / SUMMARY).read_text())


def read_config(workdir):
  """The run's config.json as a dict, or None when it has none."""
  path = pathlib.Path(workdir) / CONFIG
  return json.loads(path.read_text()) if path.exists() else None


def write_json(path, obj, *, indent: int | None = 2):
  """Writes obj as JSON to path through a temporary file renamed into place, so a
  reader (or a crash) never sees half a file: path holds the old or the new content."""
  path = pathlib.Path(path)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
  try:
    with os.fdopen(fd, "w") as f:
      f.write(json.dumps(obj, indent=indent) + "\n")
    os.chmod(tmp, 0o644)  # mkstemp makes it private; workdir files are for everyone
    os.replace(tmp, path)
  except BaseException:
    pathlib.Path(tmp).unlink(missing_ok=True)
    raise


def check_writable(directory):
  """Raises ValueError naming the directory and the reason when it cannot be written:
  probes the directory, or its nearest existing ancestor, by creating and removing an
  empty folder there, so nothing is left behind and nothing had to be compiled first."""
  path = pathlib.Path(directory).absolute()
  existing = path
  while not existing.exists() and existing != existing.parent:
    existing = existing.parent
  if not existing.is_dir():
    raise ValueError(f"workdir {directory} cannot be created: {existing} is a file, "
                     "not a directory")
  try:
    os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".write_probe_"))
  except OSError as e:
    where = "" if existing == path else f" (it does not exist; creating it in {existing} fails)"
    raise ValueError(f"workdir {directory} is not writable{where}: {e.strerror}") from None
