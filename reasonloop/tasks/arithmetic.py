"""Multi-step integer arithmetic, evaluated left to right, with one checkable step per line.

    prompt:    "Compute left to right: 37 + 5 - 8 * 3\n"
    solution ("equations", the default):  "37 + 5 = 42\n42 - 8 = 34\n34 * 3 = 102\nAnswer: 102"
    solution ("rewrite"):                 "42 - 8 * 3\n34 * 3\nAnswer: 102"

"equations": every step is `a op b = c`; step i is correct iff `a` is the true running
value, `op b` is the problem's i-th operation and `c = a op b`.
"rewrite": every step is the remaining expression with its first operation evaluated;
step i is correct iff it equals the true rewrite. This format only ever copies from the
line just above, which a tiny model learns in a few hundred steps; "equations" needs it
to fetch the i-th operand from the prompt, which takes a tiny model far longer to learn.
In both, the final `Answer: N` line is a step too (correct iff N is the gold answer), so a
solution's first error is located exactly.

Difficulty knobs: number of operations, digits of the starting number and of operands,
the operator set. Subtractions never go below zero unless `allow_negative`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal

from reasonloop.tasks.base import Split, draw_in_split, item_rng
from reasonloop.types import Problem
from reasonloop.verify.extract import extract_final_answer, parse_int

_OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}


@dataclass
class ArithmeticConfig:
    size: int = 1000
    seed: int = 0
    split: Split = "train"
    min_ops: int = 2
    max_ops: int = 4
    start_digits: int = 2
    """digits of the starting number (1-3)"""
    operand_digits: int = 1
    """digits of each + / - operand (1-3)"""
    mul_digits: int = 1
    """digits of each * operand (keeps products readable)"""
    ops: list[str] = field(default_factory=lambda: ["+", "-"])
    allow_negative: bool = False
    solution_format: Literal["equations", "rewrite"] = "equations"
    """how reference solutions are written (see the module docstring)"""

    def __post_init__(self):
        if not 1 <= self.min_ops <= self.max_ops <= 6:
            raise ValueError(f"need 1 <= min_ops <= max_ops <= 6, got {self.min_ops}..{self.max_ops}")
        for name in ("start_digits", "operand_digits", "mul_digits"):
            if not 1 <= getattr(self, name) <= 3:
                raise ValueError(f"{name} must be 1-3, got {getattr(self, name)}")
        bad = [o for o in self.ops if o not in _OPS]
        if bad or not self.ops:
            raise ValueError(f"ops must be a non-empty subset of {list(_OPS)}, got {self.ops}")
        if self.size < 1:
            raise ValueError(f"size must be positive, got {self.size}")


def _number(rng: random.Random, digits: int) -> int:
    return rng.randint(1 if digits == 1 else 10 ** (digits - 1), 10**digits - 1)


class ArithmeticTask:
    """Left-to-right integer arithmetic chains with exact step checking."""

    name = "arithmetic"
    description = "chains of 2-6 integer + - * operations, one checkable step per line"

    def __init__(self, config: ArithmeticConfig | None = None):
        self.config = config or ArithmeticConfig()

    def __len__(self) -> int:
        return self.config.size

    def __getitem__(self, index: int) -> Problem:
        if not 0 <= index < len(self):
            raise IndexError(index)
        c = self.config
        rng = item_rng(self.name, c.seed, c.split, index)
        problem = draw_in_split(rng, c.split, self._draw)
        problem.id = f"{self.name}/{c.split}/{c.seed}/{index}"
        return problem

    def _draw(self, rng: random.Random) -> Problem:
        c = self.config
        value = _number(rng, c.start_digits)
        start, operations, values = value, [], [value]
        for _ in range(rng.randint(c.min_ops, c.max_ops)):
            op = rng.choice(c.ops)
            b = _number(rng, c.mul_digits if op == "*" else c.operand_digits)
            if op == "-" and not c.allow_negative and b > value:
                op = "+"
            value = _OPS[op](value, b)
            operations.append([op, b])
            values.append(value)
        expr = " ".join([str(start)] + [f"{op} {b}" for op, b in operations])
        solution = self.render(operations, values)
        return Problem(
            id="",
            prompt=f"Compute left to right: {expr}\n",
            answer=str(value),
            steps=solution[:-1],
            meta={
                "start": start,
                "operations": operations,
                "solution": "\n".join(solution),
                "difficulty": len(operations),
            },
        )

    def render(self, operations: list, values: list[int]) -> list[str]:
        """Solution steps (answer line included) for the claimed running `values`
        (`values[0]` is the start, `values[i + 1]` the claimed result of operation i)."""
        if self.config.solution_format == "equations":
            steps = [f"{values[i]} {op} {b} = {values[i + 1]}" for i, (op, b) in enumerate(operations)]
        else:
            steps = [" ".join([str(values[i + 1])] + [f"{op} {b}" for op, b in operations[i + 1:]])
                     for i in range(len(operations) - 1)]
        return steps + [f"Answer: {values[-1]}"]

    # --- verification ---
    def verify(self, problem: Problem, completion: str) -> float:
        """1.0 iff the last `Answer:` equals the gold integer.

        >>> t = ArithmeticTask(); p = t[0]
        >>> t.verify(p, p.meta["solution"]), t.verify(p, "Answer: -1")
        (1.0, 0.0)
        """
        predicted = parse_int(extract_final_answer(completion))
        return float(predicted is not None and predicted == int(problem.answer))

    def running_values(self, problem: Problem) -> list[int]:
        values = [problem.meta["start"]]
        for op, b in problem.meta["operations"]:
            values.append(_OPS[op](values[-1], b))
        return values

    def check_step(self, problem: Problem, previous_steps: list[str], step: str) -> bool:
        """Step i is correct iff it is the true solution's step i (spacing ignored)."""
        i = len(previous_steps)
        values = self.running_values(problem)
        expected = self.render(problem.meta["operations"], values)
        if i == len(expected) - 1:  # the answer line
            return step.lower().startswith("answer") and parse_int(extract_final_answer(step)) == values[-1]
        return i < len(expected) - 1 and "".join(step.split()) == "".join(expected[i].split())

    def misconception(self, problem: Problem) -> tuple[list[str], int] | None:
        """The solution of a solver who never carries or borrows: (steps, first wrong step).

        A *systematic* error, unlike `corrupt`'s random slips: a model trained on enough of
        these makes it as its most likely step, so greedy decoding inherits it while sampling
        still finds the right steps sometimes. None when no step needs a carry or borrow.
        """
        operations, values, first = problem.meta["operations"], [problem.meta["start"]], None
        for i, (op, b) in enumerate(operations):
            values.append(_without_carry(values[-1], op, b))
            if first is None and values[-1] != _OPS[op](values[-2], b):
                first = i
        return None if first is None else (self.render(operations, values), first)

    def corrupt(self, problem: Problem, rng: random.Random) -> tuple[list[str], int]:
        """A solution with one miscalculated step whose error propagates to the answer.

        Errors look like real slips: off by one, a dropped/added carry (±10), or a digit swap.
        """
        operations = problem.meta["operations"]
        bad = rng.randrange(len(operations))
        values = [problem.meta["start"]]
        for i, (op, b) in enumerate(operations):
            result = _OPS[op](values[-1], b)
            values.append(_plausible_wrong(result, rng, self.config.allow_negative) if i == bad else result)
        # one step per operation in both formats (in "rewrite" the last result is the answer line)
        return self.render(operations, values), bad


def _without_carry(a: int, op: str, b: int) -> int:
    """a op b computed with the carry (for +) or the borrow (for -) out of the units digit dropped."""
    if op == "+" and a >= 0 and a % 10 + b % 10 >= 10:
        return a + b - 10
    if op == "-" and a >= 10 and a % 10 < b % 10:
        return a - b + 10
    return _OPS[op](a, b)


def _plausible_wrong(result: int, rng: random.Random, allow_negative: bool) -> int:
    for _ in range(20):
        kind = rng.random()
        if kind < 0.4:
            wrong = result + rng.choice([-1, 1])
        elif kind < 0.8:
            wrong = result + rng.choice([-10, 10])
        else:
            digits = list(str(abs(result)))
            if len(digits) >= 2 and digits[-1] != digits[-2]:
                digits[-1], digits[-2] = digits[-2], digits[-1]
            wrong = int("".join(digits)) * (1 if result >= 0 else -1)
        if wrong != result and (allow_negative or wrong >= 0):
            return wrong
    return result + 1
