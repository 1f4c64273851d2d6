"""Stepwise rows, the PRM's training data: augmentation, value targets, imports and reading.

A row follows TRL's stepwise format (`prompt`, `completions`, `labels`) plus our fields
(`soft_labels`, `values`, `outcome`, `true_first_error`, `rollouts`, `tokens`, ...). The
labelers that write rows from rollouts are in `step_labels.py`; the papers behind each function
below, and where we deviate from them, are listed in that module's docstring.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from reasonloop.config import ConfigError
from reasonloop.store.jsonl import RecordError, iter_jsonl
from reasonloop.types import Problem

# ---------------------------------------------------------------------------------------
# Augmentation (HNC, HRM pairs) and value targets (ReST-MCTS*): pure functions of rows


def merge_steps(row: dict[str, Any], i: int, separator: str = "\n") -> dict[str, Any]:
    """Row with steps i and i+1 merged into one node that takes step i+1's labels (its end-of-node value)."""
    steps = row["completions"]
    if not 0 <= i < len(steps) - 1:
        raise ValueError(f"cannot merge steps {i} and {i + 1} of a {len(steps)}-step solution")
    merged = dict(row)
    merged["completions"] = steps[:i] + [steps[i] + separator + steps[i + 1]] + steps[i + 2:]
    for key in ("labels", "soft_labels", "values"):
        if key in row and row[key] is not None:
            merged[key] = row[key][:i] + row[key][i + 1:]
    if row.get("true_first_error") is not None:  # the merged node is wrong iff it contains the first error
        merged["true_first_error"] = row["true_first_error"] - (row["true_first_error"] > i)
    return merged


def hnc_augment(rows: list[dict[str, Any]], rate: float, rng: random.Random, separator: str = "\n") -> list[dict]:
    """Hierarchical Node Compression: for each row (>= 2 steps), with probability `rate`, one copy
    with a random consecutive pair merged. Returns only the new rows."""
    out = []
    for row in rows:
        if len(row["completions"]) >= 2 and rng.random() < rate:
            merged = merge_steps(row, rng.randrange(len(row["completions"]) - 1), separator)
            out.append({**merged, "augment": "hnc", "rollouts": 0, "tokens": 0})  # derived: no new rollouts
    return out


def hrm_pair_rows(row: dict[str, Any], separator: str = "\n") -> list[dict[str, Any]]:
    """HRM coarse-grained items: for each pair (i, i+1), the solution up to the merged pair,
    labelled at every node, the pair node taking step i+1's label."""
    out = []
    for i in range(len(row["completions"]) - 1):
        merged = merge_steps(row, i, separator)
        cut = i + 1  # nodes up to and including the merged pair
        item = {**merged, "completions": merged["completions"][:cut], "augment": "hrm_pair", "rollouts": 0, "tokens": 0}
        for key in ("labels", "soft_labels", "values"):
            if key in merged and merged[key] is not None:
                item[key] = merged[key][:cut]
        tfe = merged.get("true_first_error")
        item["true_first_error"] = tfe if tfe is not None and tfe < cut else None
        out.append(item)
    return out


def rest_mcts_values(good: list[bool], distances: list[int]) -> list[float]:
    """ReST-MCTS* inferred values: v_0 = 0, v_k = max(v_{k-1} + (1 - v_{k-1}) / (m_k + 1) * (1 - 2 r_k), 0),
    with r_k = 0 for a good step and 1 for a bad one, m_k the reasoning distance left after step k.

    >>> [round(v, 4) for v in rest_mcts_values([True, True, False], [2, 1, 0])]
    [0.3333, 0.6667, 0.3333]
    """
    values, v = [], 0.0
    for g, m in zip(good, distances, strict=True):
        v = max(v + (1 - v) / (m + 1) * (1 if g else -1), 0.0)
        values.append(v)
    return values


def reasoning_distances(num_steps: int, reference_steps: int | None) -> list[int]:
    """m_k = reference steps left after step k (our stand-in for the tree's distance to a correct leaf)."""
    total = reference_steps or num_steps
    return [max(total - 1 - k, 0) for k in range(num_steps)]


# ---------------------------------------------------------------------------------------
# PRM800K import


def prm800k_rows(path: str | Path, neutral_is_bad: bool = False) -> list[dict[str, Any]]:
    """PRM800K JSONL (openai/prm800k, `label.steps[].completions[].rating`) -> stepwise rows.

    Read by the `prm800k` dataset task (`reasonloop.tasks.formats.PRM800KTask`: the chosen
    completion of each step, the human one when the labeler wrote one, and labelling stops at
    the first bad step, as PRM800K's phase 2 does); rows as `human_label_rows`.
    """
    from reasonloop.tasks import make_task

    task = make_task("prm800k", source=str(path), split="train")
    return human_label_rows(list(task), neutral_is_bad)


def human_label_rows(problems: Iterable[Problem], neutral_is_bad: bool = False) -> list[dict[str, Any]]:
    """Stepwise rows from a dataset's human step labels (`meta["step_labels"]`: prm800k, processbench).

    Steps rated -1 are bad; a neutral 0 (PRM800K) is good unless `neutral_is_bad`; every step
    after the first bad one is bad. The prompt is the bare problem, as the labellers saw it.
    """
    rows = []
    for p in problems:
        if "step_labels" not in p.meta or not p.steps:
            raise ConfigError(f"problem {p.id!r} has no human step labels; method=dataset needs a task such as "
                             f"prm800k or processbench")
        good = list(p.meta["step_labels"])
        if neutral_is_bad and "step_ratings" in p.meta:
            good = [g and r != 0 for g, r in zip(good, p.meta["step_ratings"])]
        error = next((i for i, g in enumerate(good) if not g), None)
        labels = [error is None or i < error for i in range(len(p.steps))]
        if "final_answer_correct" in p.meta:
            outcome = bool(p.meta["final_answer_correct"])
        else:
            outcome = error is None and p.meta.get("finish_reason") == "solution"
        rows.append({"prompt": p.meta.get("question", p.prompt), "completions": list(p.steps), "labels": labels,
                     "soft_labels": [float(g) for g in labels], "outcome": outcome, "problem_id": p.id,
                     "method": "human", "rollouts": 0, "tokens": 0, "true_first_error": error})
    return rows


def read_step_rows(path: str | Path) -> list[dict[str, Any]]:
    """Stepwise rows (ours or TRL's) with their fields checked; errors name `path:line`."""
    rows = []
    for lineno, row in iter_jsonl(path):
        where = f"{path}:{lineno}"
        for key in ("prompt", "completions", "labels"):
            if key not in row:
                raise RecordError(f"{where}: missing field {key!r} (a stepwise row has prompt, completions, labels)")
        if not isinstance(row["completions"], list) or not row["completions"]:
            raise RecordError(f"{where}: field 'completions': expected a non-empty list of step strings")
        for key in ("labels", "soft_labels", "values"):
            if row.get(key) is not None and len(row[key]) != len(row["completions"]):
                raise RecordError(f"{where}: field {key!r} has {len(row[key])} entries for "
                                  f"{len(row['completions'])} steps")
        row["labels"] = [bool(x) for x in row["labels"]]
        rows.append(row)
    return rows
