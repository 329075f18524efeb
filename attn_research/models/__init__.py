"""Whole models by family, found by name: get_model(config.model, task_info).

Every module of this package is imported here, so a new family is one file that
registers itself (`@register_model`), without an edit to this file. Helper modules
(common, registry, budget, generate, inspect, image_grid) register nothing and are
imported all the same: none imports this package's __init__, so the order is free.
"""
import importlib
import pkgutil

from attn_research.models.registry import (MODELS, count_params, get_model, model_defaults,
                                           register_model)

for _module in pkgutil.iter_modules(__path__):
  importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["MODELS", "count_params", "get_model", "model_defaults", "register_model"]
