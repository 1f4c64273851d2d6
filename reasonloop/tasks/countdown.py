"""Countdown: reach a target from given numbers with + - * /, one combination per line.

    prompt:    "Use the numbers 3, 7, 25, 4 (each at most once) and + - * / to make 87. ..."
    solution:  "25 - 4 = 21\n21 * 3 = 63\n63 + 7 = 70 ... \nAnswer: (25 - 4) * 3 + 7"

Many solutions exist, so steps are checked for *local validity* rather than against the
reference: step `a op b = c` after correct previous steps is correct iff
- `a` and `b` are both still available (given numbers and earlier results, each used once),
- `c` is `a op b` computed exactly, with the classic rules: results are positive integers
  (no negative differences, only exact divisions), and
- the target is still reachable from the numbers then available (an exhaustive search),
  so a step into a dead end is a wrong step even though its arithmetic is right.
The final `Answer: <expression>` line is correct iff the expression uses the given numbers
at most once each and evaluates exactly to the target (intermediate values must be
integers; negative intermediates are tolerated in the expression form).

Hand-written rather than wrapping reasoning-gym's countdown because that one has no
step-level ground truth and generates slowly (2 s per 100 items on this machine).

Difficulty knobs: how many numbers, their range, the target range.
"""

from __future__ import annotations

import ast
import random
import re
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

from reasonloop.tasks.base import ProceduralTask, Split, check_common_config
from reasonloop.types import Problem
from reasonloop.verify.extract import extract_answer, strip_reasoning

_STEP = re.compile(r"^\s*(\d+)\s*([+\-*/×÷x])\s*(\d+)\s*=\s*(-?\d+)\s*\.?\s*$")
_SYMBOLS = {"×": "*", "x": "*", "÷": "/"}


def apply(op: str, a: int, b: int) -> int | None:
    """`a op b` under countdown rules (positive integer results), else None."""
    if op == "+":
        return a + b
    if op == "-":
        return a - b if a > b else None
    if op == "*":
        return a * b
    if op == "/":
        return a // b if b and a % b == 0 else None
    return None


@lru_cache(maxsize=200_000)
def reachable(pool: tuple[int, ...], target: int) -> bool:
    """Can `target` be made from `pool` (sorted), each number used at most once?"""
    if target in pool:
        return True
    n = len(pool)
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            a, b = pool[i], pool[j]
            rest = [pool[k] for k in range(n) if k != i and k != j]
            for op in "+-*/":
                if op in "+*" and i > j:
                    continue  # commutative: each unordered pair once
                c = apply(op, a, b)
                if c is not None and reachable(tuple(sorted(rest + [c])), target):
                    return True
    return False


def evaluate_expression(text: str, numbers: list[int]) -> Fraction | None:
    """Exact value of an arithmetic expression over `numbers` (each at most once), else None."""
    text = text.replace("×", "*").replace("÷", "/").replace("\u2212", "-")
    text = text.split("=")[0].strip()
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        return None
    used: list[int] = []

    def value(node) -> Fraction:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            used.append(node.value)
            return Fraction(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in (ast.Add, ast.Sub, ast.Mult, ast.Div):
            left, right = value(node.left), value(node.right)
            if isinstance(node.op, ast.Div):
                if right == 0 or (left / right).denominator != 1:
                    raise ValueError("inexact division")
                return left / right
            return {ast.Add: left + right, ast.Sub: left - right, ast.Mult: left * right}[type(node.op)]
        raise ValueError(f"not allowed in countdown: {ast.dump(node)[:40]}")

    try:
        result = value(tree.body)
    except (ValueError, RecursionError):
        return None
    if Counter(used) - Counter(numbers):  # a number used more often than given
        return None
    return result


@dataclass
class CountdownConfig:
    size: int = 1000
    seed: int = 0
    split: Split = "train"
    num_numbers: int = 4
    """how many numbers are given (2-6); the reference uses all of them"""
    min_number: int = 1
    max_number: int = 25
    min_target: int = 10
    max_target: int = 200

    def __post_init__(self):
        check_common_config(self)
        if not 2 <= self.num_numbers <= 6:
            raise ValueError(f"num_numbers must be 2-6, got {self.num_numbers}")
        if not 1 <= self.min_number <= self.max_number <= 1000:
            raise ValueError(f"need 1 <= min_number <= max_number <= 1000, got {self.min_number}..{self.max_number}")
        if not 1 <= self.min_target <= self.max_target:
            raise ValueError(f"need 1 <= min_target <= max_target, got {self.min_target}..{self.max_target}")


class CountdownTask(ProceduralTask):
    """Make a target from given numbers; any valid solution counts, steps checked locally."""

    name = "countdown"
    description = "reach a target from 2-6 numbers with + - * /; steps checked for validity and reachability"

    config_class = CountdownConfig
    config: CountdownConfig

    def _draw(self, rng: random.Random) -> Problem:
        c = self.config
        for _ in range(1000):
            numbers = [rng.randint(c.min_number, c.max_number) for _ in range(c.num_numbers)]
            pool = [(n, str(n)) for n in numbers]
            steps = []
            while len(pool) > 1:
                i, j = rng.sample(range(len(pool)), 2)
                (a, ea), (b, eb) = pool[i], pool[j]
                op = rng.choice("+-*/")
                result = apply(op, a, b)
                if result is None or (op in "*/" and b == 1):  # "* 1" is a wasted step
                    continue
                pool = [p for k, p in enumerate(pool) if k not in (i, j)]
                pool.append((result, f"({ea} {op} {eb})"))
                steps.append(f"{a} {op} {b} = {result}")
            target, expression = pool[0]
            if c.min_target <= target <= c.max_target and target not in numbers:
                break
        else:
            raise RuntimeError(f"countdown config admits no target in {c.min_target}..{c.max_target}")
        expression = expression[1:-1] if expression.startswith("(") else expression
        listed = ", ".join(map(str, numbers))
        return Problem(
            id="",
            prompt=(
                f"Use the numbers {listed} (each at most once) and + - * / to make {target}. "
                "Every intermediate result must be a positive whole number. Write one operation per "
                f"line as `a op b = c`, then a final line `Answer: <expression>`.\n"
            ),
            answer=expression,
            steps=steps,
            meta={"numbers": numbers, "target": target,
                  "solution": "\n".join(steps + [f"Answer: {expression}"]), "difficulty": c.num_numbers},
        )

    # --- verification ---
    def verify(self, problem: Problem, completion: str) -> float:
        """1.0 iff the final answer is an expression that makes the target.

        >>> t = CountdownTask(); p = t[0]
        >>> t.verify(p, p.meta["solution"]), t.verify(p, f"Answer: {p.meta['target']}")
        (1.0, 0.0)
        """
        extraction = extract_answer(completion)
        if extraction.answer is None or extraction.hedged:
            return 0.0
        value = evaluate_expression(extraction.answer, problem.meta["numbers"])
        return float(value is not None and value == problem.meta["target"])

    def available_after(self, problem: Problem, previous_steps: list[str]) -> list[int] | None:
        """The numbers left after `previous_steps`, or None if one of them is not a valid step."""
        pool = list(problem.meta["numbers"])
        for step in previous_steps:
            parsed = _parse_step(step)
            if parsed is None:
                return None
            a, op, b, c = parsed
            if apply(op, a, b) != c or a not in pool:
                return None
            pool.remove(a)
            if b not in pool:
                return None
            pool.remove(b)
            pool.append(c)
        return pool

    def check_step(self, problem: Problem, previous_steps: list[str], step: str) -> bool:
        if step.strip().lower().startswith("answer"):
            return self.verify(problem, step) == 1.0
        pool = self.available_after(problem, previous_steps)
        parsed = _parse_step(step)
        if pool is None or parsed is None:
            return False
        a, op, b, c = parsed
        if apply(op, a, b) != c:
            return False
        if a not in pool:
            return False
        pool.remove(a)
        if b not in pool:
            return False
        pool.remove(b)
        return reachable(tuple(sorted(pool + [c])), problem.meta["target"])

    def corrupt(self, problem: Problem, rng: random.Random) -> tuple[list[str], int]:
        """A solution whose first wrong step is an arithmetic slip or a valid-looking dead end."""
        steps = list(problem.steps)
        bad = rng.randrange(len(steps))
        pool = self.available_after(problem, steps[:bad])
        target = problem.meta["target"]
        if rng.random() < 0.5:  # a correct calculation that makes the target unreachable
            moves = [(i, op, j) for i in range(len(pool)) for j in range(len(pool)) for op in "+-*/" if i != j]
            rng.shuffle(moves)
            for i, op, j in moves:
                a, b, c = pool[i], pool[j], apply(op, pool[i], pool[j])
                rest = [n for k, n in enumerate(pool) if k not in (i, j)]
                if c is not None and not reachable(tuple(sorted(rest + [c])), target):
                    return steps[:bad] + [f"{a} {op} {b} = {c}", f"Answer: {c}"], bad
        a, op, b, c = _parse_step(steps[bad])
        wrong = c + rng.choice([-2, -1, 1, 2, 10])
        wrong = wrong if wrong > 0 and wrong != c else c + 1
        # the slip propagates: later steps that consume c use the wrong value
        out = steps[:bad] + [f"{a} {op} {b} = {wrong}"]
        for later in steps[bad + 1:]:
            la, lop, lb, _ = _parse_step(later)
            la, lb = (wrong if la == c else la), (wrong if lb == c and la != wrong else lb)
            out.append(f"{la} {lop} {lb} = {_loose(lop, la, lb)}")
        return out + [f"Answer: {target}"], bad


def _loose(op: str, a: int, b: int) -> int:
    return {"+": a + b, "-": a - b, "*": a * b, "/": a // b if b else 0}[op]


def _parse_step(step: str) -> tuple[int, str, int, int] | None:
    m = _STEP.match(strip_reasoning(step))
    if not m:
        return None
    return int(m.group(1)), _SYMBOLS.get(m.group(2), m.group(2)), int(m.group(3)), int(m.group(4))
