"""PRM-guided step-level beam search (Snell et al. 2024, arXiv:2408.03314; the
search-and-learn implementation `sal/search/beam_search.py`).

N beams, beam width M. The root is expanded into N first steps; then, at every depth,
each candidate is scored by a process scorer, finished candidates (answer stated, EOS,
length) are set aside, and the top N/M unfinished candidates by aggregated step score
survive; each survivor is expanded by M sampled next steps (the sampler continues the
prefix with `stop=[separator]`), which refills the pool to N. Search ends when N
solutions finished, at `max_steps`, or when the problem's token budget is spent. The
answer is the finished solution with the highest aggregated score (ties: first found).

Hyperparameters (search-and-learn recipes / Snell et al.): N in {4, 16, 64, 256}, M = 4,
40 iterations, T = 0.8, top_p = 1, aggregation `last`, step separator "\\n\\n". Ours default
to the same M, T and aggregation; the separator is "\\n" because the built-in tasks write
one step per line, and `max_steps` is 8 (their solutions have at most 7 lines).

Deviations: no `lookahead` rollouts (search-and-learn's default is 0 too) and no
duplicate filtering. If the search ends without any finished solution (budget or
`max_steps`), the best unfinished beam is completed by one greedy rollout (charged to
the budget) rather than returned without an answer.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    select,
)
from reasonloop.verify.aggregate import Aggregation, aggregate


@dataclass
class BeamConfig:
    n: int = 8
    """beams kept in flight (N): the search produces up to N finished solutions"""
    beam_width: int = 4
    """M: next steps sampled per surviving beam; N / M beams survive each depth"""
    max_steps: int = 8
    temperature: float = 0.8
    max_step_tokens: int = 32
    max_new_tokens: int = 128
    """length limit of one whole solution"""
    separator: str = "\n"
    aggregation: Aggregation = "last"
    token_budget: int | None = None
    seed: int = 0

    def __post_init__(self):
        check_beam_config(self)


def top_k(scores: list[float], k: int) -> list[int]:
    """Indices of the k largest scores, best first; ties keep the earlier index.

    >>> top_k([0.2, 0.9, 0.5, 0.9], 2)
    [1, 3]
    """
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:k]


def beam_search(problems, sampler, scorer, cfg: BeamConfig) -> list[Selection]:
    require_process_scorer(scorer, "beam search")
    budgets = new_budgets(problems, cfg.token_budget)
    frontier: list[list[Partial]] = [[Partial()] for _ in problems]
    done: list[list[Partial]] = [[] for _ in problems]
    survivors = cfg.n // cfg.beam_width
    trees = [BeamTree(root) for root in (f[0] for f in frontier)]  # what `reasonloop view` draws

    for depth in range(cfg.max_steps):
        active = [i for i in range(len(problems))
                  if frontier[i] and len(done[i]) < cfg.n and not budgets[i].exhausted]
        if not active:
            break
        # --- expand: the root into N first steps, afterwards every survivor into M
        owners = [i for i in active for _ in frontier[i]]
        parents = [b for i in active for b in frontier[i]]
        k = cfg.n if depth == 0 else cfg.beam_width
        children = expand(sampler, problems, budgets, owners, parents, k, cfg.temperature, cfg.max_step_tokens,
                          cfg.max_new_tokens, cfg.separator, round_seed(cfg.seed, depth))
        # --- score every candidate, set finished ones aside, keep the top N/M of the rest
        flat_owners = [i for i, kids in zip(owners, children) for _ in kids]
        flat = [c for kids in children for c in kids]
        score_partials(scorer, problems, budgets, flat_owners, flat)
        for i, parent, kids in zip(owners, parents, children):
            trees[i].add(parent, kids, cfg.aggregation)
        for i in active:
            candidates = [c for o, c in zip(flat_owners, flat) if o == i]
            done[i] += [c for c in candidates if c.finished]
            open_ = [c for c in candidates if not c.finished]
            keep = top_k([aggregate(c.step_scores, cfg.aggregation) for c in open_], survivors)
            frontier[i] = [open_[j] for j in keep]
            trees[i].mark_kept(frontier[i])

    # --- problems that finished nothing: complete their best beam greedily
    stuck = [i for i in range(len(problems)) if not done[i]]
    if stuck:
        best = [max(frontier[i] or [Partial()], key=lambda b: aggregate(b.step_scores, cfg.aggregation))
                for i in stuck]
        texts = complete_greedily(sampler, [problems[i] for i in stuck], [b.text for b in best],
                                  [budgets[i] for i in stuck], cfg.max_new_tokens)
        finals = [Partial(t, finished=True) for t in texts]
        score_partials(scorer, problems, budgets, stuck, finals)
        for i, b, f in zip(stuck, best, finals):
            done[i].append(f)
            trees[i].add(b, [f], cfg.aggregation)
    selections = [_choose(p, done[i], budgets[i], cfg.aggregation) for i, p in enumerate(problems)]
    for selection, tree in zip(selections, trees):
        selection.meta["tree"] = tree.as_dict(selection.text)
    return selections


class BeamTree:
    """The expansions of one problem's beam search, as a tree of new steps (for `reasonloop view`)."""

    def __init__(self, root: Partial):
        self.root = {"step": "", "children": []}
        self.nodes = {id(root): (root, self.root)}  # the Partial is kept so its id is never reused

    def add(self, parent: Partial, kids: list[Partial], how: Aggregation) -> None:
        if id(parent) not in self.nodes:  # an unexpanded best beam completed greedily: hang it under the root
            self.nodes[id(parent)] = (parent, {"step": parent.text, "children": []})
            self.root["children"].append(self.nodes[id(parent)][1])
        _, node = self.nodes[id(parent)]
        for kid in kids:
            child = {"step": kid.text[len(parent.text):], "score": aggregate(kid.step_scores, how)
                     if kid.step_scores else None, "finished": kid.finished, "children": []}
            node["children"].append(child)
            self.nodes[id(kid)] = (kid, child)

    def mark_kept(self, survivors: list[Partial]) -> None:
        for s in survivors:
            self.nodes[id(s)][1]["kept"] = True

    def as_dict(self, chosen: str) -> dict:
        for partial, node in self.nodes.values():
            node["chosen"] = partial.finished and partial.text == chosen
        return self.root


def _choose(problem, finished: list[Partial], budget, how: Aggregation) -> Selection:
    scores = [aggregate(c.step_scores, how) for c in finished]
    best = top_k(scores, 1)[0]
    return select(problem, finished[best].text, [c.text for c in finished], scores, budget)
