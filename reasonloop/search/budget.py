"""Compute accounting per problem, and the two charged operations every strategy uses.

Every token a strategy makes the policy generate and every candidate it makes a scorer
score goes through `generate_charged` / `score_charged`, so the counts in a `Selection`
are exact (they are what the comparisons in `docs/search.md` put on the x-axis):

- `tokens`: completion tokens generated for the problem (prompts and prefixes re-read
  by the model are not counted: prefill is cheap next to decoding and the KV cache of a
  real server reuses them);
- `model_calls`: completions requested (one per sampled sequence: a beam step, a
  sample, a rollout);
- `scorer_calls`: candidate solutions (full or partial) scored.

A token budget is a stop rule, not a truncation: a strategy starts no new generation for
a problem whose `tokens` reached `limit`; the call in flight finishes, so the overshoot is
at most one round of that strategy's calls, and the reported `tokens` are what was
actually generated. Comparisons therefore plot accuracy against measured tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

from reasonloop.rollout.sampler import Sampler, SamplingParams
from reasonloop.types import Problem, Sample


@dataclass
class Budget:
    limit: int | None = None
    """token budget of this problem; None = unlimited"""
    tokens: int = 0
    model_calls: int = 0
    scorer_calls: int = 0

    def __post_init__(self):
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"token budget must be >= 1 or None, got {self.limit}")

    @property
    def exhausted(self) -> bool:
        return self.limit is not None and self.tokens >= self.limit

    def charge(self, samples: list[Sample]) -> None:
        self.tokens += sum(s.num_tokens for s in samples)
        self.model_calls += len(samples)

    def as_dict(self) -> dict[str, int]:
        return {"tokens": self.tokens, "model_calls": self.model_calls, "scorer_calls": self.scorer_calls}


def generate_charged(sampler: Sampler, problems: list[Problem], budgets: list[Budget], k: int,
                     params: SamplingParams, prefixes: list[str] | None = None) -> list[list[Sample]]:
    """`sampler.generate` for these problems (one batched call), charging each problem's budget."""
    if not problems:
        return []
    groups = sampler.generate([p.prompt for p in problems], k, params, prefixes=prefixes)
    if len(groups) != len(problems) or any(len(g) != k for g in groups):
        raise RuntimeError(f"sampler returned {[len(g) for g in groups]} samples for {len(problems)} prompts x {k}")
    for budget, group in zip(budgets, groups):
        budget.charge(group)
    return groups


def score_charged(scorer, problems: list[Problem], solutions: list[list[str]],
                  budgets: list[Budget]) -> list[list[float]]:
    """`scorer.score` (one batched call), charging one scorer call per solution to its problem."""
    if not problems:
        return []
    scores = scorer.score(problems, solutions)
    if len(scores) != len(solutions):
        raise RuntimeError(f"scorer {scorer.name!r} returned {len(scores)} score lists for {len(solutions)} solutions")
    for budget in budgets:
        budget.scorer_calls += 1
    return scores
