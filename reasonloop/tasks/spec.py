"""`TaskSpec`: how a command's config names a task (a registry name plus its options)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class TaskSpec:
    name: str = "arithmetic"
    """a name from `reasonloop list tasks`"""
    options: dict[str, Any] = field(default_factory=dict)
    """fields of the task's config dataclass (difficulty knobs), e.g. {max_ops: 4}"""

    def build(self, split: str, size: int, seed: int):
        from reasonloop.tasks import make_task

        return make_task(self.name, split=split, size=size, seed=seed, **self.options)
