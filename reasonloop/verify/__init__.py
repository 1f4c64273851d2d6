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
    """A reward by registry name, or a user's callable by import path `package.module:function`.

    The error names the bad part (unknown registry name, module that fails to import,
    missing attribute, or something that is not callable).
    """
    if ":" in name:
        import importlib

        module_name, _, attr = name.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            raise KeyError(f"reward {name!r}: cannot import module {module_name!r} ({e})") from e
        fn = getattr(module, attr, None)
        if fn is None or not callable(fn):
            raise KeyError(f"reward {name!r}: module {module_name!r} has no callable {attr!r}")
        return fn
    if name not in REWARDS:
        raise KeyError(f"unknown reward {name!r}; known rewards: {', '.join(sorted(REWARDS))} "
                       f"(or a callable by import path, 'package.module:function')")
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
