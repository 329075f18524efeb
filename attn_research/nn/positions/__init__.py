"""Positional encodings, found by name: get_positional(config.model.position, ...).

Every module of this package is imported here, so a new encoding is one file that
registers itself (`@register_positional`), without an edit anywhere else.
"""
import importlib
import pkgutil

from attn_research.nn.positions.base import (POSITIONAL, Position, decodable_positions,
                                             get_positional, register_positional)

for _module in pkgutil.iter_modules(__path__):
  importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["POSITIONAL", "Position", "decodable_positions", "get_positional",
           "register_positional"]
