"""Voting over sampled answers: the canonical form answers are compared in, and the majority.

Used by the majority and best-of-N strategies and by evaluation's maj@k, which sits above
this layer. Pure Python (no torch).
"""

from __future__ import annotations

from collections import Counter

from reasonloop.verify.extract import extract_final_answer, parse_int


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
