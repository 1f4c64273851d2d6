"""Linear equations in one unknown, solved by equation transformations, one per line.

    prompt:    "Solve for x: 3(x + 2) = x + 20\n..."
    solution:  "3x + 6 = x + 20\n2x + 6 = 20\n2x = 14\nx = 7\nAnswer: 7"

A step is an equation; it is correct iff it is linear in x, not degenerate (x does not
cancel out) and has the same solution as the original equation. That is exact local
validity: every legal transformation (expanding, moving terms, dividing) keeps the
solution, and every slip (a sign error when moving a term, a wrong division) changes it.
The `Answer: v` line is correct iff v is the solution.

Hand-written because checking needs only a 60-line exact parser of linear expressions
(Fractions, implicit multiplication `3x`, `2(x + 1)`), where sympy would cost ~100 ms of
import and milliseconds per step.

Difficulty knobs: equation forms (`ax+b=c`, `ax+b=cx+d`, `a(x+b)=c`, `a(x+b)=cx+d`),
coefficient size, solution range, whether negative numbers appear.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from fractions import Fraction

from reasonloop.tasks.base import ProceduralTask, Split, check_common_config
from reasonloop.types import Problem
from reasonloop.verify.extract import extract_answer, strip_reasoning
from reasonloop.verify.math import parse_number

FORMS = ("ax+b=c", "ax+b=cx+d", "a(x+b)=c", "a(x+b)=cx+d")

Linear = tuple[Fraction, Fraction]
"""(coefficient of x, constant)"""


# --- exact parsing of linear expressions ---------------------------------------------------

_TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d+)?)|(x)|([-+*/()]))")


def parse_linear(text: str) -> Linear | None:
    """`3(x + 2) - x/2` -> (5/2, 6); None if not a linear expression in x.

    >>> parse_linear("3(x + 2) - x/2")
    (Fraction(5, 2), Fraction(6, 1))
    >>> parse_linear("x*x") is None, parse_linear("2 +") is None
    (True, True)
    """
    text = text.replace("\u2212", "-").replace("×", "*").replace("·", "*").replace("÷", "/").strip()
    tokens, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            return None
        tokens.append(m.group(1) or m.group(2) or m.group(3))
        pos = m.end()
    tokens = [t for t in tokens if t]
    try:
        value, rest = _sum(tokens)
    except (ValueError, IndexError, ZeroDivisionError):
        return None
    return value if not rest else None


def _sum(tokens):
    value, tokens = _product(tokens)
    while tokens and tokens[0] in "+-":
        op, (rhs, tokens) = tokens[0], _product(tokens[1:])
        value = (value[0] + rhs[0], value[1] + rhs[1]) if op == "+" else (value[0] - rhs[0], value[1] - rhs[1])
    return value, tokens


def _product(tokens):
    value, tokens = _unary(tokens)
    # explicit * and /, or implicit multiplication: "3x", "2(x+1)", "(x+1)3" is not allowed
    while tokens and (tokens[0] in ("*", "/") or tokens[0] in ("x", "(")):
        op = tokens[0] if tokens[0] in ("*", "/") else "*"
        rhs, tokens = _unary(tokens[1:] if tokens[0] in ("*", "/") else tokens)
        if op == "*":
            if value[0] and rhs[0]:
                raise ValueError("not linear")
            value = (value[0] * rhs[1] + rhs[0] * value[1], value[1] * rhs[1])
        else:
            if rhs[0]:
                raise ValueError("division by an expression in x")
            value = (value[0] / rhs[1], value[1] / rhs[1])
    return value, tokens


def _unary(tokens):
    if tokens[0] == "-":
        (a, b), tokens = _unary(tokens[1:])
        return (-a, -b), tokens
    if tokens[0] == "+":
        return _unary(tokens[1:])
    if tokens[0] == "(":
        value, tokens = _sum(tokens[1:])
        if not tokens or tokens[0] != ")":
            raise ValueError("unbalanced parenthesis")
        return value, tokens[1:]
    if tokens[0] == "x":
        return (Fraction(1), Fraction(0)), tokens[1:]
    if tokens[0][0].isdigit():
        return (Fraction(0), Fraction(tokens[0])), tokens[1:]
    raise ValueError(f"unexpected {tokens[0]!r}")


def solve_equation(text: str) -> Fraction | None:
    """The unique solution of a linear equation `lhs = rhs`, or None (not one, or degenerate)."""
    text = strip_reasoning(text).strip().rstrip(".")
    if text.count("=") != 1:
        return None
    left, right = (parse_linear(side) for side in text.split("="))
    if left is None or right is None or left[0] == right[0]:
        return None
    return (right[1] - left[1]) / (left[0] - right[0])


# --- formatting ------------------------------------------------------------------------------


def _num(v: Fraction) -> str:
    return str(v.numerator) if v.denominator == 1 else f"{v.numerator}/{v.denominator}"


def format_linear(a: Fraction, b: Fraction) -> str:
    """(2, -3) -> '2x - 3'; (1/2, 0) -> '1/2 x' is avoided by writing 'x/2'."""
    if a == 0:
        return _num(b)
    if a.denominator != 1:
        term = ("-" if a < 0 else "") + (f"{abs(a.numerator)}x/{a.denominator}" if abs(a.numerator) != 1 else f"x/{a.denominator}")
    else:
        term = {1: "x", -1: "-x"}.get(int(a), f"{int(a)}x")
    if b == 0:
        return term
    return f"{term} {'+' if b > 0 else '-'} {_num(abs(b))}"


def solution_steps(a1: Fraction, b1: Fraction, a2: Fraction, b2: Fraction) -> list[str]:
    """Move x terms left, constants right, divide: the steps from `a1 x + b1 = a2 x + b2`."""
    steps = []
    if a2 != 0:
        a1, a2 = a1 - a2, Fraction(0)
        steps.append(f"{format_linear(a1, b1)} = {_num(b2)}")
    if b1 != 0:
        b1, b2 = Fraction(0), b2 - b1
        steps.append(f"{format_linear(a1, b1)} = {_num(b2)}")
    if a1 != 1:
        b2, a1 = b2 / a1, Fraction(1)
        steps.append(f"x = {_num(b2)}")
    return steps + [f"Answer: {_num(b2)}"]


@dataclass
class LinearEquationConfig:
    size: int = 1000
    seed: int = 0
    split: Split = "train"
    forms: list[str] = field(default_factory=lambda: list(FORMS))
    max_coefficient: int = 9
    max_solution: int = 20
    allow_negative: bool = True
    """negative coefficients, constants and solutions"""

    def __post_init__(self):
        check_common_config(self)
        bad = [f for f in self.forms if f not in FORMS]
        if bad or not self.forms:
            raise ValueError(f"forms must be a non-empty subset of {list(FORMS)}, got {self.forms}")
        if not 2 <= self.max_coefficient <= 99:
            raise ValueError(f"max_coefficient must be 2-99, got {self.max_coefficient}")
        if not 1 <= self.max_solution <= 1000:
            raise ValueError(f"max_solution must be 1-1000, got {self.max_solution}")


class LinearEquationTask(ProceduralTask):
    """Solve a x + b = c style equations; every step is an equation with the same solution."""

    name = "linear_equation"
    description = "solve one-unknown linear equations; each step is an equation checked for equivalence"

    config_class = LinearEquationConfig
    config: LinearEquationConfig

    def _draw(self, rng: random.Random) -> Problem:
        c = self.config
        lo = -c.max_coefficient if c.allow_negative else 1

        def coefficient(nonzero=True):
            while True:
                v = rng.randint(lo, c.max_coefficient)
                if v not in (0, 1, -1) or not nonzero:
                    return v

        form = rng.choice(c.forms)
        x = rng.randint(-c.max_solution if c.allow_negative else 0, c.max_solution)
        a, b = coefficient(), coefficient(nonzero=False)
        a2 = coefficient() if form.endswith("cx+d") else 0
        if a2 and not c.allow_negative and a2 >= a:
            a = a2 + rng.randint(1, 3)  # keep the x coefficient positive after moving terms
        if a2 == a:
            a2 = a + 1 if a != -1 else a + 2
        steps = []
        if form.startswith("a(x+b)"):
            b = b or 1
            left_text = f"{a}({format_linear(Fraction(1), Fraction(b))})"
            a1, b1 = Fraction(a), Fraction(a * b)
        else:
            a1, b1 = Fraction(a), Fraction(b)
            left_text = format_linear(a1, b1)
        right = (Fraction(a2), a1 * x + b1 - a2 * x)  # the constant that makes x the solution
        right_text = format_linear(*right)
        if form.startswith("a(x+b)"):
            steps.append(f"{format_linear(a1, b1)} = {right_text}")  # expand the brackets
        steps += solution_steps(a1, b1, *right)
        return Problem(
            id="",
            prompt=(
                f"Solve for x: {left_text} = {right_text}\n"
                "Transform the equation one step per line (each line an equation), "
                "then give a final line `Answer: <value of x>`.\n"
            ),
            answer=str(x),
            steps=steps[:-1],
            meta={"equation": f"{left_text} = {right_text}", "solution_x": str(x), "form": form,
                  "solution": "\n".join(steps), "difficulty": FORMS.index(form) + 1},
        )

    # --- verification ---
    def verify(self, problem: Problem, completion: str) -> float:
        """1.0 iff the final answer is the solution (fractions and decimals accepted).

        >>> t = LinearEquationTask(); p = t[0]
        >>> t.verify(p, p.meta["solution"]), t.verify(p, "Answer: 1000")
        (1.0, 0.0)
        """
        extraction = extract_answer(completion)
        if extraction.answer is None or extraction.hedged:
            return 0.0
        answer = re.sub(r"^\s*x\s*=", "", extraction.answer)
        number = parse_number(answer)
        return float(number is not None and not number.percent and number.value == Fraction(problem.meta["solution_x"]))

    def check_step(self, problem: Problem, previous_steps: list[str], step: str) -> bool:
        if step.strip().lower().startswith("answer"):
            return self.verify(problem, step) == 1.0
        return solve_equation(step) == Fraction(problem.meta["solution_x"])

    def corrupt(self, problem: Problem, rng: random.Random) -> tuple[list[str], int]:
        """A solution with a slip (sign error, off-by-one, wrong division) that propagates."""
        steps = list(problem.steps)
        bad = rng.randrange(len(steps))
        left, right = steps[bad].split("=")
        a1, b1 = parse_linear(left)
        a2, b2 = parse_linear(right)
        kind = rng.random()
        if kind < 0.4 and bad > 0 and b2 != 0:
            b2 = -b2  # moved a term across without changing its sign, roughly
        elif kind < 0.7 and a1 not in (0, 1):
            a1 = a1 + rng.choice([-1, 1]) or a1 + 2  # miscopied coefficient
        else:
            b2 = b2 + rng.choice([-2, -1, 1, 2])
        if a1 == a2:
            a1 += 1
        wrong = f"{format_linear(a1, b1)} = {format_linear(a2, b2)}"
        if solve_equation(wrong) == Fraction(problem.meta["solution_x"]):  # the slip happened to be harmless
            b2 += 1
            wrong = f"{format_linear(a1, b1)} = {format_linear(a2, b2)}"
        return steps[:bad] + [wrong] + solution_steps(a1, b1, a2, b2), bad
