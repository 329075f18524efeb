"""Time and memory of a jitted function, for benchmarks and reproductions.

Memory is XLA's compiled estimate (memory_analysis: temp + argument + output bytes), known
before anything runs, so a configuration too large for the machine is reported, not run.
Times are medians after one warm-up call, each call ended by block_until_ready.
"""
from __future__ import annotations

import statistics
import time

import jax


def compile_with_memory(fn, *args):
  """(compiled executable, peak bytes) for fn at the shapes/dtypes of args (arrays or
  jax.ShapeDtypeStruct), without running it."""
  specs = [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in args]
  compiled = jax.jit(fn).lower(*specs).compile()
  m = compiled.memory_analysis()
  return compiled, m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes


def median_seconds(compiled, args, repeats: int = 3, max_seconds: float = 60.0) -> float:
  """Median wall time of compiled(*args) over up to `repeats` timed runs after a warm-up;
  stops early once the timed runs pass max_seconds (at least one timed run)."""
  jax.block_until_ready(compiled(*args))
  times = []
  while len(times) < repeats and sum(times) < max_seconds:
    start = time.perf_counter()
    jax.block_until_ready(compiled(*args))
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def measure(fn, args, *, repeats=3, max_seconds=60.0, max_bytes=None):
  """{"bytes", "seconds", "note"}: seconds is None (with a note) when the compiled
  estimate exceeds max_bytes."""
  compiled, peak = compile_with_memory(fn, *args)
  if max_bytes is not None and peak > max_bytes:
    return dict(bytes=peak, seconds=None, note=f"not run: needs {peak / 2**30:.1f} GiB")
  return dict(bytes=peak, seconds=median_seconds(compiled, args, repeats, max_seconds), note="")
