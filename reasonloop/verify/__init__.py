"""Verifiers and reward functions: plain callables `(problem, completion) -> float | None`.

`REWARDS` is the registry of ready-made rewards (name -> callable). Parameterised ones are
built by factories in `rewards` (`correctness_reward(task)`, `overlong_penalty(...)`,
`length_penalty(...)`, `weighted_sum(...)`); `score_all` scores a batch in parallel with
per-item timeouts and error capture.

Heavy dependencies (math_verify, sympy) load only inside worker processes, so importing
this package is cheap.
"""

from __future__ import annotations

from reasonloop.verify.code import code_reward
from reasonloop.verify.math import answers_equal, grade_math, math_reward
from reasonloop.verify.rewards import (
    Scores,
    answer_format_reward,
    correctness_reward,
    length_penalty,
    overlong_penalty,
    score_all,
    think_format_reward,
    weighted_sum,
)

REWARDS = {
    "math": math_reward,
    "code_tests": code_reward,
    "format_think": think_format_reward,
    "format_answer": answer_format_reward,
}


def get_reward(name: str):
    """A registered reward by name; the error lists the valid names."""
    if name not in REWARDS:
        raise KeyError(f"unknown reward {name!r}; known rewards: {', '.join(sorted(REWARDS))}")
    return REWARDS[name]


__all__ = [
    "REWARDS",
    "Scores",
    "answer_format_reward",
    "answers_equal",
    "code_reward",
    "correctness_reward",
    "get_reward",
    "grade_math",
    "length_penalty",
    "math_reward",
    "overlong_penalty",
    "score_all",
    "think_format_reward",
    "weighted_sum",
]
