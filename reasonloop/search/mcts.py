"""Step-level Monte-Carlo tree search with UCT and scorer values (ReST-MCTS*, Zhang et al.
2024, arXiv:2406.03816, `THUDM/ReST-MCTS` `MCTS/mcts.py`; rStar, Qi et al. 2024, for
step-level actions). A node is a partial solution; an action is one reasoning step.

One simulation per problem per round (all problems advance in lockstep, so every round
is one batched sampler call and one batched scorer call):

1. Select: from the root, follow the child maximising UCT
       Q(c) + c_uct * sqrt(ln N(parent) / N(c))         (Kocsis & Szepesvari 2006)
   until a node that is unexpanded or finished. Ties go to the earlier child.
2. Expand: sample `children` next steps from it (`stop=[separator]`), score each child
   with the process scorer; a child starts with N = 1 and Q = its aggregated score (the
   PRM / value prior, as ReST-MCTS* initialises node values from its value model).
   A finished leaf is not expanded: its own value is backed up again.
3. Back up: the best new child value (ReST-MCTS*'s roll-forward uses the best child
   value too) is added to every node on the path: N += 1, W += v, Q = W / N.

After `simulations` rounds (or when the budget is spent) the answer is the finished node
with the highest aggregated score (ties: the one found first). If no node finished, the
most-visited path is completed by one greedy rollout (charged).

Deviations: no rollouts to a terminal state for evaluation (values come from the scorer
only, as in ReST-MCTS*'s value-model mode, not rStar's rollouts with self-consistency),
no reflection step (`use_reflection`), no time limit. `c_uct` = 1.0 by default (classic
UCT uses sqrt(2) for rewards in [0, 1]; our values are in [0, 1] too).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from reasonloop.search.beam import _choose
from reasonloop.search.common import (
    Partial,
    Selection,
    complete_greedily,
    expand,
    new_budgets,
    require_process_scorer,
    round_seed,
    score_partials,
)
from reasonloop.verify.aggregate import Aggregation, aggregate, check_aggregation


@dataclass
class MCTSConfig:
    simulations: int = 8
    """select-expand-backup rounds per problem"""
    children: int = 3
    """next steps sampled when a node is expanded"""
    c_uct: float = 1.0
    max_depth: int = 8
    temperature: float = 0.8
    max_step_tokens: int = 32
    max_new_tokens: int = 128
    separator: str = "\n"
    aggregation: Aggregation = "last"
    token_budget: int | None = None
    seed: int = 0

    def __post_init__(self):
        if self.simulations < 1 or self.children < 1 or self.max_depth < 1:
            raise ValueError("simulations, children and max_depth must be >= 1")
        if self.c_uct < 0:
            raise ValueError(f"c_uct must be >= 0, got {self.c_uct}")
        if self.max_step_tokens < 1 or self.max_new_tokens < 1 or not self.separator:
            raise ValueError("max_step_tokens and max_new_tokens must be >= 1 and separator non-empty")
        check_aggregation(self.aggregation)


@dataclass(eq=False)
class Node:
    state: Partial
    parent: Node | None = None
    children: list[Node] = field(default_factory=list)
    visits: int = 0
    value_sum: float = 0.0
    depth: int = 0

    @property
    def q(self) -> float:
        return self.value_sum / self.visits if self.visits else 0.0


def uct(q: float, visits: int, parent_visits: int, c: float) -> float:
    """UCT score of a child; an unvisited child is tried first.

    >>> round(uct(0.5, 1, 4, 1.0), 4)     # 0.5 + sqrt(ln 4 / 1)
    1.6774
    """
    if visits == 0:
        return math.inf
    return q + c * math.sqrt(math.log(max(parent_visits, 1)) / visits)


def select_child(node: Node, c: float) -> Node:
    scores = [uct(ch.q, ch.visits, node.visits, c) for ch in node.children]
    return node.children[max(range(len(scores)), key=lambda i: (scores[i], -i))]


def select_leaf(root: Node, c: float) -> Node:
    node = root
    while node.children and not node.state.finished:
        node = select_child(node, c)
    return node


def backup(node: Node | None, value: float) -> None:
    while node is not None:
        node.visits += 1
        node.value_sum += value
        node = node.parent


def _walk(root: Node):
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(node.children))


def mcts(problems, sampler, scorer, cfg: MCTSConfig) -> list[Selection]:
    require_process_scorer(scorer, "MCTS")
    budgets = new_budgets(problems, cfg.token_budget)
    roots = [Node(Partial()) for _ in problems]
    found: list[list[Node]] = [[] for _ in problems]  # finished nodes in the order found

    for sim in range(cfg.simulations):
        # --- select (finished or too-deep leaves are backed up with their own value)
        owners, leaves = [], []
        for i, root in enumerate(roots):
            if budgets[i].exhausted:
                continue
            leaf = select_leaf(root, cfg.c_uct)
            if leaf.state.finished or leaf.depth >= cfg.max_depth:
                backup(leaf, aggregate(leaf.state.step_scores, cfg.aggregation))
            else:
                owners.append(i)
                leaves.append(leaf)
        if not leaves:
            continue
        # --- expand and evaluate with the scorer
        kids = expand(sampler, problems, budgets, owners, [leaf.state for leaf in leaves], cfg.children,
                      cfg.temperature, cfg.max_step_tokens, cfg.max_new_tokens, cfg.separator,
                      round_seed(cfg.seed, sim))
        flat_owners = [i for i, ks in zip(owners, kids) for _ in ks]
        score_partials(scorer, problems, budgets, flat_owners, [k for ks in kids for k in ks])
        # --- back up the best new value along the path
        for i, leaf, states in zip(owners, leaves, kids):
            values = []
            for state in states:
                value = aggregate(state.step_scores, cfg.aggregation)
                child = Node(state, parent=leaf, visits=1, value_sum=value, depth=leaf.depth + 1)
                leaf.children.append(child)
                values.append(value)
                if state.finished:
                    found[i].append(child)
            backup(leaf, max(values))

    # --- no finished node: complete the most-visited path greedily
    stuck = [i for i in range(len(problems)) if not found[i]]
    if stuck:
        paths = []
        for i in stuck:
            node = roots[i]
            while node.children:
                node = max(node.children, key=lambda ch: (ch.visits, ch.q))
            paths.append(node)
        texts = complete_greedily(sampler, [problems[i] for i in stuck], [n.state.text for n in paths],
                                  [budgets[i] for i in stuck], cfg.max_new_tokens)
        finals = [Partial(t, finished=True) for t in texts]
        score_partials(scorer, problems, budgets, stuck, finals)
        for i, node, state in zip(stuck, paths, finals):
            found[i].append(Node(state, parent=node))
    selections = []
    for i, problem in enumerate(problems):
        selection = _choose(problem, [n.state for n in found[i]], budgets[i], cfg.aggregation)
        selection.meta["tree_nodes"] = sum(1 for _ in _walk(roots[i]))
        selection.meta["tree"] = tree_dict(roots[i], selection.text, cfg.aggregation)
        selections.append(selection)
    return selections


def tree_dict(node: Node, chosen: str, how: Aggregation, parent_text: str = "") -> dict:
    """The search tree as JSON for `reasonloop view`: each node's new step, score, visits, Q."""
    return {"step": node.state.text[len(parent_text):], "score": aggregate(node.state.step_scores, how)
            if node.state.step_scores else None, "visits": node.visits, "q": round(node.q, 4),
            "finished": node.state.finished, "chosen": node.state.finished and node.state.text == chosen,
            "children": [tree_dict(c, chosen, how, node.state.text) for c in node.children]}
