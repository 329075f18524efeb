"""JAX's persistent compilation cache, on by default for the CLI and the tests.

Compiling dominates short runs on a small CPU; the cache keys compiled programs by
their HLO, so a rerun (or a resumed run) skips straight to training.
ATTN_JAX_CACHE=<dir> moves it; ATTN_JAX_CACHE=off disables it.
"""
from __future__ import annotations

import os
import pathlib

import jax

DEFAULT_DIR = pathlib.Path.home() / ".cache" / "attn_research" / "jax"


def enable(directory=None):
  directory = directory or os.environ.get("ATTN_JAX_CACHE") or DEFAULT_DIR
  if str(directory).lower() == "off":
    return None
  jax.config.update("jax_compilation_cache_dir", str(directory))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  return directory
