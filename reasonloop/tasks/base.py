"""The Task protocol and the helpers every procedural task uses.

A task is a sized, indexable collection of `Problem`s plus the check for an answer:

    task = make_task("arithmetic", split="test", size=200, seed=0)
    problem = task[3]                       # reproducible from (task, config, seed, index)
    task.verify(problem, completion)        # 1.0 / 0.0

Tasks with step-level ground truth also implement `StepTask.check_step`, so the first wrong
step of any solution can be located exactly (process labels, PRM evaluation).

Train/test separation: a procedural problem belongs to the test split iff a hash of its
prompt falls in the test bucket, and the train split redraws until it gets a non-test
problem. The splits are therefore disjoint by construction, whatever the seeds.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from typing import Literal, Protocol, runtime_checkable

from reasonloop.types import Problem, split_steps

Split = Literal["train", "test"]
TEST_BUCKETS = 10  # one prompt in TEST_BUCKETS goes to the test split


@runtime_checkable
class Task(Protocol):
    name: str

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Problem: ...

    def verify(self, problem: Problem, completion: str) -> float:
        """1.0 if the completion's final answer is correct, else 0.0."""
        ...


@runtime_checkable
class StepTask(Task, Protocol):
    """A task whose solutions are checkable step by step."""

    def check_step(self, problem: Problem, previous_steps: list[str], step: str) -> bool:
        """Is `step` a correct next step after the (correct) `previous_steps`?"""
        ...

    def corrupt(self, problem: Problem, rng: random.Random) -> tuple[list[str], int]:
        """A plausible flawed solution: (steps, index of the first wrong step)."""
        ...


def item_rng(task_name: str, seed: int, split: str, index: int) -> random.Random:
    """The RNG that item `index` is a pure function of."""
    return random.Random(f"{task_name}/{seed}/{split}/{index}")


def in_test_split(prompt: str) -> bool:
    digest = hashlib.sha1(prompt.encode()).digest()
    return digest[0] % TEST_BUCKETS == 0


def draw_in_split(rng: random.Random, split: Split, draw: Callable[[random.Random], Problem]) -> Problem:
    """Draw problems from `draw(rng)` until one lands in `split` (deterministic given rng)."""
    for _ in range(10_000):
        problem = draw(rng)
        if in_test_split(problem.prompt) == (split == "test"):
            return problem
    raise RuntimeError("could not draw a problem for this split: the task's problem space is too small")


def first_error(task: StepTask, problem: Problem, steps: list[str]) -> int | None:
    """Index of the first step that fails `check_step`, or None if all steps are correct."""
    for i, step in enumerate(steps):
        if not task.check_step(problem, steps[:i], step):
            return i
    return None


def steps_all_verify(task, problem: Problem, text: str) -> bool | None:
    """Does every step of `text` pass the task's `check_step`? None when the task cannot check steps.

    With the verifier this separates a right answer reached by right steps from a lucky one.
    """
    if not isinstance(task, StepTask):
        return None
    return first_error(task, problem, split_steps(text)) is None


def build_item(task, index: int, draw: Callable[[random.Random], Problem]) -> Problem:
    """Item `index` of a procedural task: a pure function of (name, seed, split, index).

    `task` needs `name` and a `config` with `size`, `seed` and `split`.
    """
    c = task.config
    if not 0 <= index < c.size:
        raise IndexError(f"{task.name}: index {index} out of range 0..{c.size - 1}")
    rng = item_rng(task.name, c.seed, c.split, index)
    problem = draw_in_split(rng, c.split, draw)
    problem.id = f"{task.name}/{c.split}/{c.seed}/{index}"
    return problem


class ProceduralTask:
    """What every procedural task shares: a config with `size`, `seed` and `split`, and items drawn by `_draw`.

    A subclass sets `name`, `description` and `config_class`, and writes `_draw(rng) -> Problem`
    and `verify`; item `index` is `_draw` under the RNG of (name, seed, split, index) (`build_item`).
    """

    name: str
    config_class: type

    def __init__(self, config=None):
        self.config = config if config is not None else self.config_class()

    def __len__(self) -> int:
        return self.config.size

    def __getitem__(self, index: int) -> Problem:
        return build_item(self, index, self._draw)

    def _draw(self, rng: random.Random) -> Problem:
        raise NotImplementedError(f"{type(self).__name__} must define _draw(rng)")


def check_common_config(config) -> None:
    """Validation every procedural config shares (size, split)."""
    if config.size < 1:
        raise ValueError(f"size must be positive, got {config.size}")
    if config.split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {config.split!r}")
