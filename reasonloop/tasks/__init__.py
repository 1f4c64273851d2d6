"""Problem sources. `TASKS` is the registry: name -> (task class, its config dataclass).

    task = make_task("arithmetic", split="test", size=200, seed=0, max_ops=3)
"""

from __future__ import annotations

import dataclasses
from typing import Any

from reasonloop.tasks.arithmetic import ArithmeticConfig, ArithmeticTask
from reasonloop.tasks.base import StepTask, Task, first_error, split_steps

TASKS: dict[str, tuple[type, type]] = {
    "arithmetic": (ArithmeticTask, ArithmeticConfig),
}


def make_task(name: str, **options: Any) -> Task:
    """Build a registered task; `options` are fields of its config dataclass."""
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}")
    cls, config_cls = TASKS[name]
    known = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"task {name!r} has no option(s) {unknown}; valid: {sorted(known)}")
    return cls(config_cls(**options))


__all__ = ["TASKS", "make_task", "Task", "StepTask", "first_error", "split_steps"]
