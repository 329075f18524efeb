"""Measuring programs: one home for every number about cost, and where it came from.

  flops.py        unrolled_flops, forward_flops: XLA's count, every scan iteration included
  memory.py       peak_bytes (argument + output + temp - alias), compile_with_memory
  timing.py       median_seconds, time_and_memory (the attention benchmarks, reproductions)
  environment.py  provenance(): versions, git commit and device, beside every summary
  utilisation.py  model FLOPs per step, achieved FLOP/s, MFU against the device's peak
                  (datasheet table; a measured matmul rate on CPU)
  generation.py   per-token generation latency against context length
                  (benchmarks/generation.py, reproduce/katharopoulos2020_generation.py)

Imports jax and, in generation.py only, models/ (it builds the model it times); nothing
from train/, so train/, benchmarks/ and reproduce/ use it, and models/ must not import
it. The jax-only API is re-exported here; generation.py, which pulls in Flax and the
models, is imported by name.
"""
from attn_research.measure.environment import git_commit, provenance
from attn_research.measure.flops import forward_flops, unrolled_flops
from attn_research.measure.memory import compile_with_memory, peak_bytes
from attn_research.measure.timing import median_seconds, time_and_memory
from attn_research.measure.utilisation import matmul_rate, peak_flops, utilisation_fields

__all__ = ["compile_with_memory", "forward_flops", "git_commit", "matmul_rate",
           "median_seconds", "peak_bytes", "peak_flops", "provenance", "time_and_memory",
           "unrolled_flops", "utilisation_fields"]
