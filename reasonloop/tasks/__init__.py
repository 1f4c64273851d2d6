"""Problem sources. `TASKS` is the registry: name -> (task class, its config dataclass).

    task = make_task("arithmetic", split="test", size=200, seed=0, max_ops=3)
    task = make_task("reasoning_gym:chain_sum", size=100, seed=0)        # any reasoning-gym task
    task = make_task("gsm8k", source="data/gsm8k/{split}.jsonl", split="test")   # a dataset
    cursor = ProblemCursor(task, seed=0); batch = cursor.take(8)         # epochs, shuffled, resumable

Procedural tasks (arithmetic ... ordering) have step-level ground truth (`check_step`,
`corrupt`) and a reference solution in `meta["solution"]`: one step per line and a final
`Answer: ...` line. Dataset tasks (gsm8k ... dataset, see `tasks.formats`) are finite lists
read from files or the Hub (`tasks.datasets`, `tasks.sources`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from reasonloop.config import ConfigError
from reasonloop.tasks.arithmetic import ArithmeticConfig, ArithmeticTask
from reasonloop.tasks.base import StepTask, Task, first_error, split_steps
from reasonloop.tasks.countdown import CountdownConfig, CountdownTask
from reasonloop.tasks.cursor import ProblemCursor
from reasonloop.tasks.datasets import DatasetConfig, DatasetTask
from reasonloop.tasks.formats import (
    AIMETask,
    AMCTask,
    GenericTask,
    GSM8KTask,
    HumanEvalTask,
    MathTask,
    MBPPTask,
    PRM800KTask,
    ProcessBenchTask,
)
from reasonloop.tasks.gym import PREFIX as GYM_PREFIX
from reasonloop.tasks.gym import ReasoningGymConfig, ReasoningGymTask
from reasonloop.tasks.linear import LinearEquationConfig, LinearEquationTask
from reasonloop.tasks.multiplication import LongMultiplicationConfig, LongMultiplicationTask
from reasonloop.tasks.ordering import OrderingConfig, OrderingTask
from reasonloop.tasks.sources import DatasetError

TASKS: dict[str, tuple[type, type]] = {
    "arithmetic": (ArithmeticTask, ArithmeticConfig),
    "countdown": (CountdownTask, CountdownConfig),
    "linear_equation": (LinearEquationTask, LinearEquationConfig),
    "long_multiplication": (LongMultiplicationTask, LongMultiplicationConfig),
    "ordering": (OrderingTask, OrderingConfig),
    "gsm8k": (GSM8KTask, DatasetConfig),
    "math": (MathTask, DatasetConfig),
    "aime": (AIMETask, DatasetConfig),
    "amc": (AMCTask, DatasetConfig),
    "humaneval": (HumanEvalTask, DatasetConfig),
    "mbpp": (MBPPTask, DatasetConfig),
    "prm800k": (PRM800KTask, DatasetConfig),
    "processbench": (ProcessBenchTask, DatasetConfig),
    "dataset": (GenericTask, DatasetConfig),
}


class UnknownTaskError(ConfigError):
    """A task name that is not registered; the message lists the known ones."""


def is_dataset_task(name: str) -> bool:
    """A finite dataset read from a source (as opposed to a procedural task)."""
    return name in TASKS and issubclass(TASKS[name][0], DatasetTask)


def known_task(name: str) -> None:
    """Raise UnknownTaskError naming the known tasks unless `name` is one (or reasoning_gym:<name>)."""
    if name not in TASKS and not (name.startswith(GYM_PREFIX) and len(name) > len(GYM_PREFIX)):
        import difflib

        close = difflib.get_close_matches(name, list(TASKS), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise UnknownTaskError(f"unknown task {name!r}; {hint}known tasks: {', '.join(sorted(TASKS))}, "
                       f"or {GYM_PREFIX}<name> for any reasoning-gym task")


def _build_config(name: str, config_cls: type, options: dict[str, Any]):
    known = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(f"task {name!r} has no option(s) {unknown}; valid: {sorted(known)}")
    try:
        return config_cls(**options)
    except (ValueError, TypeError) as e:  # the config's own checks (e.g. min_ops > max_ops)
        raise ConfigError(f"task {name!r} options: {e}") from None


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
    known_task(name)
    cls, config_cls = TASKS[name]
    return cls(_build_config(name, config_cls, options))


def describe_tasks() -> list[tuple[str, str]]:
    """(name, one-line description) of every registered task, for `reasonloop list tasks`."""
    rows = []
    for name, (cls, _) in TASKS.items():
        description = cls.description
        if issubclass(cls, DatasetTask):
            default = f"default source {cls.default_source[0]}" if cls.default_source else "needs task.source"
            description += f" [dataset; {default}]"
        rows.append((name, description))
    return rows + [(f"{GYM_PREFIX}<name>", ReasoningGymTask.description)]


__all__ = ["TASKS", "DatasetError", "DatasetTask", "ProblemCursor", "StepTask", "Task", "UnknownTaskError", "describe_tasks",
           "first_error", "is_dataset_task", "known_task", "make_task", "split_steps"]
