"""Per-step verdicts of a sample, kept with it for the run viewer (`reasonloop view`).

`annotate_steps(task, problem, sample)` fills `sample.meta["step_verdicts"]` (one bool per
step of `split_steps(sample.text)`: does `check_step` accept the step after the steps
before it) and `sample.meta["steps_valid"]` (every step accepted), for tasks that check
steps; other tasks get neither verdicts nor validity (None).
"""

from __future__ import annotations

from reasonloop.tasks.base import StepTask
from reasonloop.types import Problem, Sample, split_steps


def step_verdicts(task, problem: Problem, steps: list[str]) -> list[bool] | None:
    """check_step of each step given the steps before it; None when the task cannot check steps.

    After a wrong step the later ones are still judged (on top of the wrong one), so a
    viewer shows where a solution went wrong and whether it recovered.
    """
    if not isinstance(task, StepTask):
        return None
    return [bool(task.check_step(problem, steps[:i], step)) for i, step in enumerate(steps)]


def annotate_steps(task, problem: Problem, sample: Sample, separator: str = "\n") -> None:
    """Set `meta["step_verdicts"]` (when the task checks steps) and `meta["steps_valid"]` in place."""
    verdicts = step_verdicts(task, problem, split_steps(sample.text, separator))
    if verdicts is not None:
        sample.meta["step_verdicts"] = verdicts
    sample.meta["steps_valid"] = None if verdicts is None else all(verdicts)
