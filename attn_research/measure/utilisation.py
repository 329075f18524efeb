"""How much of the machine a training run used: model FLOPs per step, achieved FLOP/s and
MFU (model FLOPs utilisation, PaLM's measure: Chowdhery et al. 2022, arXiv 2204.02311,
appendix B), recorded in every summary.json (train/loop.py) and shown in comparison
tables.

Convention: model FLOPs per train step = 3 x forward FLOPs per example x batch size.
The backward pass costs about twice the forward (a gradient for the activations and one
for the weights per matmul), so a step is three forwards; rematerialisation, optimizer
updates and padding are not counted: they are work the hardware does, not work the model
needs. Forward FLOPs per example are XLA's count (measure/flops.py). Achieved FLOP/s =
model FLOPs per step x timed steps per second; MFU = achieved / the device's peak.

The peak: on accelerators, the vendor's dense (no sparsity) peak for the run's
computation dtype, from PEAKS below (each row cites its datasheet); on a CPU, which has
no datasheet number that a JAX program can reach, the float32 (or bfloat16) rate of a
jitted 2048 x 2048 x 2048 matmul measured once per process (matmul_rate; the best of 5
calls after a compiling one, about half a second on a 2-core machine), so MFU there says
how close the model came to the machine's best matmul. An unknown accelerator gives
peak None and MFU None, never a guess.
"""
from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp

# (substring of jax's device_kind, bf16 peak, fp32 peak in TFLOP/s (dense), source).
# First match wins, so the more specific names come first. fp32 is the non-tensor-core
# rate: XLA's default precision may run float32 matmuls as TF32 on these GPUs, so a
# float32 MFU above 1 there means TF32 was used. TPUs publish bf16 only.
NVIDIA_H100 = "NVIDIA H100 datasheet, nvidia.com/en-us/data-center/h100 (sparsity figures halved)"
NVIDIA_H200 = "NVIDIA H200 datasheet, nvidia.com/en-us/data-center/h200 (sparsity figures halved)"
PEAKS = (
    ("H100 PCIe", 756.0, 51.0, NVIDIA_H100 + ", H100 PCIe"),
    ("H100 NVL", 835.0, 60.0, NVIDIA_H100 + ", H100 NVL"),
    ("H100", 989.0, 67.0, NVIDIA_H100 + ", H100 SXM"),
    ("H200 NVL", 835.0, 60.0, NVIDIA_H200 + ", H200 NVL"),
    ("H200", 989.0, 67.0, NVIDIA_H200 + ", H200 SXM"),
    ("A100", 312.0, 19.5, "NVIDIA A100 datasheet, nvidia.com/en-us/data-center/a100"),
    ("TPU v4", 275.0, None, "Google Cloud TPU v4 docs, cloud.google.com/tpu/docs/v4"),
    ("TPU v5 lite", 197.0, None, "Google Cloud TPU v5e docs, cloud.google.com/tpu/docs/v5e"),
    ("TPU v5e", 197.0, None, "Google Cloud TPU v5e docs, cloud.google.com/tpu/docs/v5e"),
    ("TPU v5p", 459.0, None, "Google Cloud TPU v5p docs, cloud.google.com/tpu/docs/v5p"),
    ("TPU v5", 459.0, None, "Google Cloud TPU v5p docs, cloud.google.com/tpu/docs/v5p"),
    ("TPU v6 lite", 918.0, None, "Google Cloud TPU v6e docs, cloud.google.com/tpu/docs/v6e"),
    ("TPU v6e", 918.0, None, "Google Cloud TPU v6e docs, cloud.google.com/tpu/docs/v6e"),
)
MATMUL_N = 2048


@functools.lru_cache(maxsize=None)
def matmul_rate(dtype: str = "float32", n: int = MATMUL_N, calls: int = 5):
  """(FLOP/s, seconds the measurement took) of a jitted n^3 matmul in dtype on the
  default device: 2 n^3 FLOPs over the best of `calls` timed calls after one compiling
  call. Cached: measured once per process and dtype."""
  begin = time.perf_counter()
  a = jnp.ones((n, n), dtype) / n
  matmul = jax.jit(lambda x, y: x @ y)
  jax.block_until_ready(matmul(a, a))
  best = float("inf")
  for _ in range(calls):
    t0 = time.perf_counter()
    jax.block_until_ready(matmul(a, a))
    best = min(best, time.perf_counter() - t0)
  return 2 * n**3 / best, time.perf_counter() - begin


def peak_flops(dtype: str = "float32", device=None) -> dict:
  """{"peak_flops_per_second", "peak_flops_source"} of the device for dtype (see the
  module docstring); the peak is None for an accelerator missing from PEAKS."""
  device = device or jax.devices()[0]
  kind = device.device_kind
  if device.platform == "cpu":
    rate, took = matmul_rate(dtype)
    return {"peak_flops_per_second": rate,
            "peak_flops_source": f"measured: jitted {dtype} {MATMUL_N}^3 matmul on {kind}, "
                                 f"best of 5 calls ({took:.1f} s including compiling)"}
  for name, bf16, fp32, source in PEAKS:
    if name in kind:
      tflops = bf16 if dtype in ("bfloat16", "float16") else fp32
      if tflops is None:
        return {"peak_flops_per_second": None,
                "peak_flops_source": f"{source}: publishes no {dtype} peak"}
      return {"peak_flops_per_second": tflops * 1e12,
              "peak_flops_source": f"{source}: {tflops:g} TFLOP/s {dtype} dense"}
  return {"peak_flops_per_second": None,
          "peak_flops_source": f"unknown device kind {kind!r} (no entry in "
                               "attn_research/measure/utilisation.py PEAKS)"}


def utilisation_fields(flops_per_example, batch_size: int, steps_per_second, *, dtype="float32",
                num_devices: int = 1) -> dict:
  """The summary fields: model_flops_per_step, achieved_flops_per_second, mfu (against
  num_devices x the peak; a CPU's measured rate once), peak_flops_per_second (one
  device's) and peak_flops_source. A field is None
  when what it needs is unknown (FLOPs not countable, no timed step, unknown device)."""
  per_step = None if flops_per_example is None else 3.0 * flops_per_example * batch_size
  achieved = (None if per_step is None or steps_per_second is None
              else per_step * steps_per_second)
  peak = peak_flops(dtype)
  # Forced host-platform CPU devices share one machine's cores: the measured rate is the
  # machine's, whatever the device count.
  per_machine = jax.devices()[0].platform == "cpu"
  total_peak = (None if peak["peak_flops_per_second"] is None
                else peak["peak_flops_per_second"] * (1 if per_machine else num_devices))
  return {"model_flops_per_step": per_step, "achieved_flops_per_second": achieved,
          "mfu": None if achieved is None or not total_peak else achieved / total_peak,
          "flops_convention": "model FLOPs per step = 3 x forward FLOPs per example x batch",
          **peak}
