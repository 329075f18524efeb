"""Tasks by family, found by name: get_task(config.data)."""
from attn_research.data import images, synthetic  # noqa: F401  (registers the tasks)
from attn_research.data.base import (TASKS, Task, TaskInfo, get_task, register_task,
                                     task_defaults, task_smoke)

__all__ = ["TASKS", "Task", "TaskInfo", "get_task", "register_task", "task_defaults", "task_smoke"]
