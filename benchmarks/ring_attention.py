"""Ring attention (kernels/ring.py) at a fixed total length over 1, 2, 4, 8 devices, against
single-device jax.nn (xla) and chunked attention measured in the same run.

  PYTHONPATH=. .venv/bin/python benchmarks/ring_attention.py [--length 4096] [--heads 4]
      [--head-dim 64] [--batch 1] [--devices 1,2,4,8] [--repeats 3] [--max-seconds 20]

Each device count runs in its own process with --xla_force_host_platform_device_count=N
on the CPU (the count is fixed when jax starts); the single-device peers run in the
1-device process. Rows: non-causal and causal (ring causal in the load-balanced zigzag
layout, inputs already in that order as a model that keeps it would pass them; the
order change itself is not timed).
"MiB / device" is XLA's compiled estimate for one device of the SPMD program
(measure.peak_bytes: argument + output + temp; arguments are that device's T / N block),
of the forward+backward (gradient of sum(out) w.r.t. q, k, v). Times are the median of
--repeats runs after a warm-up. Column "x xla" divides by the single-device jax.nn row
of the same causality, "x chunked (MiB)" by the chunked row's memory. Forced CPU devices
share the machine's cores, so N devices do not run N times faster: time shows the ring's
overhead in total work, not a speed-up; on real accelerators each device has its own
compute.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

MIB = 2**20


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--length", type=int, default=4096)
  p.add_argument("--heads", type=int, default=4)
  p.add_argument("--head-dim", type=int, default=64)
  p.add_argument("--batch", type=int, default=1)
  p.add_argument("--devices", default="1,2,4,8")
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--max-seconds", type=float, default=20.0)
  p.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
  args = p.parse_args(argv)
  args.devices = [int(n) for n in args.devices.split(",")]
  for n in args.devices:
    if n < 1 or args.length % (2 * n):
      p.error(f"--length {args.length} must be divisible by 2 x each device count; got {n}")
  return args


def worker(args):
  """Runs inside a process with args.worker devices; prints one JSON line per row."""
  import jax
  import jax.numpy as jnp
  import numpy as np
  from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

  from attn_research import measure as measure_lib
  from attn_research.kernels import dot_product_attention
  from attn_research.kernels.ring import ring_attention

  n = jax.device_count()
  assert n == args.worker, (n, args.worker)
  shape = (args.batch, args.length, args.heads, args.head_dim)
  rng = np.random.default_rng(0)
  host = [rng.standard_normal(shape).astype(np.float32) for _ in range(3)]
  mesh = Mesh(np.asarray(jax.devices()), ("sequence",))

  def calls(causal):
    rows = {f"ring ({n} dev)": lambda q, k, v: ring_attention(q, k, v, mesh=mesh, causal=causal)}
    if n == 1:
      rows["xla (1 dev)"] = lambda q, k, v: jax.nn.dot_product_attention(
          q, k, v, is_causal=causal, implementation="xla")
      rows["chunked (1 dev)"] = lambda q, k, v: dot_product_attention(
          q, k, v, causal=causal, impl="chunked")
    return rows

  for causal in (False, True):
    for name, fwd in calls(causal).items():
      sharding = NamedSharding(mesh, P(None, "sequence") if name.startswith("ring") else P())
      spec = jax.ShapeDtypeStruct(shape, jnp.float32, sharding=sharding)
      qkv = [jax.device_put(x, sharding) for x in host]
      row = {"name": name, "devices": n, "causal": causal}
      grad = jax.grad(lambda q, k, v, f=fwd: jnp.sum(f(q, k, v)), argnums=(0, 1, 2))
      for pass_, fn in (("fwd", fwd), ("fwd+bwd", grad)):
        compiled = jax.jit(fn).lower(spec, spec, spec).compile()
        row[pass_ + " bytes"] = measure_lib.peak_bytes(compiled)
        row[pass_ + " s"] = measure_lib.median_seconds(compiled, qkv, args.repeats,
                                                       args.max_seconds)
      print(json.dumps(row), flush=True)


def run_workers(args):
  rows = []
  for n in args.devices:
    flags = os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={n}"
    env = dict(os.environ, XLA_FLAGS=flags.strip(), JAX_PLATFORMS="cpu")
    argv = [sys.executable, __file__, "--worker", str(n), "--length", str(args.length),
            "--heads", str(args.heads), "--head-dim", str(args.head_dim),
            "--batch", str(args.batch), "--repeats", str(args.repeats),
            "--max-seconds", str(args.max_seconds), "--devices", str(n)]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True)
    if proc.returncode:
      sys.exit(f"worker with {n} devices failed:\n{proc.stderr[-3000:]}")
    got = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    print(f"  {n} device(s): {len(got)} rows", file=sys.stderr, flush=True)
    rows += got
  return rows


def _ratio(row, rows, key, peer_name):
  """row[key] over the single-device peer's (same causality), "-" when either is missing."""
  peer = next((p for p in rows if p["name"].startswith(peer_name)
               and p["causal"] == row["causal"]), None)
  if peer is None or not row[key] or not peer[key]:
    return "-"
  return f"{row[key] / peer[key]:.2f}"


def table(rows):
  head = ["impl", "causal", "fwd ms", "fwd+bwd ms", "x xla (time)", "fwd+bwd MiB / device",
          "x xla (MiB)", "x chunked (MiB)"]
  ratio = lambda r, key, peer="xla": _ratio(r, rows, key, peer)
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  order = lambda r: (r["causal"], not r["name"].startswith("xla"),
                     not r["name"].startswith("chunked"), r["devices"])
  for r in sorted(rows, key=order):
    mem = r["fwd+bwd bytes"]
    lines.append("| " + " | ".join([
        r["name"], "yes" if r["causal"] else "no", f"{1e3 * r['fwd s']:,.0f}",
        f"{1e3 * r['fwd+bwd s']:,.0f}", ratio(r, "fwd+bwd s"),
        "-" if mem is None else f"{mem / MIB:,.1f}", ratio(r, "fwd+bwd bytes"),
        ratio(r, "fwd+bwd bytes", "chunked")]) + " |")
  return "\n".join(lines)


def main(argv=None):
  args = parse_args(argv)
  if args.worker is not None:
    return worker(args)
  print(f"# ring attention: T {args.length}, batch {args.batch}, {args.heads} heads, head dim "
        f"{args.head_dim}, float32, CPU with forced devices; median of up to {args.repeats} "
        f"runs\n")
  print(table(run_workers(args)))


if __name__ == "__main__":
  main()
