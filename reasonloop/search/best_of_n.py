"""Best-of-N and weighted best-of-N: rank N samples with a scorer.

- `best_of_n`: the candidate with the highest aggregated score (search-and-learn
  `sal/search/best_of_n.py`; aggregation `last` is its default, `min` is Math-Shepherd's).
  Ties go to the earliest sample (`np.argmax` in search-and-learn does the same).
- `weighted_best_of_n`: sum the aggregated scores of the candidates giving each canonical
  answer and return the answer with the largest sum (Li et al. 2023 "DiVeRSe", the
  `pred_weighted@n` of search-and-learn, OpenR's `prm_*_vote`, OmegaPRM's weighted
  self-consistency). Deviation from search-and-learn: its weighted vote always uses the
  *last* step score whatever `agg_strategy` says; here `aggregation` applies to both.
  Candidates without an answer do not vote; a tie in summed score goes to the answer
  sampled first.

Both score each candidate once (`N` scorer calls per problem).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from reasonloop.search.budget import score_charged
from reasonloop.search.common import Selection, new_budgets, sample_solutions, select
from reasonloop.search.voting import canonical_answer
from reasonloop.types import split_steps
from reasonloop.verify.aggregate import Aggregation, aggregate, check_aggregation


@dataclass
class BestOfNConfig:
    n: int = 8
    temperature: float = 0.8
    max_new_tokens: int = 128
    aggregation: Aggregation = "last"
    token_budget: int | None = None
    chunk: int = 4
    """samples per round when a token budget is set"""
    seed: int = 0

    def __post_init__(self):
        if self.n < 1 or self.chunk < 1 or self.max_new_tokens < 1:
            raise ValueError("n, chunk and max_new_tokens must be >= 1")
        if self.temperature <= 0:
            raise ValueError(f"best-of-N needs temperature > 0, got {self.temperature}")
        check_aggregation(self.aggregation)


def argmax_first(scores: list[float]) -> int:
    """Index of the largest score; the earliest on ties."""
    return max(range(len(scores)), key=lambda i: (scores[i], -i))


def weighted_vote(answers: list[str | None], scores: list[float]) -> str | None:
    """The answer with the largest summed score; ties go to the answer seen first.

    >>> weighted_vote(["3", "4", "4", None], [0.9, 0.5, 0.5, 1.0])
    '4'
    """
    totals: dict[str, float] = defaultdict(float)
    for answer, score in zip(answers, scores):
        if answer is not None:
            totals[answer] += score
    if not totals:
        return None
    best = max(totals.values())
    return next(a for a in answers if a is not None and totals[a] == best)


def _score_samples(problems, sampler, scorer, cfg: BestOfNConfig):
    if scorer is None:
        raise ValueError("best-of-N needs a scorer (scorer.kind = verifier | oracle_step | code | prm | orm)")
    budgets = new_budgets(problems, cfg.token_budget)
    groups = sample_solutions(sampler, problems, budgets, cfg.n, cfg.chunk, cfg.temperature, cfg.max_new_tokens,
                              cfg.seed)
    flat = [(i, s.text) for i, group in enumerate(groups) for s in group]
    step_scores = score_charged(scorer, [problems[i] for i, _ in flat], [split_steps(t) for _, t in flat],
                                [budgets[i] for i, _ in flat])
    scores: list[list[float]] = [[] for _ in problems]
    for (i, _), s in zip(flat, step_scores):
        scores[i].append(aggregate(s, cfg.aggregation))
    return budgets, [[s.text for s in g] for g in groups], scores


def best_of_n(problems, sampler, scorer, cfg: BestOfNConfig) -> list[Selection]:
    budgets, texts, scores = _score_samples(problems, sampler, scorer, cfg)
    return [select(p, t[argmax_first(s)], t, s, b) for p, t, s, b in zip(problems, texts, scores, budgets)]


def weighted_best_of_n(problems, sampler, scorer, cfg: BestOfNConfig) -> list[Selection]:
    budgets, texts, scores = _score_samples(problems, sampler, scorer, cfg)
    selections = []
    for problem, t, s, budget in zip(problems, texts, scores, budgets):
        answers = [canonical_answer(x) for x in t]
        winner = weighted_vote(answers, s)
        index = answers.index(winner) if winner is not None else argmax_first(s)
        selections.append(select(problem, t[index], t, s, budget))
    return selections
