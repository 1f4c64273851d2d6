"""Evaluation metrics: accuracy with a confidence interval, unbiased pass@k, majority vote.

Pure Python (no torch), so evaluation workers and tests stay light.
"""

from __future__ import annotations

import math
from collections import Counter

from reasonloop.verify.extract import extract_final_answer, parse_int


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al. 2021): 1 - C(n-c, k) / C(n, k) for n samples, c correct.

    >>> pass_at_k(4, 1, 1), pass_at_k(4, 1, 4), round(pass_at_k(4, 2, 2), 4)
    (0.25, 1.0, 0.8333)
    """
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod((n - c - i) / (n - i) for i in range(k))


def canonical_answer(completion: str) -> str | None:
    """The extracted final answer in a canonical form for voting (integers normalised)."""
    answer = extract_final_answer(completion)
    if answer is None:
        return None
    as_int = parse_int(answer)
    return str(as_int) if as_int is not None else " ".join(answer.split()).rstrip(".")


def majority_vote(answers: list[str | None]) -> str | None:
    """Most frequent non-empty answer; ties go to the answer seen first (deterministic)."""
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return None
    best = max(counts.values())
    return next(a for a in answers if a is not None and counts[a] == best)


def mean_ci95(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its normal-approximation 95% confidence interval."""
    if not values:
        return 0.0, 0.0
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, 1.96 * math.sqrt(var / len(values))
