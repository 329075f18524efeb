"""Where a number came from: package versions, the git commit and the device, recorded
in every run's summary.json (train/loop.py) so a number can be traced to the code and
machine that produced it.

Here rather than in train/ because it describes the measurement, not the training: the
benchmarks and reproductions can record it without importing the train loop. The commit
gets "+dirty" when tracked files differ from it (untracked files are ignored): such a
number was produced by code no commit holds.
"""
from __future__ import annotations

import importlib.metadata
import pathlib
import platform
import subprocess

import jax

PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy")


def git_commit() -> str | None:
  """HEAD of the repository holding this package ("+dirty" with uncommitted changes to
  tracked files); None outside a git checkout or without git."""
  root = pathlib.Path(__file__).resolve().parents[2]
  try:
    out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                         text=True, timeout=5)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                           capture_output=True, text=True, timeout=5).stdout.strip()
  except (OSError, subprocess.SubprocessError):
    return None
  return (out.stdout.strip() + ("+dirty" if dirty else "")) if out.returncode == 0 else None


def provenance(num_devices: int) -> dict:
  """{"versions", "git_commit", "device"} for a summary; num_devices is how many devices
  the run used (the data-parallel mesh), not how many exist."""
  versions = {"python": platform.python_version()}
  for name in PACKAGES:
    try:
      versions[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      versions[name] = None
  device = jax.devices()[0]
  return {"versions": versions, "git_commit": git_commit(),
          "device": {"platform": device.platform, "kind": device.device_kind,
                     "count": num_devices, "processes": jax.process_count()}}
