"""Hang-proof under load: many verifier calls with pathological inputs all finish, bounded memory."""

import random

import pytest

from reasonloop.types import Problem
from reasonloop.verify import score_all
from reasonloop.verify.math import get_pool, math_reward

PATHOLOGICAL = [
    r"\boxed{10^{10^{10^{10}}}}", r"\boxed{2^{123456789}}", r"\boxed{9^{9^{9}}}", r"\boxed{(10^{100})!}",
    r"\boxed{10**10**10}", r"\boxed{" + "(" * 3000 + "1" + ")" * 3000 + "}", r"\boxed{" + "{" * 3000 + "7" + "}" * 3000 + "}",
    r"\boxed{" + r"\sqrt{" * 400 + "2" + "}" * 400 + "}", r"\boxed{" + "1" * 60_000 + "}", "Answer: " + "a. " * 30_000,
    "The answer is " + "9" * 100_000, r"\boxed{" + "x+" * 20_000 + "1}", "#### " + "1," * 40_000 + "1",
    r"\boxed{" + r"\frac{1}{" * 300 + "2" + "}" * 300 + "}", r"\boxed{1e999999999}", r"\boxed{2^{-99999}}",
    "<think>" * 5000 + r"\boxed{5}", r"\boxed{" + "0." + "3" * 50_000 + "}", r"\boxed{250!}", r"\boxed{5000!}",
]


def _batch(n: int, seed: int) -> tuple[list[Problem], list[str], list[float]]:
    """n calls: 5% pathological (expected 0), the rest ordinary right or wrong answers."""
    rng = random.Random(seed)
    problems, completions, expected = [], [], []
    for i in range(n):
        gold = rng.randint(1, 10_000)
        problem = Problem(f"h{i}", "?", answer=str(gold))
        if i % 20 == 7:
            completion, want = PATHOLOGICAL[(i // 20) % len(PATHOLOGICAL)], 0.0
        elif rng.random() < 0.5:
            completion, want = rng.choice([f"#### {gold}", rf"\boxed{{{gold}}}", f"The answer is {gold:,}."]), 1.0
        else:
            completion, want = rng.choice([f"#### {gold + 1}", rf"\boxed{{{gold}.5}}", rf"\boxed{{x + {gold}}}"]), 0.0
        problems.append(problem)
        completions.append(completion)
        expected.append(want)
    return problems, completions, expected


def _rss_mb(pid: int | str = "self") -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _run(n: int, seed: int) -> None:
    problems, completions, expected = _batch(n, seed)
    score_all({"math": math_reward}, problems[:50], completions[:50], workers=2, timeout=3.0)  # warm
    before = _rss_mb()
    scores = score_all({"math": math_reward}, problems, completions, workers=2, timeout=3.0)
    grown = _rss_mb() - before
    assert sum(scores.timed_out) == 0, [c[:60] for c, t in zip(completions, scores.timed_out) if t]
    assert scores["math"] == expected
    assert grown < 150, f"the scoring process grew by {grown:.0f} MiB"
    for worker in get_pool()._all:
        assert _rss_mb(worker.process.pid) < 1024


def test_pathological_inputs_do_not_hang_or_grow_memory():
    _run(600, seed=1)


@pytest.mark.slow
def test_ten_thousand_calls_with_five_percent_pathological():
    _run(10_000, seed=2)
