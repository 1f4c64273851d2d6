"""Evaluation metrics: accuracy with a confidence interval, unbiased pass@k, majority vote.

Pure Python (no torch), so evaluation workers and tests stay light.
"""

from __future__ import annotations

import math

from reasonloop.search.voting import majority_vote


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


def mean_ci95(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its normal-approximation 95% confidence interval."""
    if not values:
        return 0.0, 0.0
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, 1.96 * math.sqrt(var / len(values))


def wilson_ci95(successes: int, n: int) -> tuple[float, float]:
    """Wilson score 95% interval (low, high) of a proportion; sane at 0/n and n/n, unlike
    the normal approximation (whose half-width is 0 there).

    >>> tuple(round(x, 4) for x in wilson_ci95(0, 10))
    (0.0, 0.2775)
    """
    if n == 0:
        return 0.0, 1.0
    z = 1.959963984540054
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def powers_of_two_upto(n: int) -> list[int]:
    """[1, 2, 4, ..., <= n] plus n itself: the k of pass@k / maj@k curves."""
    ks, k = [], 1
    while k <= n:
        ks.append(k)
        k *= 2
    return ks + ([n] if ks and ks[-1] != n else [])


def summarize(records) -> dict:
    """Metrics of one strategy's `EvalRecord`s (one per problem).

    accuracy (+ normal-approximation ci95 half-width and Wilson interval), mean tokens /
    model calls / scorer calls per problem (+ ci95 of tokens); when every record's
    candidates are i.i.d. samples (`meta["iid_candidates"]`), unbiased pass@k over all
    candidates and maj@k over the first k, for k = 1, 2, 4, ... <= the fewest candidates.
    """
    if not records:
        raise ValueError("summarize: no records")
    n = len(records)
    correct = [float(r.correct) for r in records]
    acc, ci = mean_ci95(correct)
    low, high = wilson_ci95(int(sum(correct)), n)
    tokens, tokens_ci = mean_ci95([float(r.tokens) for r in records])
    out = {"num_problems": n, "accuracy": acc, "accuracy_ci95": ci, "accuracy_wilson95": [low, high],
           "tokens_per_problem": tokens, "tokens_ci95": tokens_ci,
           "model_calls_per_problem": sum(r.model_calls for r in records) / n,
           "scorer_calls_per_problem": sum(r.scorer_calls for r in records) / n}
    if all(r.meta.get("iid_candidates") for r in records):
        fewest = min(len(r.sample_correct) for r in records)
        for k in powers_of_two_upto(fewest):
            pk, pk_ci = mean_ci95([pass_at_k(len(r.sample_correct), sum(r.sample_correct), k) for r in records])
            mk, mk_ci = mean_ci95([float(_majority_correct(r, k)) for r in records])
            out.update({f"pass@{k}": pk, f"pass@{k}_ci95": pk_ci, f"maj@{k}": mk, f"maj@{k}_ci95": mk_ci})
    return out


def _majority_correct(record, k: int) -> bool:
    answers, oks = record.predictions[:k], record.sample_correct[:k]
    chosen = majority_vote(answers)
    return chosen is not None and any(a == chosen and ok for a, ok in zip(answers, oks))
