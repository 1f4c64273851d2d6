"""Shaping rewards, composition and the registry."""

import pytest

from reasonloop.tasks import make_task
from reasonloop.types import Problem
from reasonloop.verify import REWARDS, get_reward, score_all
from reasonloop.verify.rewards import correctness_reward, length_penalty, overlong_penalty, weighted_sum

TRICKY = ["", "   ", r"\boxed{}", r"\boxed{3} or \boxed{4}", "<think>\\boxed{4}</think>", "<think>unterminated",
          r"\boxed{\frac{1}{2}}", "Answer: 4", "#### 4", "<answer>4</answer>", "\x00", "{" * 50, "```python\nx\n```"]


def test_every_registered_reward_returns_a_float_or_none_on_tricky_completions():
    problem = Problem("p", "2+2?", answer="4", meta={"tests": ["assert True"]})
    names = [n for n in REWARDS if n != "code_tests"]  # code_tests is covered in test_code.py
    scores = score_all({n: REWARDS[n] for n in names}, [problem] * len(TRICKY), TRICKY, workers=2, timeout=3)
    for name in names:
        assert all(v is None or isinstance(v, float) for v in scores[name])
    assert not any(scores.errors)


def test_unknown_reward_lists_names():
    with pytest.raises(KeyError, match="math"):
        get_reward("nope")


def test_overlong_penalty_matches_dapo():
    penalty = overlong_penalty(max_length=1000, cache_length=200)
    assert penalty(None, "x" * 800) == 0.0
    assert penalty(None, "x" * 900) == pytest.approx(-0.5)
    assert penalty(None, "x" * 1000) == pytest.approx(-1.0)
    assert penalty(None, "x" * 5000) == -1.0
    with pytest.raises(ValueError):
        overlong_penalty(10, 20)


def test_weighted_sum_skips_not_applicable():
    never = lambda p, c: None
    assert weighted_sum([(never, 1.0)])(None, "x") is None
    total = weighted_sum({never: 5.0, length_penalty(1): 2.0})
    assert total(None, "xx") == -2.0


def test_correctness_reward_from_tasks():
    for name in ("countdown", "linear_equation", "long_multiplication", "ordering"):
        task = make_task(name, size=3)
        reward = correctness_reward(task)
        problems = [task[i] for i in range(3)]
        scores = score_all(reward, problems, [p.reference_solution for p in problems], workers=2)
        assert scores.total == [1.0, 1.0, 1.0]


def test_score_all_checks_lengths():
    with pytest.raises(ValueError):
        score_all(REWARDS["math"], [Problem("p", "?")], [])


def test_score_all_keeps_per_test_records_and_samples_store_them(tmp_path):
    from reasonloop.store.jsonl import read_jsonl, write_jsonl
    from reasonloop.types import Sample
    from reasonloop.verify.code import code_reward

    problem = Problem("c", "double", meta={"tests": ["assert f(1) == 2", "assert f(0) == 0"]})
    good, bad = "```python\ndef f(x):\n    return 2 * x\n```", "```python\ndef f(x):\n    return x + 1\n```"
    scores = score_all({"code": code_reward}, [problem, problem, problem], [good, bad, "no code"])
    assert scores["code"] == [1.0, 0.0, 0.0]
    assert [r["passed"] for r in scores.tests[0]] == [True, True]
    assert [r["passed"] for r in scores.tests[1]] == [True, False]
    assert scores.tests[2] == []
    sample = Sample("c", "double", bad, tests=scores.tests[1])
    write_jsonl(tmp_path / "s.jsonl", [sample, Sample("c", "double", good)])
    back = read_jsonl(tmp_path / "s.jsonl")
    assert back[0].tests == scores.tests[1] and back[1].tests is None
