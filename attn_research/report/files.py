"""Reading what a run wrote into its workdir."""
from __future__ import annotations

import json
import pathlib


def read_metrics(workdir, split: str | None = None):
  """Rows of metrics.jsonl (optionally only one split), in file order."""
  path = pathlib.Path(workdir) / "metrics.jsonl"
  if not path.exists():
    return []
  rows = [json.loads(l) for l in path.read_text().splitlines() if l.strip()]
  return [r for r in rows if split is None or r["split"] == split]


def read_summary(workdir):
  return json.loads((pathlib.Path(workdir) / "summary.json").read_text())


def read_config(workdir):
  """The run's config.json as a dict, or None when it has none."""
  path = pathlib.Path(workdir) / "config.json"
  return json.loads(path.read_text()) if path.exists() else None
