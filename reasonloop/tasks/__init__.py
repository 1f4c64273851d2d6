"""Problem sources. `TASKS` is the registry: name -> (task class, its config dataclass).

    task = make_task("arithmetic", split="test", size=200, seed=0, max_ops=3)
    task = make_task("reasoning_gym:chain_sum", size=100, seed=0)   # any reasoning-gym task
    task = load_gsm8k("data/gsm8k/test.jsonl")                      # a dataset from local files

Every procedural task here has step-level ground truth (`check_step`, `corrupt`) and a
reference solution in `meta["solution"]`: one step per line and a final `Answer: ...` line.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from reasonloop.tasks.arithmetic import ArithmeticConfig, ArithmeticTask
from reasonloop.tasks.base import StepTask, Task, first_error, split_steps
from reasonloop.tasks.countdown import CountdownConfig, CountdownTask
from reasonloop.tasks.gym import PREFIX as GYM_PREFIX
from reasonloop.tasks.gym import ReasoningGymConfig, ReasoningGymTask
from reasonloop.tasks.linear import LinearEquationConfig, LinearEquationTask
from reasonloop.tasks.multiplication import LongMultiplicationConfig, LongMultiplicationTask
from reasonloop.tasks.ordering import OrderingConfig, OrderingTask

TASKS: dict[str, tuple[type, type]] = {
    "arithmetic": (ArithmeticTask, ArithmeticConfig),
    "countdown": (CountdownTask, CountdownConfig),
    "linear_equation": (LinearEquationTask, LinearEquationConfig),
    "long_multiplication": (LongMultiplicationTask, LongMultiplicationConfig),
    "ordering": (OrderingTask, OrderingConfig),
}


def _build_config(name: str, config_cls: type, options: dict[str, Any]):
    known = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"task {name!r} has no option(s) {unknown}; valid: {sorted(known)}")
    return config_cls(**options)


def make_task(name: str, **options: Any) -> Task:
    """Build a registered task; `options` are fields of its config dataclass.

    `reasoning_gym:<name>` builds any reasoning-gym task; options it does not know go to
    reasoning-gym's own config (e.g. `min_terms=3`).
    """
    if name.startswith(GYM_PREFIX):
        ours = {f.name for f in dataclasses.fields(ReasoningGymConfig)} - {"options"}
        gym_options = {k: v for k, v in options.items() if k not in ours}
        config = ReasoningGymConfig(**{k: v for k, v in options.items() if k in ours},
                                    options={**options.get("options", {}), **gym_options})
        return ReasoningGymTask(name[len(GYM_PREFIX):], config)
    if name not in TASKS:
        raise KeyError(
            f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}, or {GYM_PREFIX}<name> for any reasoning-gym task"
        )
    cls, config_cls = TASKS[name]
    return cls(_build_config(name, config_cls, options))


def describe_tasks() -> list[tuple[str, str]]:
    """(name, one-line description) of every registered task, for `reasonloop list tasks`."""
    rows = [(name, cls.description) for name, (cls, _) in TASKS.items()]
    return rows + [(f"{GYM_PREFIX}<name>", ReasoningGymTask.description)]


__all__ = ["TASKS", "StepTask", "Task", "describe_tasks", "first_error", "make_task", "split_steps"]
