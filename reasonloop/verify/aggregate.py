"""Step-score aggregation: one number per solution from a PRM's per-step scores.

    aggregate([0.9, 0.4, 0.8], "min")   # 0.4

The four rules used by the literature (search-and-learn `sal/utils/score.py::aggregate_scores`
has last / min / prod; OpenR has min / last; Math-Shepherd ranks by min; `mean` is the
Lightman et al. 2023 ablation). An outcome scorer (verifier, ORM) returns one score per
solution, for which every rule gives that score.

The one aggregation for search strategies, reward models (`models.reward_model`), GRPO's process
rewards and B-STaR's reward-model threshold. Pure Python.
"""

from __future__ import annotations

import math
from typing import Literal

Aggregation = Literal["last", "min", "prod", "mean"]
AGGREGATIONS: tuple[str, ...] = ("last", "min", "prod", "mean")


def aggregate(scores: list[float], how: Aggregation) -> float:
    """Aggregate per-step scores; an empty list (no step yet) scores 0.

    >>> aggregate([0.5, 0.5, 1.0], "prod"), aggregate([0.2, 0.6], "mean"), aggregate([0.9, 0.3], "last")
    (0.25, 0.4, 0.3)
    """
    if not scores:
        return 0.0
    if how == "last":
        return scores[-1]
    if how == "min":
        return min(scores)
    if how == "prod":
        return math.prod(scores)
    if how == "mean":
        return sum(scores) / len(scores)
    raise ValueError(f"unknown aggregation {how!r}; choose one of {AGGREGATIONS}")


def check_aggregation(how: str) -> None:
    """For config validation: a clear error naming the valid rules."""
    if how not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {how!r}")
