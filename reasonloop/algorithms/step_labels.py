"""Automatic step labels from the policy's own rollouts: the data a process reward model learns from.

A solution is a list of steps (`reasonloop.types.split_steps`, one step per line by
default). The *value* of a prefix `steps[:k]` is the probability that the policy, continuing
from it, reaches the gold answer; it is estimated by sampling continuations through the
`Sampler` (`prefixes=`) and grading them with the task's verifier. A step is labelled good
when the prefix that ends with it can still reach the gold answer.

Labelers (each is one function below, registered in `LABELERS`):

- `monte_carlo_labels` (Math-Shepherd, Wang et al. 2023, arXiv:2312.08935): N continuations
  from every prefix. Hard label = any continuation is correct (the paper's HE), soft label =
  the fraction that are (SE). Cost: N x (steps - 1) rollouts per solution.
- `binary_search_labels` (OmegaPRM, Luo et al. 2024, arXiv:2406.06592): for a solution whose
  final answer is wrong, bisect for the first prefix whose Monte-Carlo value is 0; steps
  before it are good, it and everything after are bad. Cost: N x ceil(log2(steps)) rollouts.
- `AdaptiveSearch` (ours): the same search for the first zero-value prefix, probing in the order that
  minimises the expected number of probes under the first-error positions found so far in this
  run (`search_plan`, an optimal alphabetic search tree): bisection when errors are spread out,
  prefix by prefix when they come early; a good probe also jumps past every step that one of its
  successful continuations wrote again word for word (such a continuation is a successful
  continuation of the deeper prefix too: a witness, at no rollout). Cost: N x its probes; under
  the counted distribution its expected probes without witnesses are at most bisection's and
  sequential probing's (both are search trees the plan optimises over). Stateful, so not in
  `LABELERS`: `make_labeler` builds one per run.
- `outcome_gated_mc_labels`: per-step Monte-Carlo that first grades the final answer and
  labels a verified solution all-good at zero cost (binary search's shortcut, given to MC,
  so a comparison isolates what bisection itself saves).
- `sequential_mc_labels`: Monte-Carlo estimates from the first prefix on, stopping at the
  first prefix whose value is 0 (with the same outcome shortcut). Cost: N x (first error + 1)
  rollouts, capped at N x (steps - 1): cheaper than bisection when errors come early.
- `ground_truth_labels`: exact labels from the task's `check_step` (procedural tasks only);
  the reference every automatic labeler is scored against (`reasonloop.evaluate.process`).

Data augmentation and targets (pure functions of stepwise rows, in `step_rows.py`):

- `hnc_augment` (Hierarchical Node Compression, HRM paper, Wang et al. 2025): copies of
  labelled solutions with two consecutive steps merged into one node;
- `hrm_pair_rows`: HRM's coarse-grained training items, one per consecutive step pair,
  scored at the end of the pair;
- `rest_mcts_values`: ReST-MCTS* (Zhang et al. 2024, arXiv:2406.03816) value targets
  v_k = max(v_{k-1} + (1 - v_{k-1}) / (m_k + 1) * (1 - 2 r_k), 0).

Output rows follow TRL's stepwise format (`prompt`, `completions`, `labels`) plus our fields
(`soft_labels`, `values`, `outcome`, `true_first_error`, `rollouts`, `tokens`, ...), so the
same file trains a TRL `PRMTrainer` or `reasonloop prm`. `prm800k_rows` imports PRM800K.

Deviations from the papers, on purpose:
- The full solution (the prefix that contains every step) is graded directly by the
  verifier, not by rollouts, in every labeler: its value is 0 or 1 at no sampling cost.
- Binary search runs on single solutions (wrong final answer only; a correct final answer
  labels every step good at zero cost), not inside OmegaPRM's MCTS with its Q+U candidate
  pool: that tree is a rollout *selection* policy and does not change what is measured
  here, which is how many rollouts locating a first error costs.
- Binary search's soft labels: a probed prefix keeps its measured value; an unprobed good
  step gets the value of the nearest probed good prefix after it (a lower bound if errors
  are never undone); bad steps get 0.
- HNC merges steps of already labelled linear solutions (the merged node takes the label of
  its second step, which is the prefix value at the end of the merged node) instead of
  merging nodes of an MCTS tree and re-aggregating the rollouts below them.
- ReST-MCTS* needs the reasoning distance m_k (fewest steps from step k to a correct
  answer); without a search tree we use the number of reference-solution steps left,
  max(L - 1 - k, 0), L = len(reference steps) (or of this solution when there is none).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from reasonloop.algorithms.step_rows import (
    hnc_augment,
    hrm_pair_rows,
    human_label_rows,
    prm800k_rows,
    reasoning_distances,
    rest_mcts_values,
)
from reasonloop.models.policy import ModelConfig
from reasonloop.rollout.factory import SamplerConfig, make_sampler
from reasonloop.rollout.groups import sample_groups
from reasonloop.rollout.sampler import Sampler, SamplingParams
from reasonloop.store.atomic import atomic_write_json
from reasonloop.store.jsonl import append_jsonl, iter_jsonl, write_jsonl
from reasonloop.tasks.base import StepTask, Task, first_error
from reasonloop.tasks.spec import TaskSpec
from reasonloop.types import Problem, split_steps


@dataclass
class LabelConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    """the policy whose rollouts estimate step values (and, with solutions=policy, write the solutions)"""
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    """how the policy is run: torch, vllm, or openai (continuations after a prefix need a vLLM/SGLang server)"""
    task: TaskSpec = field(default_factory=TaskSpec)
    split: Literal["train", "test"] = "train"
    num_problems: int = 200
    seed: int = 0
    solutions: Literal["policy", "corrupt"] = "policy"
    """what gets labelled: the policy's own samples, or the task's corrupted reference solutions"""
    solutions_per_problem: int = 4
    method: Literal["mc", "mc_outcome", "mc_sequential", "binary_search", "adaptive_search", "ground_truth",
                    "dataset"] = "mc"
    """dataset: the task's own human step labels (task.name=prm800k or processbench): no model, no rollouts"""
    rollouts_per_step: int = 8
    """N, continuations per Monte-Carlo estimate (Math-Shepherd: 8; OmegaPRM: 16)"""
    temperature: float = 1.0
    max_new_tokens: int = 96
    step_separator: str = "\n"
    hnc_rate: float = 0.0
    """probability of adding one node-compressed copy of each labelled solution (0 disables HNC)"""
    hrm_pairs: bool = False
    """also write HRM's consecutive-step-pair items"""
    output: str = "runs/labels/steps.jsonl"
    prm800k: str = ""
    """convert this PRM800K JSONL instead of labelling (no model needed); the same as
    task.name=prm800k task.source=PATH method=dataset"""
    neutral_is_bad: bool = False
    """PRM800K: count a neutral (0) rating as a bad step"""

    def __post_init__(self):
        if self.num_problems < 1 or self.solutions_per_problem < 1 or self.rollouts_per_step < 1:
            raise ValueError("num_problems, solutions_per_problem and rollouts_per_step must be >= 1")
        if not 0 <= self.hnc_rate <= 1:
            raise ValueError(f"hnc_rate must be in [0, 1], got {self.hnc_rate}")
        if not self.step_separator:
            raise ValueError("step_separator must be non-empty")


@dataclass
class LabeledSolution:
    """One solution with a label per step and what the labels cost."""

    problem_id: str
    prompt: str
    steps: list[str]
    hard: list[bool]
    """step i is good: the prefix ending with it can still reach the gold answer"""
    soft: list[float]
    """estimated value of the prefix ending with step i (1.0/0.0 where measured exactly)"""
    outcome: bool
    """the full solution's final answer is correct"""
    method: str
    rollouts: int = 0
    tokens: int = 0
    """completion tokens of those rollouts"""
    true_first_error: int | None = None
    """exact first wrong step from `check_step` (None: all correct), when the task can tell"""

    @property
    def first_error(self) -> int | None:
        """The labels' first bad step (None: every step is labelled good)."""
        return next((i for i, good in enumerate(self.hard) if not good), None)

    def to_row(self) -> dict[str, Any]:
        """TRL stepwise row (prompt / completions / labels) plus our fields."""
        return {
            "prompt": self.prompt, "completions": self.steps, "labels": self.hard, "soft_labels": self.soft,
            "outcome": self.outcome, "problem_id": self.problem_id, "method": self.method,
            "rollouts": self.rollouts, "tokens": self.tokens, "true_first_error": self.true_first_error,
        }


# ---------------------------------------------------------------------------------------
# Monte-Carlo estimates of prefix values


def prefix_text(steps: list[str], k: int, separator: str = "\n") -> str:
    """The completion text of the first k steps, ending with a separator so the policy starts a new step."""
    return "".join(s + separator for s in steps[:k])


def estimate_values(
    sampler: Sampler, task: Task, problem: Problem, steps: list[str], ks: list[int], n: int,
    params: SamplingParams, separator: str = "\n",
) -> tuple[list[float], int, int]:
    """Monte-Carlo value of each prefix `steps[:k]`, k in `ks`: the fraction of n continuations that verify.

    The full solution (k == len(steps)) is graded directly at no cost. One `generate` call
    serves every other prefix. Returns (values, rollouts, tokens).
    """
    values: dict[int, float] = {}
    sampled = [k for k in ks if k < len(steps)]
    for k in ks:
        if k >= len(steps):
            values[k] = task.verify(problem, prefix_text(steps, len(steps), separator))
    rollouts = tokens = 0
    if sampled:
        prefixes = [prefix_text(steps, k, separator) for k in sampled]
        groups = sampler.generate([problem.prompt] * len(sampled), n, params, prefixes=prefixes)
        for k, prefix, group in zip(sampled, prefixes, groups):
            values[k] = sum(task.verify(problem, prefix + s.text) for s in group) / len(group)
            rollouts += len(group)
            tokens += sum(s.num_tokens for s in group)
    return [values[k] for k in ks], rollouts, tokens


# ---------------------------------------------------------------------------------------
# Labelers: (sampler, task, problem, steps, n, params, separator) -> LabeledSolution


def monte_carlo_labels(
    sampler: Sampler, task: Task, problem: Problem, steps: list[str], n: int, params: SamplingParams,
    separator: str = "\n",
) -> LabeledSolution:
    """Math-Shepherd: N continuations from every prefix; hard = any correct, soft = fraction correct."""
    values, rollouts, tokens = estimate_values(sampler, task, problem, steps, list(range(1, len(steps) + 1)), n,
                                               params, separator)
    return LabeledSolution(problem.id, problem.prompt, steps, hard=[v > 0 for v in values], soft=values,
                           outcome=values[-1] == 1.0, method="mc", rollouts=rollouts, tokens=tokens)


def binary_search_labels(
    sampler: Sampler, task: Task, problem: Problem, steps: list[str], n: int, params: SamplingParams,
    separator: str = "\n",
) -> LabeledSolution:
    """OmegaPRM: bisect for the first prefix whose Monte-Carlo value is 0 (`search_labels` at the midpoint)."""
    return search_labels(sampler, task, problem, steps, n, params, separator, lambda lo, hi: (lo + hi) // 2,
                         "binary_search")


def probe_with_witnesses(sampler: Sampler, task: Task, problem: Problem, steps: list[str], k: int, n: int,
                         params: SamplingParams, separator: str) -> tuple[float, int, int, int]:
    """Monte-Carlo value of prefix k, plus the deepest prefix a successful continuation *witnesses*.

    A continuation of prefix k whose first m lines are the solution's own steps k .. k+m-1 and
    which reaches the gold answer is also a successful continuation of prefix k+m: that prefix has
    value > 0, with no rollout of its own. (A policy labelling its own samples often rewrites the
    same right steps.) Returns (value, rollouts, tokens, witnessed prefix >= k; k when none).
    """
    prefix = prefix_text(steps, k, separator)
    (group,) = sampler.generate([problem.prompt], n, params, prefixes=[prefix])
    scores = [task.verify(problem, prefix + s.text) for s in group]
    deepest = k
    for s, score in zip(group, scores):
        if score == 1.0:
            lines, m = split_steps(s.text, separator), 0
            while k + m < len(steps) - 1 and m < len(lines) and lines[m] == steps[k + m].strip():
                m += 1
            deepest = max(deepest, k + m)
    return sum(scores) / len(group), len(group), sum(x.num_tokens for x in group), deepest


def search_labels(
    sampler: Sampler, task: Task, problem: Problem, steps: list[str], n: int, params: SamplingParams,
    separator: str, probe: Callable[[int, int], int], method: str, witnesses: bool = False,
) -> LabeledSolution:
    """Search for the first prefix whose Monte-Carlo value is 0, probing prefix `probe(lo, hi)` next.

    Invariant: prefix `lo` is good (value > 0; the empty prefix is assumed good) and prefix
    `hi` is bad (value 0); the first error is step hi - 1 once hi = lo + 1. With `witnesses`,
    a good probe moves `lo` to the deepest prefix its successful continuations witness
    (`probe_with_witnesses`), which then keeps the probe's value as its soft label.
    """
    (outcome,), _, _ = estimate_values(sampler, task, problem, steps, [len(steps)], n, params, separator)
    if outcome == 1.0:  # a correct final answer: every step is labelled good, no rollouts
        return LabeledSolution(problem.id, problem.prompt, steps, [True] * len(steps), [1.0] * len(steps),
                               outcome=True, method=method)
    probed: dict[int, float] = {len(steps): 0.0}
    lo, hi, rollouts, tokens = 0, len(steps), 0, 0
    while hi - lo > 1:
        mid = probe(lo, hi)
        if not lo < mid < hi:
            raise ValueError(f"probe({lo}, {hi}) = {mid} is not strictly between them")
        if witnesses:
            value, r, t, deepest = probe_with_witnesses(sampler, task, problem, steps, mid, n, params, separator)
        else:
            (value,), r, t = estimate_values(sampler, task, problem, steps, [mid], n, params, separator)
            deepest = mid
        probed[mid], rollouts, tokens = value, rollouts + r, tokens + t
        if value > 0:
            lo = min(deepest, hi - 1)  # a witness deeper than a measured zero: that zero was a miss
            probed.setdefault(lo, value)
        else:
            hi = mid
    hard = [k <= lo for k in range(1, len(steps) + 1)]  # step i ends prefix k = i + 1
    # unprobed good steps: the value of the nearest probed good prefix after them (there is one: lo)
    soft = [probed.get(k, probed.get(lo, 1.0)) if k <= lo else 0.0 for k in range(1, len(steps) + 1)]
    for k in range(lo - 1, 0, -1):
        if k not in probed:
            soft[k - 1] = soft[k]
    return LabeledSolution(problem.id, problem.prompt, steps, hard, soft, outcome=False, method=method,
                           rollouts=rollouts, tokens=tokens)


def search_plan(weights: list[float]) -> dict[tuple[int, int], int]:
    """The probe order with the fewest expected probes when the first error is step e with probability
    proportional to `weights[e]` (e = 0 .. S-1; prefix S is known bad): an optimal alphabetic search
    tree by dynamic programming (Knuth 1971's problem; O(S^3), S is a solution's step count).

    plan[(lo, hi)] is the prefix to probe when prefix lo is good and prefix hi is bad. Uniform weights
    give bisection; weight piled on early steps gives sequential probing.

    >>> search_plan([1, 1, 1, 1])[(0, 4)], search_plan([8, 4, 2, 1])[(0, 4)], search_plan([8, 4, 2, 1])[(1, 4)]
    (2, 1, 2)
    """
    size = len(weights)
    prefix = [0.0]
    for w in weights:
        prefix.append(prefix[-1] + w)
    cost: dict[tuple[int, int], float] = {(lo, lo + 1): 0.0 for lo in range(size)}
    plan: dict[tuple[int, int], int] = {}
    for width in range(2, size + 1):
        for lo in range(size - width + 1):
            hi = lo + width
            # every probe inside (lo, hi) is paid by all the mass in [lo, hi); ties to the midpoint-nearest
            best = min(range(lo + 1, hi), key=lambda m: (cost[(lo, m)] + cost[(m, hi)], abs(2 * m - lo - hi)))
            cost[(lo, hi)] = prefix[hi] - prefix[lo] + cost[(lo, best)] + cost[(best, hi)]
            plan[(lo, hi)] = best
    return plan


class AdaptiveSearch:
    """Binary search whose probe order follows where first errors have been found so far (ours).

    A labelling run keeps counts of the first-error positions its earlier solutions were labelled
    with (per solution length, plus all lengths pooled); each wrong-answer solution is searched
    with the `search_plan` that minimises the expected number of probes under those counts
    (+1 smoothing: with no history it is bisection). When errors come early, as they do for
    small policies, it probes the first prefixes first, like sequential MC; when they are spread
    out, it bisects. The counts come from the labels themselves, never from the ground truth. And a
    good probe jumps past the solution's steps that its successful continuations wrote again
    (witnesses: those deeper prefixes are good at no extra rollout).
    """

    def __init__(self, witnesses: bool = True):
        self.by_length: dict[int, list[int]] = {}
        self.pooled: list[int] = []
        self.witnesses = witnesses
        """a good probe jumps past the steps its successful continuations rewrote (`probe_with_witnesses`)"""

    def weights(self, size: int) -> list[float]:
        own = self.by_length.get(size, [0] * size)
        pooled = (self.pooled + [0] * size)[:size]
        total = sum(pooled) or 1
        return [1.0 + own[e] + size * pooled[e] / total for e in range(size)]

    def observe(self, labels: list[bool]) -> None:
        """Count a labelled solution's first error (none: a correct answer, nothing to count)."""
        error = next((i for i, good in enumerate(labels) if not good), None)
        if error is None:
            return
        own = self.by_length.setdefault(len(labels), [0] * len(labels))
        own[error] += 1
        self.pooled += [0] * (error + 1 - len(self.pooled))
        self.pooled[error] += 1

    def __call__(self, sampler: Sampler, task: Task, problem: Problem, steps: list[str], n: int,
                 params: SamplingParams, separator: str = "\n") -> LabeledSolution:
        plan = search_plan(self.weights(len(steps)))
        labeled = search_labels(sampler, task, problem, steps, n, params, separator,
                                lambda lo, hi: plan[(lo, hi)], "adaptive_search", self.witnesses)
        self.observe(labeled.hard)
        return labeled


def outcome_gated_mc_labels(
    sampler: Sampler, task: Task, problem: Problem, steps: list[str], n: int, params: SamplingParams,
    separator: str = "\n",
) -> LabeledSolution:
    """Math-Shepherd MC on wrong-answer solutions only; a verified final answer labels every step good, 0 rollouts."""
    if task.verify(problem, prefix_text(steps, len(steps), separator)) == 1.0:
        return LabeledSolution(problem.id, problem.prompt, steps, [True] * len(steps), [1.0] * len(steps),
                               outcome=True, method="mc_outcome")
    labeled = monte_carlo_labels(sampler, task, problem, steps, n, params, separator)
    labeled.method = "mc_outcome"
    return labeled


def sequential_mc_labels(
    sampler: Sampler, task: Task, problem: Problem, steps: list[str], n: int, params: SamplingParams,
    separator: str = "\n",
) -> LabeledSolution:
    """MC estimates of prefixes 1, 2, ... until the first whose value is 0: that step is the first error.

    A verified final answer labels every step good at zero cost; when every proper prefix
    keeps a value > 0, the wrong answer line itself is the first error. Steps after the first
    error are bad with soft label 0; probed good steps keep their measured value.
    """
    if task.verify(problem, prefix_text(steps, len(steps), separator)) == 1.0:
        return LabeledSolution(problem.id, problem.prompt, steps, [True] * len(steps), [1.0] * len(steps),
                               outcome=True, method="mc_sequential")
    soft, rollouts, tokens = [], 0, 0
    for k in range(1, len(steps)):  # prefix k ends with step k - 1
        (value,), r, t = estimate_values(sampler, task, problem, steps, [k], n, params, separator)
        soft, rollouts, tokens = soft + [value], rollouts + r, tokens + t
        if value == 0:
            break
    error = next((i for i, v in enumerate(soft) if v == 0), len(steps) - 1)
    soft = soft[:error] + [0.0] * (len(steps) - error)
    return LabeledSolution(problem.id, problem.prompt, steps, [i < error for i in range(len(steps))], soft,
                           outcome=False, method="mc_sequential", rollouts=rollouts, tokens=tokens)


def ground_truth_labels(
    sampler: Sampler | None, task: Task, problem: Problem, steps: list[str], n: int = 0,
    params: SamplingParams | None = None, separator: str = "\n",
) -> LabeledSolution:
    """Exact labels from the task's `check_step`: good iff before the first wrong step."""
    if not isinstance(task, StepTask):
        raise TypeError(f"task {task.name!r} has no check_step, so it has no ground-truth step labels")
    error = first_error(task, problem, steps)
    hard = [error is None or i < error for i in range(len(steps))]
    outcome = task.verify(problem, prefix_text(steps, len(steps), separator)) == 1.0
    return LabeledSolution(problem.id, problem.prompt, steps, hard, [float(h) for h in hard], outcome=outcome,
                           method="ground_truth", true_first_error=error)


Labeler = Callable[..., LabeledSolution]
LABELERS: dict[str, Labeler] = {
    "mc": monte_carlo_labels,
    "mc_outcome": outcome_gated_mc_labels,
    "mc_sequential": sequential_mc_labels,
    "binary_search": binary_search_labels,
    "ground_truth": ground_truth_labels,
}


# ---------------------------------------------------------------------------------------
# The `label` command


def solutions_to_label(cfg: LabelConfig, task: Task, problems: list[Problem], sampler: Sampler | None,
                       rng: random.Random) -> list[tuple[Problem, list[str]]]:
    """(problem, steps) for every solution to label: the policy's samples or corrupted references."""
    out = []
    if cfg.solutions == "corrupt":
        if not isinstance(task, StepTask):
            raise TypeError(f"task {task.name!r} cannot corrupt solutions; use solutions=policy")
        for p in problems:
            for _ in range(cfg.solutions_per_problem):
                # half corrupted, half reference: first-error F1 needs both kinds
                steps = task.corrupt(p, rng)[0] if rng.random() < 0.5 else split_steps(p.reference_solution)
                out.append((p, steps))
        return out
    params = SamplingParams(temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens,
                            step_separator=cfg.step_separator, seed=cfg.seed)
    for g in sample_groups(sampler, problems, cfg.solutions_per_problem, params):
        out += [(g.problem, split_steps(s.text, cfg.step_separator)) for s in g.samples
                if split_steps(s.text, cfg.step_separator)]
    return out


def make_labeler(method: str, history: Iterable[dict[str, Any]] = ()) -> Labeler:
    """The labeller of `method`; a stateful one (adaptive_search) starts from the rows already labelled in
    this run (`history`), so a resumed run labels exactly as an uninterrupted one."""
    if method != "adaptive_search":
        return LABELERS[method]
    labeler = AdaptiveSearch()
    for row in history:
        labeler.observe(row["labels"])
    return labeler


def label_solutions(
    solutions: Iterable[tuple[Problem, list[str]]], task: Task, sampler: Sampler | None, method: str,
    n: int, params: SamplingParams, separator: str = "\n",
    on_row: Callable[[dict[str, Any]], None] | None = None, history: list[dict[str, Any]] = (),
) -> list[dict[str, Any]]:
    """Label each solution with `LABELERS[method]`; rows carry the exact first error and ReST-MCTS* values."""
    labeler = make_labeler(method, history)
    rows = []
    for problem, steps in solutions:
        labeled = labeler(sampler, task, problem, steps, n, params, separator)
        if isinstance(task, StepTask):
            labeled.true_first_error = first_error(task, problem, steps)
        row = labeled.to_row()
        if not isinstance(task, StepTask):  # unknown, not "no error": leave it out so no one scores against it
            del row["true_first_error"]
        reference = split_steps(problem.reference_solution, separator) if problem.reference_solution else None
        row["values"] = rest_mcts_values(labeled.hard, reasoning_distances(len(steps), len(reference or []) or None))
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return rows


def main(cfg: LabelConfig, sampler_factory=None) -> dict[str, Any]:
    """`sampler_factory(cfg.sampler, model) -> Sampler`: `make_sampler`, or Ray rollout workers (`cluster.*`)."""
    from reasonloop.utils import console, seed_everything

    output, partial = Path(cfg.output), Path(cfg.output + ".partial")
    human = bool(cfg.prm800k) or cfg.method == "dataset"
    if cfg.prm800k:
        rows = prm800k_rows(cfg.prm800k, cfg.neutral_is_bad)
        done: list[dict] = []
    elif cfg.method == "dataset":
        task = cfg.task.build(split=cfg.split, size=cfg.num_problems, seed=cfg.seed)
        rows = human_label_rows(list(task), cfg.neutral_is_bad)
    else:
        seed_everything(cfg.seed)
        task = cfg.task.build(split=cfg.split, size=cfg.num_problems, seed=cfg.seed)
        sampler = None
        if cfg.method != "ground_truth" or cfg.solutions == "policy":
            sampler = (sampler_factory or make_sampler)(cfg.sampler, cfg.model)
        rng = random.Random(cfg.seed)
        solutions = solutions_to_label(cfg, task, [task[i] for i in range(len(task))], sampler, rng)
        # resume: rows already labelled (appended one by one) are kept; labelling restarts after them
        done = [row for _, row in iter_jsonl(partial, skip_torn_tail=True)] if partial.exists() else []
        params = SamplingParams(temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens,
                                step_separator=cfg.step_separator, seed=cfg.seed + 1)
        new = label_solutions(solutions[len(done):], task, sampler, cfg.method, cfg.rollouts_per_step, params,
                              cfg.step_separator, on_row=lambda row: append_jsonl(partial, [row]), history=done)
        rows = done + new
    augmented = hnc_augment(rows, cfg.hnc_rate, random.Random(cfg.seed), cfg.step_separator)
    if cfg.hrm_pairs:
        augmented += [item for row in rows for item in hrm_pair_rows(row, cfg.step_separator)]
    write_jsonl(output, rows + augmented)
    partial.unlink(missing_ok=True)
    summary = {
        "rows": len(rows), "augmented_rows": len(augmented), "rollouts": sum(r["rollouts"] for r in rows),
        "tokens": sum(r["tokens"] for r in rows), "method": "human" if human else cfg.method,
    }
    if not human and isinstance(task, StepTask):  # exact first errors exist: score the labels
        from reasonloop.evaluate.process import evaluate_labels

        summary.update(evaluate_labels(rows))
    atomic_write_json(output.with_suffix(".summary.json"), summary)
    console.print(f"label: {json.dumps(summary)}")
    return summary
