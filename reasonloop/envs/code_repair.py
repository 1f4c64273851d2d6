"""Code repair with unit-test feedback over several turns.

    env = CodeRepairEnv(CodeRepairTask())
    env.reset(problem)                   # a buggy function and what it should do
    env.step("```python\\n...fixed...\\n```")
    # tests fail -> observation: the first failing test and its error, done=False
    # tests pass -> reward 1.0, done

Each turn's last ```python block is run against the problem's tests in the code sandbox
(`reasonloop.verify.code.run_tests`, one record per test); the model reads the first failing
test and its error, and tries
again, up to `max_attempts` (then reward 0, done). A turn without a code block is told so.
This is CoSC's generate-execute-verify loop with execution feedback the model reads, not an
external check followed by resampling.

`CodeRepairTask`: a bank of small functions, each with one injected bug (an off-by-one, a
wrong operator or comparison, a wrong initial value), drawn reproducibly per index; the
single-turn `verify` runs the tests once (the task is also usable without the environment).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import ClassVar

from reasonloop.envs.base import Message, Step
from reasonloop.tasks.base import ProceduralTask, Split, check_common_config
from reasonloop.types import Problem
from reasonloop.verify.code import SandboxLimits, extract_code, run_tests

# (name, what it does, correct source, tests, bugs as (original text, buggy text))
BANK: list[tuple[str, str, str, list[str], list[tuple[str, str]]]] = [
    ("total", "return the sum of the list xs",
     "def total(xs):\n    s = 0\n    for x in xs:\n        s += x\n    return s\n",
     ["assert total([1, 2, 3]) == 6", "assert total([]) == 0", "assert total([-4, 4, 5]) == 5"],
     [("s = 0", "s = 1"), ("s += x", "s -= x"), ("return s", "return x")]),
    ("largest", "return the largest element of the non-empty list xs",
     "def largest(xs):\n    best = xs[0]\n    for x in xs[1:]:\n        if x > best:\n            best = x\n    return best\n",
     ["assert largest([3, 9, 2]) == 9", "assert largest([-5, -2, -8]) == -2", "assert largest([7]) == 7"],
     [("x > best", "x < best"), ("best = xs[0]", "best = 0"), ("xs[1:]", "xs[2:]")]),
    ("count_even", "return how many numbers in xs are even",
     "def count_even(xs):\n    n = 0\n    for x in xs:\n        if x % 2 == 0:\n            n += 1\n    return n\n",
     ["assert count_even([1, 2, 4, 7, 8]) == 3", "assert count_even([]) == 0", "assert count_even([0, 3]) == 1"],
     [("x % 2 == 0", "x % 2 == 1"), ("n += 1", "n += x"), ("n = 0", "n = 1")]),
    ("factorial", "return n! for n >= 0",
     "def factorial(n):\n    r = 1\n    for k in range(2, n + 1):\n        r *= k\n    return r\n",
     ["assert factorial(0) == 1", "assert factorial(5) == 120", "assert factorial(1) == 1"],
     [("range(2, n + 1)", "range(2, n)"), ("r = 1", "r = 0"), ("r *= k", "r += k")]),
    ("reverse", "return the string s reversed",
     "def reverse(s):\n    out = ''\n    for ch in s:\n        out = ch + out\n    return out\n",
     ["assert reverse('abc') == 'cba'", "assert reverse('') == ''", "assert reverse('ab') == 'ba'"],
     [("out = ch + out", "out = out + ch"), ("return out", "return s")]),
    ("is_sorted", "return True iff the list xs is in non-decreasing order",
     ("def is_sorted(xs):\n    for i in range(len(xs) - 1):\n        if xs[i] > xs[i + 1]:\n"
      "            return False\n    return True\n"),
     ["assert is_sorted([1, 2, 2, 5])", "assert not is_sorted([3, 1])", "assert is_sorted([])",
      "assert not is_sorted([1, 3, 2])"],
     [("xs[i] > xs[i + 1]", "xs[i] >= xs[i + 1]"), ("range(len(xs) - 1)", "range(len(xs) - 2)"),
      ("return False", "return True")]),
    ("fib", "return the n-th Fibonacci number, fib(0) = 0, fib(1) = 1",
     "def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n",
     ["assert fib(0) == 0", "assert fib(1) == 1", "assert fib(10) == 55"],
     [("a, b = 0, 1", "a, b = 1, 1"), ("range(n)", "range(n - 1)"), ("return a", "return b")]),
    ("digit_sum", "return the sum of the decimal digits of n >= 0",
     "def digit_sum(n):\n    s = 0\n    while n > 0:\n        s += n % 10\n        n //= 10\n    return s\n",
     ["assert digit_sum(0) == 0", "assert digit_sum(1234) == 10", "assert digit_sum(909) == 18"],
     [("n % 10", "n % 9"), ("n //= 10", "n //= 9"), ("while n > 0", "while n > 9")]),
    ("count_char", "return how many times the character c occurs in s",
     "def count_char(s, c):\n    n = 0\n    for ch in s:\n        if ch == c:\n            n += 1\n    return n\n",
     ["assert count_char('banana', 'a') == 3", "assert count_char('', 'a') == 0", "assert count_char('xyz', 'q') == 0"],
     [("ch == c", "ch != c"), ("n += 1", "n = 1")]),
    ("mean", "return the arithmetic mean of the non-empty list xs",
     "def mean(xs):\n    return sum(xs) / len(xs)\n",
     ["assert mean([1, 2, 3]) == 2", "assert mean([5]) == 5", "assert mean([1, 2]) == 1.5"],
     [("sum(xs) / len(xs)", "sum(xs) // len(xs)"), ("len(xs)", "(len(xs) + 1)")]),
]


@dataclass
class CodeRepairConfig:
    split: Split = "train"
    size: int = 200
    seed: int = 0
    timeout: float = 5.0
    """sandbox seconds per test run"""

    def __post_init__(self):
        check_common_config(self)


class CodeRepairTask(ProceduralTask):
    """Fix a function with one injected bug so that its unit tests pass."""

    name = "code_repair"
    description = "repair a buggy Python function (unit tests in the sandbox)"

    config_class = CodeRepairConfig
    config: CodeRepairConfig

    def _draw(self, rng: random.Random) -> Problem:
        name, doc, source, tests, bugs = rng.choice(BANK)
        original, buggy_text = rng.choice(bugs)
        buggy = source.replace(original, buggy_text, 1)
        shown = rng.sample(tests, k=len(tests))  # the order the feedback reports them in
        prompt = (f"This function should {doc}, but it has a bug:\n```python\n{buggy}```\n"
                  f"Write the corrected function in a ```python block.")
        return Problem(id="", prompt=prompt, answer=None,
                       meta={"tests": shown, "function": name, "buggy": buggy,
                             "solution": f"```python\n{source}```"})

    def limits(self) -> SandboxLimits:
        return SandboxLimits(timeout=self.config.timeout, memory_bytes=512 << 20)

    def feedback(self, problem: Problem, completion: str) -> tuple[bool, str]:
        """(passed, what the model is told): the first failing test and its error."""
        program = extract_code(completion)
        if program is None:
            return False, "No ```python block found: write the whole corrected function in one."
        result = run_tests(program, problem.meta["tests"], limits=self.limits())
        if result.passed:
            return True, "All tests passed."
        failed = next((t for t in result.tests if not t.passed), None)
        if failed is None:  # the run as a whole failed (timeout, a crash before any test)
            return False, f"The tests could not run: {result.error or result.verdict}"
        return False, f"Test failed: {failed.name}\n{failed.error or 'failed'}"

    def verify(self, problem: Problem, completion: str) -> float:
        r"""1.0 iff the completion's last ```python block passes every test.

        >>> t = CodeRepairTask(); p = t[0]
        >>> t.verify(p, p.meta["solution"]), t.verify(p, "```python\n" + p.meta["buggy"] + "```")
        (1.0, 0.0)
        """
        program = extract_code(completion)
        if program is None:
            return 0.0
        return float(run_tests(program, problem.meta["tests"], limits=self.limits()).passed)


class CodeRepairEnv:
    """Attempts with test feedback until the tests pass or `max_attempts` turns are used."""

    tools: ClassVar[list[dict]] = []

    def __init__(self, task: CodeRepairTask, max_attempts: int = 3, system: str = ""):
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        self.task, self.max_attempts, self.system = task, max_attempts, system
        self.problem: Problem | None = None
        self.attempts = 0

    def reset(self, problem: Problem) -> list[Message]:
        self.problem, self.attempts = problem, 0
        opening: list[Message] = [{"role": "system", "content": self.system}] if self.system else []
        return opening + [{"role": "user", "content": problem.prompt}]

    def step(self, assistant: str) -> Step:
        if self.problem is None:
            raise RuntimeError("CodeRepairEnv.step before reset")
        self.attempts += 1
        passed, message = self.task.feedback(self.problem, assistant)
        info = {"test_runs": 1, "no_code": int(message.startswith("No ```python"))}
        if passed:
            return Step(reward=1.0, done=True, info=info)
        if self.attempts >= self.max_attempts:
            return Step(reward=0.0, done=True, info=info)
        return Step(observation=[{"role": "user", "content": message + "\nFix the function."}], info=info)
