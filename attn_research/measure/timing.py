"""Wall time of a compiled function, and the time-and-memory record the attention
benchmarks and reproductions print.

A time is the median of timed calls after one warm-up call (which pays any remaining
compilation and first-touch costs), each call ended by block_until_ready so the clock
covers the device work, not only its dispatch. Memory is memory.peak_bytes, known at
compile time, so a configuration too large for the machine is reported, not run.
"""
from __future__ import annotations

import statistics
import time

import jax

from attn_research.measure.memory import compile_with_memory


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


def time_and_memory(fn, args, *, repeats=3, max_seconds=60.0, max_bytes=None):
  """{"bytes", "seconds", "note"} of jax.jit(fn)(*args): seconds is None (with a note)
  when the compiled peak (memory.peak_bytes) exceeds max_bytes."""
  compiled, peak = compile_with_memory(fn, *args)
  if max_bytes is not None and peak is not None and peak > max_bytes:
    return dict(bytes=peak, seconds=None, note=f"not run: needs {peak / 2**30:.1f} GiB")
  return dict(bytes=peak, seconds=median_seconds(compiled, args, repeats, max_seconds), note="")
