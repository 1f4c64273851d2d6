"""Long multiplication with every carry written out, one digit operation per line.

    prompt:    "Multiply 347 by 26 using long multiplication..."
    solution:  "6 × 7 = 42, write 2 carry 4
                6 × 4 + 4 = 28, write 8 carry 2
                6 × 3 + 2 = 20, write 20
                row 1: 6 × 347 = 2082
                2 × 7 = 14, write 4 carry 1
                2 × 4 + 1 = 9, write 9 carry 0
                2 × 3 + 0 = 6, write 6
                row 2: 2 × 347 = 694, shifted 1 place = 6940
                2082 + 6940 = 9022
                Answer: 9022"

The procedure is fixed (multiplier digits right to left, multiplicand digits right to
left, then the rows added one at a time), so step i has exactly one correct content.
A step is checked by its numbers, in order: `6 × 4 + 4 = 28, write 8 carry 2` is correct
iff its integers are (6, 4, 4, 28, 8, 2) for that position. Spacing, `x`/`*` for `×` and
other wording are free; a dropped carry or a wrong product is located exactly.

Difficulty knobs: digits of the multiplicand and of the multiplier.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from reasonloop.tasks.base import ProceduralTask, Split, check_common_config
from reasonloop.types import Problem
from reasonloop.verify.extract import extract_answer, parse_int

_INT = re.compile(r"\d+")


def multiplication_steps(top: int, bottom: int, slip: tuple[int, int] | None = None) -> list[str]:
    """The canonical steps for `top × bottom` (without the Answer line).

    `slip=(step_index, delta)` adds `delta` to the result written at that step and lets the
    error flow into every later step, as a person's error would.
    """
    steps: list[str] = []
    rows: list[int] = []
    top_digits = [int(d) for d in reversed(str(top))]

    def result(value: int) -> int:
        if slip is None or slip[0] != len(steps):
            return value
        return value + slip[1] if value + slip[1] >= 0 else value + abs(slip[1])

    for place, m in enumerate(int(d) for d in reversed(str(bottom))):
        carry, written = 0, []
        for k, t in enumerate(top_digits):
            product = result(m * t + carry)
            last = k == len(top_digits) - 1
            prefix = f"{m} × {t}" + (f" + {carry}" if k else "")
            if last:
                steps.append(f"{prefix} = {product}, write {product}")
                written.append(str(product)[::-1])
            else:
                write, carry = product % 10, product // 10
                steps.append(f"{prefix} = {product}, write {write} carry {carry}")
                written.append(str(write))
        row_value = int("".join(written)[::-1])
        row = result(row_value)  # the row as read off the written digits
        shifted = row * 10**place
        if place:
            steps.append(f"row {place + 1}: {m} × {top} = {row}, shifted {place} place{'s' if place > 1 else ''} = {shifted}")
        else:
            steps.append(f"row 1: {m} × {top} = {row}")
        rows.append(shifted)
    total = rows[0]
    for row in rows[1:]:
        new_total = result(total + row)
        steps.append(f"{total} + {row} = {new_total}")
        total = new_total
    return steps


@dataclass
class LongMultiplicationConfig:
    size: int = 1000
    seed: int = 0
    split: Split = "train"
    min_top_digits: int = 2
    max_top_digits: int = 4
    min_bottom_digits: int = 1
    max_bottom_digits: int = 3

    def __post_init__(self):
        check_common_config(self)
        if not 1 <= self.min_top_digits <= self.max_top_digits <= 8:
            raise ValueError(f"need 1 <= min_top_digits <= max_top_digits <= 8, got {self.min_top_digits}..{self.max_top_digits}")
        if not 1 <= self.min_bottom_digits <= self.max_bottom_digits <= 6:
            raise ValueError(
                f"need 1 <= min_bottom_digits <= max_bottom_digits <= 6, got {self.min_bottom_digits}..{self.max_bottom_digits}"
            )


class LongMultiplicationTask(ProceduralTask):
    """Schoolbook multiplication; every digit product, carry, row and row sum is a step."""

    name = "long_multiplication"
    description = "schoolbook multiplication with every digit product and carry written out"

    config_class = LongMultiplicationConfig
    config: LongMultiplicationConfig

    def _draw(self, rng: random.Random) -> Problem:
        c = self.config

        def number(lo: int, hi: int) -> int:
            digits = rng.randint(lo, hi)
            return rng.randint(10 ** (digits - 1) if digits > 1 else 2, 10**digits - 1)

        top, bottom = number(c.min_top_digits, c.max_top_digits), number(c.min_bottom_digits, c.max_bottom_digits)
        steps = multiplication_steps(top, bottom)
        return Problem(
            id="",
            prompt=(
                f"Multiply {top} by {bottom} using long multiplication. For each digit of {bottom} "
                f"(right to left), multiply it by each digit of {top} (right to left) on its own line, "
                "as `d × e + carry = p, write w carry k`; then one line per row, one line per row "
                "addition, and a final line `Answer: <product>`.\n"
            ),
            answer=str(top * bottom),
            steps=steps,
            meta={"top": top, "bottom": bottom, "solution": "\n".join(steps + [f"Answer: {top * bottom}"]),
                  "difficulty": len(str(top)) * len(str(bottom))},
        )

    # --- verification ---
    def verify(self, problem: Problem, completion: str) -> float:
        """1.0 iff the final answer is the product.

        >>> t = LongMultiplicationTask(); p = t[0]
        >>> t.verify(p, p.meta["solution"]), t.verify(p, "Answer: 1")
        (1.0, 0.0)
        """
        extraction = extract_answer(completion)
        if extraction.answer is None or extraction.hedged:
            return 0.0
        return float(parse_int(extraction.answer) == int(problem.answer))

    def check_step(self, problem: Problem, previous_steps: list[str], step: str) -> bool:
        i = len(previous_steps)
        if step.strip().lower().startswith("answer"):
            return i == len(problem.steps) and self.verify(problem, step) == 1.0
        if i >= len(problem.steps):
            return False
        expected = problem.steps[i]
        if expected.startswith("row") != step.strip().lower().startswith("row"):
            return False
        return _numbers(step) == _numbers(expected)

    def corrupt(self, problem: Problem, rng: random.Random) -> tuple[list[str], int]:
        """A solution with one slip (a dropped carry, an off-by-one product, a misread row)."""
        bad = rng.randrange(len(problem.steps))
        delta = rng.choice([-10, -1, 1, 10])
        steps = multiplication_steps(problem.meta["top"], problem.meta["bottom"], slip=(bad, delta))
        final = _numbers(steps[-1])[-1]
        return steps + [f"Answer: {final}"], bad


def _numbers(step: str) -> list[int]:
    # "row 2:" is a label, not a value; so is a leading step label like "Step 3:"
    body = re.sub(r"^\s*(?:row|step)\s*\d+\s*:", "", step.strip(), flags=re.IGNORECASE)
    return [int(n) for n in _INT.findall(body.replace("-", " -"))]
