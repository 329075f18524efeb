"""Objectives, found by name: `get_objective(config, model)` (`config.objective`).

An objective owns what differs between kinds of training (DESIGN.md, "Objectives"): its
parameter groups and optimizers, the loss and metrics, the train step (one or several
updates), evaluation and the fields it adds to summary.json. The loop, checkpoints,
resume, the NaN stop, logging and parallelism are written once (train/loop.py) and
serve every objective.

Every module of this package is imported here, so a new objective file registers
itself (`@register_objective("NAME")`) without an edit to this file.
"""
import importlib
import pkgutil

from attn_research.objectives.base import (OBJECTIVES, Objective, get_objective,
                                           register_objective)

for _module in pkgutil.iter_modules(__path__):
  importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["OBJECTIVES", "Objective", "get_objective", "register_objective"]
