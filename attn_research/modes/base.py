"""The run-mode registry (see the package docstring)."""
from __future__ import annotations

from attn_research.registry import Registry

MODES = Registry("mode")


def register_mode(name: str):
  """Decorator: fn(config, workdir, *, progress) -> str, selectable as config.mode=NAME."""
  return MODES.register(name)


def get_mode(config):
  """The run function config.mode names ("single" when a config has no mode)."""
  return MODES.get(config.get("mode", "single"))
