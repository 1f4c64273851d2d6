"""Diverse Verifier Tree Search (Beeching, Tunstall & Rush 2024, "Scaling test-time compute
with open models"; search-and-learn `sal/search/diverse_verifier_tree_search.py`).

N / M independent subtrees per problem. At every depth each unfinished subtree samples M
next steps from its own prefix, scores them with the process scorer, and greedily keeps
its single best one; subtrees never compete, which keeps the N/M final solutions
diverse where beam search collapses onto a few prefixes. A subtree ends when its kept
step finishes the solution. Every finished candidate seen along the way joins the
answer pool; the answer is the pool's best by aggregated score (ties: first found).

Hyperparameters (search-and-learn): N in {4, ..., 256}, M = 4, T = 0.8, `last`.
Deviations: search-and-learn emits only the M last-step candidates of each subtree;
we also keep finished siblings from earlier depths (they were paid for). Subtrees still
open at `max_steps` or when the budget is spent are completed by one greedy rollout
each (charged), so each of the N/M subtrees contributes an answer (search-and-learn
issue #57: its unfinished candidates fail to parse).
"""

from __future__ import annotations

from dataclasses import dataclass

from reasonloop.search.beam import _choose, top_k
from reasonloop.search.common import (
    Partial,
    Selection,
    check_beam_config,
    complete_greedily,
    expand,
    new_budgets,
    require_process_scorer,
    round_seed,
    score_partials,
)
from reasonloop.verify.aggregate import Aggregation, aggregate


@dataclass
class DVTSConfig:
    n: int = 8
    """total candidates per depth; n / beam_width independent subtrees"""
    beam_width: int = 4
    max_steps: int = 8
    temperature: float = 0.8
    max_step_tokens: int = 32
    max_new_tokens: int = 128
    separator: str = "\n"
    aggregation: Aggregation = "last"
    token_budget: int | None = None
    seed: int = 0

    def __post_init__(self):
        check_beam_config(self)


def dvts(problems, sampler, scorer, cfg: DVTSConfig) -> list[Selection]:
    require_process_scorer(scorer, "DVTS")
    budgets = new_budgets(problems, cfg.token_budget)
    subtrees: list[list[Partial]] = [[Partial() for _ in range(cfg.n // cfg.beam_width)] for _ in problems]
    pool: list[list[Partial]] = [[] for _ in problems]

    for depth in range(cfg.max_steps):
        owners, parents = [], []
        for i, trees in enumerate(subtrees):
            if not budgets[i].exhausted:
                open_ = [t for t in trees if not t.finished]
                owners += [i] * len(open_)
                parents += open_
        if not parents:
            break
        children = expand(sampler, problems, budgets, owners, parents, cfg.beam_width, cfg.temperature,
                          cfg.max_step_tokens, cfg.max_new_tokens, cfg.separator, round_seed(cfg.seed, depth))
        flat_owners = [i for i, kids in zip(owners, children) for _ in kids]
        score_partials(scorer, problems, budgets, flat_owners, [c for kids in children for c in kids])
        # --- each subtree keeps its own best next step
        for i, parent, kids in zip(owners, parents, children):
            pool[i] += [c for c in kids if c.finished]
            best = kids[top_k([aggregate(c.step_scores, cfg.aggregation) for c in kids], 1)[0]]
            trees = subtrees[i]
            trees[next(j for j, t in enumerate(trees) if t is parent)] = best

    # --- subtrees still open: one greedy completion each
    owners = [i for i, trees in enumerate(subtrees) for t in trees if not t.finished]
    open_ = [t for trees in subtrees for t in trees if not t.finished]
    if open_:
        texts = complete_greedily(sampler, [problems[i] for i in owners], [t.text for t in open_],
                                  [budgets[i] for i in owners], cfg.max_new_tokens)
        finals = [Partial(t, finished=True) for t in texts]
        score_partials(scorer, problems, budgets, owners, finals)
        for i, f in zip(owners, finals):
            pool[i].append(f)
    return [_choose(p, pool[i], budgets[i], cfg.aggregation) for i, p in enumerate(problems)]
