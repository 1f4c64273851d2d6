"""Greedy decoding: the one-sample baseline every test-time method is compared against."""

from __future__ import annotations

from dataclasses import dataclass

from reasonloop.rollout.sampler import SamplingParams
from reasonloop.search.budget import generate_charged
from reasonloop.search.common import Selection, new_budgets, select


@dataclass
class GreedyConfig:
    max_new_tokens: int = 128

    def __post_init__(self):
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")


def greedy(problems, sampler, scorer, cfg: GreedyConfig) -> list[Selection]:
    """Temperature-0 decoding, one completion per problem (`scorer` is ignored)."""
    budgets = new_budgets(problems, None)
    groups = generate_charged(sampler, problems, budgets, 1, SamplingParams(temperature=0.0,
                                                                             max_new_tokens=cfg.max_new_tokens))
    return [select(p, g[0].text, [g[0].text], [], b) for p, g, b in zip(problems, groups, budgets)]
