"""Tasks by family, found by name: get_task(config.data).

Every module of this package is imported here, so a new task file registers itself
(`@register_task`) without an edit to this file.
"""
import importlib
import pkgutil

from attn_research.data.base import (TASKS, Task, TaskInfo, get_task, register_task,
                                     task_defaults, task_smoke)

for _module in pkgutil.iter_modules(__path__):
  importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["TASKS", "Task", "TaskInfo", "get_task", "register_task", "task_defaults", "task_smoke"]
