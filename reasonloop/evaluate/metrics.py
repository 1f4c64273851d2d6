"""Evaluation metrics: accuracy with a confidence interval, unbiased pass@k, majority vote, and the
field's per-problem estimators with standard errors and paired tests.

Per problem, from n i.i.d. samples of which c are correct:
- avg@n = c / n (the mean accuracy of one sample; what R1-style papers report as "pass@1" with k samples);
- pass@k = 1 - C(n-c, k) / C(n, k) (Chen et al. 2021, unbiased; some of k samples is right);
- pass^k = C(c, k) / C(n, k) (tau-bench, Yao et al. 2024, unbiased; all of k samples are right);
- maj@k = the probability that the plurality answer of k of the n samples is right, averaged over
  the k-subsets (exactly when there are at most `MAJ_SUBSETS` of them, else over that many seeded
  random ones), ties to the earliest sample.
A benchmark's value is the mean over problems; its standard error is the standard deviation of the
per-problem values over sqrt(#problems) (the CLT error of Miller 2024, "Adding Error Bars to
Evals", which counts the k samples of a problem as one observation), or a bootstrap over problems.
Two runs on the same problems are compared by a paired bootstrap over problems (and an exact
McNemar / sign test when the per-problem scores are 0/1).

Pure Python (no torch), so evaluation workers and tests stay light.
"""

from __future__ import annotations

import itertools
import math
import random

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
    candidates and maj@k averaged over k-subsets (`maj_at_k`), for k = 1, 2, 4, ... <= the fewest candidates.
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
            mk, mk_ci = mean_ci95([maj_at_k(r.predictions, r.sample_correct, k) for r in records])
            out.update({f"pass@{k}": pk, f"pass@{k}_ci95": pk_ci, f"maj@{k}": mk, f"maj@{k}_ci95": mk_ci})
    return out


MAJ_SUBSETS = 2000
"""maj@k averages over every k-subset when there are at most this many, else over this many random ones"""


def pass_hat_k(n: int, c: int, k: int) -> float:
    """Unbiased pass^k: the probability that k samples drawn without replacement are all correct.

    >>> pass_hat_k(4, 2, 1), round(pass_hat_k(4, 2, 2), 4), pass_hat_k(4, 4, 4), pass_hat_k(4, 3, 4)
    (0.5, 0.1667, 1.0, 0.0)
    """
    if k > n:
        raise ValueError(f"pass^{k} needs at least {k} samples, got {n}")
    return math.comb(c, k) / math.comb(n, k)


def maj_at_k(answers: list[str | None], correct: list[bool], k: int, seed: int = 0) -> float:
    """Expected maj@k: over k-subsets of the samples, the share whose plurality answer is a correct one.

    >>> maj_at_k(["1", "2", "2"], [True, False, False], 1), maj_at_k(["1", "2", "2"], [True, False, False], 3)
    (0.3333333333333333, 0.0)
    >>> maj_at_k(["1", "2", "2"], [True, False, False], 2)  # {1,2}: tie -> 1 (first), {1,2'}: 1, {2,2'}: 2
    0.6666666666666666
    """
    n = len(answers)
    if k > n:
        raise ValueError(f"maj@{k} needs at least {k} samples, got {n}")
    right = {a for a, ok in zip(answers, correct) if ok and a is not None}
    if math.comb(n, k) <= MAJ_SUBSETS:
        subsets = itertools.combinations(range(n), k)
        total = math.comb(n, k)
    else:
        rng = random.Random(seed)
        subsets = (sorted(rng.sample(range(n), k)) for _ in range(MAJ_SUBSETS))
        total = MAJ_SUBSETS
    wins = sum(majority_vote([answers[i] for i in subset]) in right for subset in subsets)
    return wins / total


def standard_error(values: list[float]) -> float:
    """Standard error of the mean: sample standard deviation / sqrt(n) (0 for fewer than 2 values).

    >>> round(standard_error([0.0, 1.0, 1.0, 0.0]), 4)  # sd 0.5774 / 2
    0.2887
    """
    n = len(values)
    if n < 2:
        return 0.0
    mean = sum(values) / n
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n)


def bootstrap_se(values: list[float], reps: int = 2000, seed: int = 0) -> float:
    """Standard error of the mean by resampling the values with replacement (`reps` times, seeded)."""
    if len(values) < 2:
        return 0.0
    rng, n = random.Random(seed), len(values)
    means = [sum(rng.choices(values, k=n)) / n for _ in range(reps)]
    centre = sum(means) / reps
    return math.sqrt(sum((m - centre) ** 2 for m in means) / (reps - 1))


def paired_bootstrap(a: list[float], b: list[float], reps: int = 10000, seed: int = 0) -> dict:
    """B minus A on the same problems: mean difference, its 95% percentile interval and a two-sided p-value
    from resampling problems (pairs kept together). p = 2 x the smaller share of resampled differences
    on either side of 0 (capped at 1), the usual bootstrap test of "no difference"."""
    if len(a) != len(b) or not a:
        raise ValueError(f"paired_bootstrap needs two equally long, non-empty lists, got {len(a)} and {len(b)}")
    diffs = [y - x for x, y in zip(a, b)]
    n, rng = len(diffs), random.Random(seed)
    means = sorted(sum(rng.choices(diffs, k=n)) / n for _ in range(reps))
    low, high = means[int(0.025 * reps)], means[min(reps - 1, int(0.975 * reps))]
    below = sum(m <= 0 for m in means) / reps
    above = sum(m >= 0 for m in means) / reps
    return {"mean_diff": sum(diffs) / n, "ci95": [low, high], "p_value": min(1.0, 2 * min(below, above)),
            "se": standard_error(diffs), "num_problems": n}


def mcnemar_exact(a: list[bool], b: list[bool]) -> dict:
    """Exact McNemar (two-sided sign test on the discordant pairs) for 0/1 scores on the same problems.

    >>> mcnemar_exact([False] * 6 + [True] * 4, [True] * 6 + [True] * 4)  # 6 discordant, all for B
    {'b_only': 6, 'a_only': 0, 'p_value': 0.03125}
    """
    b_only = sum(y and not x for x, y in zip(a, b))
    a_only = sum(x and not y for x, y in zip(a, b))
    m = a_only + b_only
    tail = sum(math.comb(m, i) for i in range(min(a_only, b_only) + 1)) / 2 ** m if m else 1.0
    return {"b_only": b_only, "a_only": a_only, "p_value": min(1.0, 2 * tail)}
