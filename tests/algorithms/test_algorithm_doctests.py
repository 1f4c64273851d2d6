"""Docstring examples of the algorithm modules run (hand-computed numbers live there too)."""

import doctest
import importlib

import pytest

MODULES = ["reasonloop.algorithms.grpo", "reasonloop.algorithms.grpo_rewards", "reasonloop.algorithms.prm",
           "reasonloop.algorithms.selftrain", "reasonloop.algorithms.rl_maths", "reasonloop.algorithms.health", "reasonloop.algorithms.common",
           "reasonloop.algorithms.step_labels", "reasonloop.algorithms.curriculum", "reasonloop.models.reward_model",
           "reasonloop.evaluate.metrics", "reasonloop.evaluate.process"]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.failed == 0
