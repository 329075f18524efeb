"""Per-device bytes of parameters and optimizer state under each mesh (train/sharding.py).

Builds a run's state exactly as the training loop does (prepare + initial_state: the
model initialised inside one jit under the mesh's shardings, AdamW's moments born with
their parameters' shardings) on N forced CPU devices, and sums the bytes of the shards
that device 0 holds, for:
  replicated       data N (plain data parallelism: every device holds everything)
  fsdp F           data N/F x fsdp F
  tensor T         data N/T x tensor T
  fsdp 2 x tensor 2 (when N >= 4)
The table gives each mesh's bytes per device and its ratio to replicated; the issue's
target for FSDP on 8 devices is at most 1/4 + 10 % of the replicated bytes (0.275).
Nothing is trained or timed: these are the arrays' actual shard sizes.

  PYTHONPATH=. python benchmarks/sharding_memory.py [--devices 8] [--d-model 256]
                                                    [--layers 4] [--heads 8]
The device count is forced with XLA_FLAGS before JAX starts (this script re-executes
itself with the flag when it is missing).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile


def state_bytes_on_device0(state) -> int:
  import jax
  device = jax.devices()[0]
  total = 0
  for leaf in jax.tree.leaves(state):
    for shard in getattr(leaf, "addressable_shards", []):
      if shard.device == device:
        total += shard.data.nbytes
  return total


def measure(args, mesh: dict) -> tuple[int, int]:
  """(bytes of the state on device 0, parameter count) on `mesh`."""
  from attn_research.config import load_config
  from attn_research.models import count_params
  from attn_research.train.loop import initial_state, prepare
  overrides = [("model.d_model", str(args.d_model)), ("model.num_layers", str(args.layers)),
               ("model.num_heads", str(args.heads)), ("train.batch_size", str(8 * args.devices)),
               ("train.eval_batch_size", str(8 * args.devices))]
  overrides += [(f"mesh.{k}", str(v)) for k, v in mesh.items()]
  config = load_config("experiments/base.py", overrides)
  p = prepare(config, tempfile.mkdtemp())
  return state_bytes_on_device0(initial_state(p)), count_params(p.model)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--devices", type=int, default=8)
  parser.add_argument("--d-model", type=int, default=256)
  parser.add_argument("--layers", type=int, default=4)
  parser.add_argument("--heads", type=int, default=8)
  args = parser.parse_args()
  flag = f"--xla_force_host_platform_device_count={args.devices}"
  if flag not in os.environ.get("XLA_FLAGS", ""):
    env = dict(os.environ, XLA_FLAGS=(os.environ.get("XLA_FLAGS", "") + " " + flag).strip(),
               JAX_PLATFORMS="cpu")
    os.execve(sys.executable, [sys.executable, *sys.argv], env)
  n = args.devices
  meshes = {"replicated (data %d)" % n: dict(data=n)}
  for f in (2, 4, 8):
    if n % f == 0 and f <= n:
      meshes[f"fsdp {f}"] = dict(data=n // f, fsdp=f)
  for t in (2, 4):
    if n % t == 0 and args.heads % t == 0:
      meshes[f"tensor {t}"] = dict(data=n // t, tensor=t)
  if n % 4 == 0:
    meshes["fsdp 2 x tensor 2"] = dict(data=n // 4, fsdp=2, tensor=2)
  rows, base = [], None
  for name, mesh in meshes.items():
    nbytes, params = measure(args, mesh)
    base = base or nbytes
    rows.append((name, " x ".join(f"{k} {v}" for k, v in mesh.items()), f"{nbytes / 2**20:,.2f}",
                 f"{nbytes / base:.3f}"))
  print(f"\nTransformer d_model {args.d_model}, {args.layers} layers, {args.heads} heads "
        f"({params:,} parameters), AdamW state, float32, {n} forced CPU devices:\n")
  print("| mesh | sizes | parameters + optimizer state on device 0 (MiB) | x replicated |")
  print("|---|---|---|---|")
  for row in rows:
    print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
  main()
