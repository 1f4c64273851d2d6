"""Step-level evaluation against ground truth: ProcessBench-style first-error F1 and step AUC.

Procedural tasks know the exact first wrong step of any solution (`check_step`), so step
labels (Monte-Carlo, binary search, ...) and trained PRMs are scored against the truth:

- **first-error F1** (ProcessBench, Zheng et al. 2024, arXiv:2412.06559): the predicted
  first error (first step whose label is bad / whose score is below a threshold; None when
  there is none) must equal the true one. acc_error = accuracy on solutions that contain an
  error, acc_correct = accuracy on fully correct solutions, F1 = their harmonic mean
  (ProcessBench's `run_eval.py`, not a precision/recall F1);
- **step AUC**: the probability that a good step scores above a bad one (ties count half),
  over all steps of all solutions; a step is good iff it comes before the first error
  (steps after an error are bad, as in ProcessBench and PRM800K's phase 2).

Pure Python (no torch), so labels can be scored where they are written.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def step_truth(num_steps: int, first_error: int | None) -> list[bool]:
    """Ground-truth goodness of each step: good iff before the first error."""
    return [first_error is None or i < first_error for i in range(num_steps)]


def predicted_first_error(scores: Sequence[float], threshold: float = 0.5) -> int | None:
    """First step whose score is below `threshold` (None: no step is)."""
    return next((i for i, s in enumerate(scores) if s < threshold), None)


def first_error_f1(predicted: Sequence[int | None], true: Sequence[int | None]) -> dict[str, float]:
    """ProcessBench F1 = harmonic mean of accuracy on erroneous and on correct solutions.

    >>> first_error_f1([1, None, 2, None], [1, None, 0, 3])   # acc_error 1/3, acc_correct 1/1
    {'acc_error': 0.3333333333333333, 'acc_correct': 1.0, 'f1': 0.5, 'n_error': 3, 'n_correct': 1}
    """
    if len(predicted) != len(true):
        raise ValueError(f"{len(predicted)} predictions for {len(true)} solutions")
    err = [p == t for p, t in zip(predicted, true) if t is not None]
    ok = [p is None for p, t in zip(predicted, true) if t is None]
    acc_error = sum(err) / len(err) if err else math.nan
    acc_correct = sum(ok) / len(ok) if ok else math.nan
    f1 = 2 * acc_error * acc_correct / (acc_error + acc_correct) if acc_error + acc_correct > 0 else 0.0
    return {"acc_error": acc_error, "acc_correct": acc_correct, "f1": f1, "n_error": len(err), "n_correct": len(ok)}


def step_auc(scores: Sequence[float], good: Sequence[bool]) -> float:
    """ROC AUC of `scores` for separating good (True) from bad steps; ties count 1/2. NaN if a class is empty.

    Computed with average ranks (Mann-Whitney U), O(n log n).

    >>> step_auc([0.9, 0.8, 0.3, 0.8], [True, True, False, False])
    0.875
    """
    if len(scores) != len(good):
        raise ValueError(f"{len(scores)} scores for {len(good)} labels")
    n_pos, n_neg = sum(good), len(good) - sum(good)
    if n_pos == 0 or n_neg == 0:
        return math.nan
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):  # average rank over each run of tied scores
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    rank_sum = sum(r for r, g in zip(ranks, good) if g)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def evaluate_step_scores(
    scores: Sequence[Sequence[float]], true_first_errors: Sequence[int | None], threshold: float = 0.5,
) -> dict[str, float]:
    """First-error F1 (scores thresholded) and step AUC of per-step scores against the truth."""
    predicted = [predicted_first_error(s, threshold) for s in scores]
    flat_scores = [x for s in scores for x in s]
    flat_truth = [g for s, t in zip(scores, true_first_errors) for g in step_truth(len(s), t)]
    return {**first_error_f1(predicted, true_first_errors), "step_auc": step_auc(flat_scores, flat_truth)}


def best_threshold_f1(
    scores: Sequence[Sequence[float]], true_first_errors: Sequence[int | None],
    thresholds: Sequence[float] = tuple(i / 20 for i in range(1, 20)),
) -> tuple[float, dict[str, float]]:
    """The threshold (from `thresholds`) with the best first-error F1, and the F1 metrics at it.

    ProcessBench reports each PRM at its best threshold; chosen on the set it is scored on,
    that F1 is optimistic, so report it beside the fixed-threshold one, not instead of it.

    >>> best_threshold_f1([[0.9, 0.3], [0.7, 0.6]], [1, None], [0.5, 0.65])[0]
    0.5
    """
    best: tuple[float, dict[str, float]] | None = None
    for t in thresholds:
        m = first_error_f1([predicted_first_error(s, t) for s in scores], true_first_errors)
        if best is None or m["f1"] > best[1]["f1"]:
            best = (t, m)
    if best is None:
        raise ValueError("no thresholds to try")
    return best


def evaluate_labels(rows: Sequence[dict[str, Any]], soft_threshold: float | None = None,
                    include_augmented: bool = False) -> dict[str, float]:
    """Quality and cost of labelled rows (`step_labels` output) against their `true_first_error`.

    F1 uses the hard labels, or, with `soft_threshold`, the soft labels thresholded (a step is
    bad when its soft label is below it: Math-Shepherd's soft estimate turned into a label).
    AUC ranks steps by the soft labels. `rollouts_per_located_error` is the rollouts spent on
    all rows divided by the erroneous rows whose first error was found. Augmented rows (HNC,
    HRM pairs) are scored only with `include_augmented` (their truth is the merged one).
    """
    rows = [r for r in rows if "true_first_error" in r and (include_augmented or not r.get("augment"))]
    if not rows:
        raise ValueError("no rows with a true_first_error to evaluate against")
    soft = [r.get("soft_labels") or [float(g) for g in r["labels"]] for r in rows]
    if soft_threshold is None:
        predicted = [next((i for i, g in enumerate(r["labels"]) if not g), None) for r in rows]
    else:
        predicted = [predicted_first_error(s, soft_threshold) for s in soft]
    true = [r["true_first_error"] for r in rows]
    out = first_error_f1(predicted, true)
    out["step_auc"] = step_auc([x for s in soft for x in s],
                               [g for s, t in zip(soft, true) for g in step_truth(len(s), t)])
    located = sum(p == t for p, t in zip(predicted, true) if t is not None)
    rollouts = sum(r.get("rollouts", 0) for r in rows)
    out.update(rollouts=rollouts, tokens=sum(r.get("tokens", 0) for r in rows), located_errors=located,
               rollouts_per_solution=rollouts / len(rows),
               rollouts_per_located_error=rollouts / located if located else math.inf)
    return out
