"""Category parsing, the SEC bandit's TD(0) update and Boltzmann policy, seeded choice."""

import math
import random

import pytest

from reasonloop.algorithms.curriculum import (
    CurriculumConfig,
    SelfEvolvingCurriculum,
    choose_categories,
    parse_category,
)


def test_parse_category():
    spec = parse_category("arithmetic|max_ops=2, min_ops=2")
    assert (spec.name, spec.options) == ("arithmetic", {"max_ops": 2, "min_ops": 2})
    assert parse_category("reasoning_gym:chain_sum").name == "reasoning_gym:chain_sum"
    with pytest.raises(ValueError, match="key=value"):
        parse_category("arithmetic|max_ops")
    with pytest.raises(ValueError, match="strategy"):
        CurriculumConfig(strategy="greedy")
    with pytest.raises(ValueError, match="key=value"):
        CurriculumConfig(categories=["arithmetic|oops"])


def test_sec_td0_update_and_boltzmann_policy():
    bandit = SelfEvolvingCurriculum(3, alpha=0.5, temperature=1.0)
    assert bandit.probabilities() == pytest.approx([1 / 3] * 3)
    bandit.update({0: 0.8, 2: 0.2})  # arm 1 not drawn: its Q stays 0
    assert bandit.q == pytest.approx([0.4, 0.0, 0.1])
    bandit.update({0: 0.0})
    assert bandit.q == pytest.approx([0.2, 0.0, 0.1])
    z = math.exp(0.2) + 1 + math.exp(0.1)
    assert bandit.probabilities() == pytest.approx([math.exp(0.2) / z, 1 / z, math.exp(0.1) / z])


def test_sec_concentrates_on_learning_progress_and_is_seeded():
    bandit = SelfEvolvingCurriculum(2, alpha=0.5, temperature=0.2)
    for _ in range(5):
        bandit.update({0: 0.05, 1: 0.9})  # arm 1 has much larger |advantage|
    picks = choose_categories(200, 2, "sec", bandit, random.Random(0))
    assert picks.count(1) > 180
    assert picks == choose_categories(200, 2, "sec", bandit, random.Random(0))
    assert choose_categories(5, 1, "sec", bandit, random.Random(0)) == [0] * 5
    uniform = choose_categories(400, 2, "uniform", None, random.Random(1))
    assert 150 < uniform.count(0) < 250
