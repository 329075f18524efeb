"""The CPU cores a process may use, and keeping a child process to a share of them (used
by `reproduce all --jobs N`). Imports nothing heavy, so a process can pin itself before
jax starts its backend (XLA sizes its thread pool then)."""
from __future__ import annotations

import os

# The cores a process keeps to, set by its parent (a comma-separated list of core ids).
CORES_ENV = "ATTN_REPRODUCE_CORES"


def usable_cores() -> list:
  if hasattr(os, "sched_getaffinity"):
    return sorted(os.sched_getaffinity(0))
  return list(range(os.cpu_count() or 1))


def pin_to_cores():
  """Keeps this process to the cores its parent named in CORES_ENV (once: the variable is
  removed, so this process's own children are not pinned by it)."""
  cores = os.environ.pop(CORES_ENV, "")
  if cores and hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, [int(c) for c in cores.split(",")])
