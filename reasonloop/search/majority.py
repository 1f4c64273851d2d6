"""Self-consistency (Wang et al. 2022, arXiv:2203.11171): sample N, vote on the final answer.

Answers are compared in canonical form (`search.voting.canonical_answer`: the
extracted final answer, integers normalised), so "Answer: 007" and "Answer: 7" vote
together. Samples without an answer do not vote. Ties go to the answer sampled first
(deterministic; search-and-learn's `find_majority_answer` also keeps the first of equal
counts). The chosen text is the first sample giving the winning answer.

Deviation: none from the paper's unweighted vote; the paper's weighted variants
(by sequence probability) are not implemented here (weighted voting by a scorer is
`best_of_n.weighted_best_of_n`).
"""

from __future__ import annotations

from dataclasses import dataclass

from reasonloop.search.common import Selection, new_budgets, sample_solutions, select
from reasonloop.search.voting import canonical_answer, majority_vote


@dataclass
class MajorityConfig:
    n: int = 8
    temperature: float = 0.8
    max_new_tokens: int = 128
    token_budget: int | None = None
    """per-problem token budget (a stop rule, see `search.budget`); None = draw all n"""
    chunk: int = 4
    """samples per round when a token budget is set"""
    seed: int = 0

    def __post_init__(self):
        if self.n < 1 or self.chunk < 1 or self.max_new_tokens < 1:
            raise ValueError("n, chunk and max_new_tokens must be >= 1")
        if self.temperature <= 0:
            raise ValueError(f"self-consistency needs temperature > 0, got {self.temperature}")


def vote(texts: list[str]) -> tuple[int, str | None]:
    """(index of the chosen text, winning answer); index 0 when nobody answered."""
    answers = [canonical_answer(t) for t in texts]
    winner = majority_vote(answers)
    return (answers.index(winner) if winner is not None else 0), winner


def majority(problems, sampler, scorer, cfg: MajorityConfig) -> list[Selection]:
    """Majority vote over `cfg.n` samples (`scorer` is ignored)."""
    budgets = new_budgets(problems, cfg.token_budget)
    groups = sample_solutions(sampler, problems, budgets, cfg.n, cfg.chunk, cfg.temperature, cfg.max_new_tokens,
                              cfg.seed)
    selections = []
    for problem, group, budget in zip(problems, groups, budgets):
        texts = [s.text for s in group]
        index, _ = vote(texts)
        selections.append(select(problem, texts[index], texts, [], budget))
    return selections
