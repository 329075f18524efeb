"""Run modes, found by name: `config.mode` says what `./launch.sh run` does with a config.

  single         one model trained by the loop (train/loop.py)
  comparison     several complete run configs (models x seeds) under one budget, then a
                 report (modes/comparison.py)
  extrapolation  one model per position encoding trained at length L, evaluated at
                 longer lengths (modes/extrapolation.py)

Every mode has one signature: `fn(config, workdir, *, progress) -> str`, the lines
the CLI prints at the end. Every module of this package is imported here, so a new
mode file registers itself (`@register_mode("NAME")`) without an edit to this file.
"""
import importlib
import pkgutil

from attn_research.modes.base import MODES, get_mode, register_mode

for _module in pkgutil.iter_modules(__path__):
  if _module.name != "base":
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["MODES", "get_mode", "register_mode"]
