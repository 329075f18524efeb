"""What a summary records about how a number was produced: cost, versions, commit, device."""
from __future__ import annotations

import importlib.metadata
import pathlib
import platform
import subprocess

import jax

PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy")


def forward_flops(forward, params, example_batch):
  """FLOPs of one example's forward(params, batch), from XLA's cost analysis
  (None when the program loops, since XLA would count one iteration)."""
  spec = lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype)  # noqa: E731
  compiled = jax.jit(forward).lower(jax.tree.map(spec, params),
                                    jax.tree.map(spec, example_batch)).compile()
  if " while(" in compiled.as_text():
    # XLA counts a loop body once, not once per iteration (RNN scans, chunked attention):
    # report nothing rather than an undercount.
    return None
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else None
  flops = (cost or {}).get("flops")
  return None if flops is None else float(flops)


def git_commit():
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
