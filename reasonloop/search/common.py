"""What every strategy shares: the `Selection` it returns and the step-level helpers.

A *step* is the text up to and including the step separator (default "\\n", one line of
the built-in tasks' solutions). A partial solution is the prefix text the sampler
continues (`prefixes=`); it is *finished* when its last step states a final answer
(`Answer: ...`, `\\boxed{}`...), the model stopped (EOS) or it ran out of length.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reasonloop.rollout.sampler import Sampler, SamplingParams
from reasonloop.search.budget import Budget, generate_charged
from reasonloop.search.voting import canonical_answer
from reasonloop.types import Problem, Sample, split_steps
from reasonloop.verify.aggregate import check_aggregation
from reasonloop.verify.extract import extract_final_answer


@dataclass
class Selection:
    """A strategy's answer to one problem, with the candidates it chose from and its cost."""

    problem_id: str
    text: str
    """the chosen completion (whole solution text)"""
    answer: str | None
    """canonical final answer of `text` (None: no answer)"""
    candidates: list[str] = field(default_factory=list)
    """every finished solution the strategy produced, in generation order"""
    scores: list[float] = field(default_factory=list)
    """aggregated score of each candidate (empty when the strategy used no scorer)"""
    budget: Budget = field(default_factory=Budget)
    meta: dict[str, Any] = field(default_factory=dict)


def new_budgets(problems: list[Problem], token_budget: int | None) -> list[Budget]:
    return [Budget(limit=token_budget) for _ in problems]


def states_answer(step: str) -> bool:
    return extract_final_answer(step) is not None


def is_finished(sample: Sample, text_so_far: str, tokens_so_far: int, max_new_tokens: int) -> bool:
    """Does `text_so_far` (ending with `sample`'s new step) end the solution?

    Yes when the model stopped for another reason than the separator (EOS, length), the
    new step is empty, the last step states an answer, or the solution reached the
    length limit of a whole completion (`tokens_so_far` >= `max_new_tokens`).
    """
    last = split_steps(text_so_far)[-1:] or [""]
    return (sample.finish_reason != "stop" or not sample.text.strip() or states_answer(last[0])
            or tokens_so_far >= max_new_tokens)


def step_params(temperature: float, max_step_tokens: int, separator: str, seed: int | None) -> SamplingParams:
    """Sampling one step: stop at the separator and keep it, so prefix + step concatenates."""
    return SamplingParams(temperature=temperature, max_new_tokens=max_step_tokens, stop=[separator],
                          include_stop_str=True, seed=seed, step_separator=separator)


def round_seed(seed: int, round_index: int) -> int:
    """A distinct sampler seed per generation round (the engine's draws are a hash of it)."""
    return seed * 1_000_003 + round_index


def complete_greedily(sampler: Sampler, problems: list[Problem], prefixes: list[str], budgets: list[Budget],
                      max_new_tokens: int) -> list[str]:
    """Finish partial solutions with one greedy rollout each (charged); returns full texts."""
    groups = generate_charged(sampler, problems, budgets, 1,
                              SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens), prefixes=prefixes)
    return [prefix + group[0].text for prefix, group in zip(prefixes, groups)]


def select(problem: Problem, text: str, candidates: list[str], scores: list[float], budget: Budget,
           **meta: Any) -> Selection:
    return Selection(problem_id=problem.id, text=text, answer=canonical_answer(text), candidates=candidates,
                     scores=scores, budget=budget, meta=meta)


def sample_solutions(sampler: Sampler, problems: list[Problem], budgets: list[Budget], n: int, chunk: int,
                     temperature: float, max_new_tokens: int, seed: int) -> list[list[Sample]]:
    """Up to `n` independent full samples per problem, `chunk` per round while budget lasts.

    Without token budgets one round draws all `n` (one batched call). With budgets, a
    problem whose budget is exhausted gets no further round; every problem still gets its
    first round, so no problem is left without an answer.
    """
    out: list[list[Sample]] = [[] for _ in problems]
    step = n if all(b.limit is None for b in budgets) else min(chunk, n)
    round_index = 0
    while True:
        active = [i for i in range(len(problems))
                  if len(out[i]) < n and (round_index == 0 or not budgets[i].exhausted)]
        if not active:
            return out
        k = min(step, n - len(out[active[0]]))  # every active problem has drawn the same number so far
        params = SamplingParams(temperature=temperature, max_new_tokens=max_new_tokens,
                                seed=round_seed(seed, round_index))
        groups = generate_charged(sampler, [problems[i] for i in active], [budgets[i] for i in active], k, params)
        for i, group in zip(active, groups):
            out[i].extend(group)
        round_index += 1


@dataclass
class Partial:
    """A node of a step-level search: a (partial) solution and what is known about it."""

    text: str = ""
    tokens: int = 0
    """completion tokens of `text` (the length guard of one solution)"""
    step_scores: list[float] = field(default_factory=list)
    finished: bool = False

    @property
    def steps(self) -> list[str]:
        return split_steps(self.text)


def expand(sampler: Sampler, problems: list[Problem], budgets: list[Budget], owners: list[int],
           parents: list[Partial], k: int, temperature: float, max_step_tokens: int, max_new_tokens: int,
           separator: str, seed: int) -> list[list[Partial]]:
    """Sample `k` next steps for each parent (`owners[j]` = its problem's index): one call."""
    params = step_params(temperature, max_step_tokens, separator, seed)
    groups = generate_charged(sampler, [problems[i] for i in owners], [budgets[i] for i in owners], k, params,
                              prefixes=[p.text for p in parents])
    children = []
    for parent, group in zip(parents, groups):
        kids = []
        for s in group:
            text, tokens = parent.text + s.text, parent.tokens + s.num_tokens
            kids.append(Partial(text, tokens, finished=is_finished(s, text, tokens, max_new_tokens)))
        children.append(kids)
    return children


def score_partials(scorer, problems: list[Problem], budgets: list[Budget], owners: list[int],
                   nodes: list[Partial]) -> None:
    """Score every node's steps with a process scorer (one batched call), in place."""
    from reasonloop.search.budget import score_charged

    scores = score_charged(scorer, [problems[i] for i in owners], [n.steps for n in nodes],
                           [budgets[i] for i in owners])
    for node, s in zip(nodes, scores):
        node.step_scores = list(s)


def require_process_scorer(scorer, strategy: str) -> None:
    if scorer is None or getattr(scorer, "kind", None) != "process":
        got = "none" if scorer is None else f"{scorer.name} ({scorer.kind})"
        raise ValueError(f"{strategy} needs a process scorer that scores partial solutions "
                         f"(scorer.kind = oracle_step | code | prm), got {got}")


def check_beam_config(cfg) -> None:
    """Validation shared by the step-level beam strategies (beam search, DVTS)."""
    if cfg.beam_width < 1 or cfg.n < cfg.beam_width or cfg.n % cfg.beam_width:
        raise ValueError(f"need n a positive multiple of beam_width, got n={cfg.n}, beam_width={cfg.beam_width}")
    if cfg.max_steps < 1 or cfg.max_step_tokens < 1 or cfg.max_new_tokens < 1:
        raise ValueError("max_steps, max_step_tokens and max_new_tokens must be >= 1")
    if not cfg.separator:
        raise ValueError("separator must be a non-empty string")
    check_aggregation(cfg.aggregation)
