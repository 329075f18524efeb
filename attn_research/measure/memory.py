"""Peak memory of a compiled program: one formula for the train summary, the benchmarks
and the reproductions.

    peak = argument + output + temp - alias bytes

from XLA's compile-time buffer assignment (compiled.memory_analysis()). Arguments and
outputs are the program's inputs and results, temp its intermediate buffers; an output
that reuses a donated argument's buffer (alias) is counted once, so a train step that
donates its state is not charged for two copies of it. Without donation alias is 0 and
the formula is argument + output + temp. Generated code and host-side buffers are not
counted. It is an estimate known without running, for the shapes that were compiled, so
a configuration too large for the machine is reported rather than run; it is not a
measured high-water mark of the allocator.
"""
from __future__ import annotations

import jax


def peak_bytes(compiled) -> int | None:
  """argument + output + temp - alias bytes of a compiled executable (None where the
  backend gives no memory analysis)."""
  try:
    m = compiled.memory_analysis()
  except (NotImplementedError, RuntimeError, jax.errors.JaxRuntimeError):
    return None
  if m is None:
    return None
  return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
             - m.alias_size_in_bytes)


def compile_with_memory(fn, *args, donate_argnums=()):
  """(compiled executable, peak_bytes) of jax.jit(fn) at the shapes/dtypes of args
  (arrays or jax.ShapeDtypeStruct), without running it."""
  specs = [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in args]
  compiled = jax.jit(fn, donate_argnums=donate_argnums).lower(*specs).compile()
  return compiled, peak_bytes(compiled)
