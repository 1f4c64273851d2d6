"""Where GRPO's batches come from: draw problems, sample and score groups, repair, filter, refill.

One step's batch is made by four named parts, each chosen once at config load
(`BatchRecipe.from_config`), so the loop in `grpo.py` never branches on a variant:

- **draw** (`curriculum.choose_categories`): which task category each prompt slot takes,
  uniformly or by the SEC bandit, and the next problem of that category (a `ProblemCursor` per
  category: epochs with a seeded shuffle over a finite dataset, in order over a procedural
  task; its state is checkpointed, so a resumed run draws the same problems);
- **sample and score** (`rollout.sample_groups` with `grpo_rewards.score_samples` as the score; with
  an environment, `rollout.multiturn.sample_env_groups`: trajectories scored by the environment);
- **repair** (`GROUP_REPAIRS`): `none`, or `guide` (Nath et al. 2025, arXiv:2506.13923):
  all-wrong groups get `guide_fraction` of their samples regenerated with the reference
  solution's first `guide_hint_steps` steps appended to the prompt; those samples are trained
  under the hint-free prompt with the hinted sampling logprobs as pi_old;
- **filter** (`GROUP_FILTERS`): `dynamic_sampling` (DAPO: drop zero-variance groups) and/or a
  `difficulty_band` (online difficulty filtering, Bae et al. 2025); with any filter the batch is
  refilled by sampling a new set of `prompts_per_step` prompts, at most `max_refill_rounds`
  times (deviation: DAPO keeps sampling until the batch is full).

And when the batch is made (`BATCH_SOURCES`): `on_policy` samples it at the start of its step
with the weights being trained; `one_step_ahead` (`overlap_sampling`) samples step t+1's batch
on a worker thread while step t trains (`overlap.py` has the papers), and hands the batch in
flight to the checkpoint so resume stays exact.
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import torch

from reasonloop.algorithms.curriculum import SelfEvolvingCurriculum, choose_categories
from reasonloop.algorithms.grpo_rewards import RewardSettings, RewardSources, score_samples
from reasonloop.algorithms.overlap import OverlappedSampling
from reasonloop.algorithms.rl_maths import has_reward_variance, pass_rate_in_band
from reasonloop.evaluate.verdicts import annotate_steps
from reasonloop.rollout.groups import flatten, sample_groups
from reasonloop.rollout.multiturn import sample_env_groups
from reasonloop.rollout.multiturn_api import multiturn_runner
from reasonloop.rollout.sampler import SamplingParams
from reasonloop.tasks.cursor import ProblemCursor
from reasonloop.types import Group, Problem, Sample


@dataclass
class DrawStats:
    """How a batch was made: groups sampled, with zero reward variance, repaired by hints; sampling rounds."""

    sampled: int = 0
    zero_variance: int = 0
    guided: int = 0
    rounds: int = 0


@dataclass
class Rollouts:
    """One step's batch: the scored groups to train on, every sample drawn, and where the draw ended."""

    groups: list[Group]
    """the groups kept by the filters, in draw order"""
    arms: list[int]
    """the curriculum category of each kept group"""
    all_samples: list[Sample]
    """every sample drawn this step, kept or not (the metrics)"""
    stats: DrawStats
    cursors: list[dict]
    """each category's `ProblemCursor.state_dict()` after this draw"""
    seconds: float
    """wall time of sampling and scoring"""


# --------------------------------------------------------------------------------------------
# Filters: which sampled groups are trained on (any filter turns refilling on)


class GroupFilter(Protocol):
    def __call__(self, rewards: torch.Tensor, correct: torch.Tensor) -> torch.Tensor:
        """(P, G) total rewards and correctness -> (P,) bool: keep the group."""
        ...


def has_variance(rewards: torch.Tensor, correct: torch.Tensor) -> torch.Tensor:
    """DAPO's dynamic sampling: keep groups whose rewards are not all equal."""
    return has_reward_variance(rewards)


@dataclass
class DifficultyBand:
    """Online difficulty filtering: keep groups whose pass rate lies in [low, high]."""

    low: float
    high: float

    def __call__(self, rewards: torch.Tensor, correct: torch.Tensor) -> torch.Tensor:
        return pass_rate_in_band(correct, self.low, self.high)


# --------------------------------------------------------------------------------------------
# Repairs: what happens to groups that cannot teach anything (all wrong)


class GroupRepair(Protocol):
    def __call__(self, sampler, groups: list[Group], params: SamplingParams, score) -> int:
        """Repair `groups` in place; returns how many were repaired."""
        ...


def no_repair(sampler, groups: list[Group], params: SamplingParams, score) -> int:
    return 0


def hint_prompt(problem: Problem, num_steps: int) -> str | None:
    """Guide's hint: the prompt plus the reference solution's first steps (None if no reference)."""
    solution = problem.reference_solution
    if not solution:
        return None
    steps = [line for line in solution.split("\n") if line.strip()][:num_steps]
    return problem.prompt.rstrip("\n") + "\nHint: the solution starts with\n" + "\n".join(steps) + "\n"


@dataclass
class GuideHints:
    """Guide: for groups with no correct sample, regenerate `fraction` of them with a hint.

    Sampling seeds are even for plain rounds and odd (round seed + 1) for hinted ones, so they never collide.
    """

    hint_steps: int
    fraction: float
    group_size: int

    def __call__(self, sampler, groups: list[Group], params: SamplingParams, score) -> int:
        targets = [(g, hint_prompt(g.problem, self.hint_steps)) for g in groups
                   if not any(s.rewards["correct"] == 1.0 for s in g.samples)]
        targets = [(g, h) for g, h in targets if h is not None]
        if not targets:
            return 0
        k = max(1, round(self.fraction * self.group_size))
        hinted = sample_groups(sampler, [g.problem for g, _ in targets], k,
                               SamplingParams(**{**vars(params), "seed": params.seed + 1}),
                               score=score, prompts=[h for _, h in targets])
        for (g, h), new in zip(targets, hinted):
            for s in new.samples:
                s.prompt, s.meta["hint_prompt"] = g.problem.prompt, h  # trained without the hint
            g.samples[-k:] = new.samples
        return len(targets)


# --------------------------------------------------------------------------------------------
# The recipe: everything that makes one batch, chosen at config load


@dataclass
class BatchRecipe:
    tasks: list
    """one task per curriculum category"""
    rewards: RewardSettings
    sources: RewardSources
    sampling: SamplingParams
    prompts_per_step: int
    samples_per_prompt: int
    curriculum_strategy: str
    seed: int
    filters: list[GroupFilter] = field(default_factory=list)
    repair: GroupRepair = no_repair
    refill_rounds: int = 0
    make_env: Callable | None = None
    """a multi-turn environment factory: groups are its trajectories, scored by the environment"""
    limits: object = None
    """the trajectories' `envs.Limits`"""

    @classmethod
    def from_config(cls, cfg, tasks: list, sources: RewardSources, make_env: Callable | None = None) -> BatchRecipe:
        filters: list[GroupFilter] = []
        if cfg.dynamic_sampling:
            filters.append(has_variance)
        if cfg.difficulty_band:
            filters.append(DifficultyBand(*cfg.difficulty_band))
        repair = GuideHints(cfg.guide_hint_steps, cfg.guide_fraction, cfg.samples_per_prompt) if cfg.guide \
            else no_repair
        return cls(tasks, cfg, sources, cfg.sampling, cfg.prompts_per_step, cfg.samples_per_prompt,
                   cfg.curriculum.strategy, cfg.seed, filters, repair, cfg.max_refill_rounds if filters else 0,
                   make_env, getattr(cfg, "turn_limits", None))

    def start_cursors(self) -> list[dict]:
        """Each category's cursor state before the first draw."""
        return [ProblemCursor(task, seed=self.seed + k).state_dict() for k, task in enumerate(self.tasks)]

    def cursors_at(self, states: list[dict]) -> list[ProblemCursor]:
        cursors = [ProblemCursor(task, seed=self.seed + k) for k, task in enumerate(self.tasks)]
        for cursor, state in zip(cursors, states, strict=True):
            cursor.load_state_dict(state)
        return cursors

    def score_for(self, arms: list[tuple[Problem, int]]) -> Callable[[list[Problem], list[Sample]], None]:
        """A `rollout.Score` over problems drawn from several categories: one `score_samples` call per task."""
        arm_of = {id(problem): arm for problem, arm in arms}

        def score(problems: list[Problem], samples: list[Sample]) -> None:
            by_arm: dict[int, tuple[list[Problem], list[Sample]]] = {}
            for p, s in zip(problems, samples):
                arm_problems, arm_samples = by_arm.setdefault(arm_of[id(p)], ([], []))
                arm_problems.append(p)
                arm_samples.append(s)
            for arm, (arm_problems, arm_samples) in by_arm.items():
                score_samples(self.rewards, self.tasks[arm], arm_problems, arm_samples, self.sources)

        return score


def sample_batch(recipe: BatchRecipe, sampler, bandit: SelfEvolvingCurriculum, cursor_states: list[dict],
                 step: int, rng: random.Random) -> Rollouts:
    """Draw `prompts_per_step` problems, sample and score their groups; repair, filter and refill."""
    t_start = time.perf_counter()
    cursors = recipe.cursors_at(cursor_states)
    kept: list[tuple[int, Group]] = []
    stats = DrawStats()
    all_samples: list[Sample] = []
    for rnd in range(1 + recipe.refill_rounds):
        need = recipe.prompts_per_step - len(kept)
        if need <= 0:
            break
        stats.rounds += 1
        # --- draw: one category per prompt slot, the category's next problem
        arms = choose_categories(recipe.prompts_per_step, len(recipe.tasks), recipe.curriculum_strategy, bandit, rng)
        problems = [next(cursors[arm]) for arm in arms]
        # --- sample and score, then repair
        score = recipe.score_for(list(zip(problems, arms)))
        params = SamplingParams(**{**vars(recipe.sampling),
                                   "seed": ((recipe.seed * 1_000_003 + step) * 1000 + rnd) * 2})
        if recipe.make_env is not None:  # multi-turn: the environment scores its trajectories
            groups = sample_env_groups(multiturn_runner(sampler, recipe.make_env), problems, recipe.samples_per_prompt, params,
                                       recipe.make_env, recipe.limits)
        else:
            groups = sample_groups(sampler, problems, recipe.samples_per_prompt, params, score=score)
        stats.guided += recipe.repair(sampler, groups, params, score)
        for arm, g in zip(arms, groups):  # diagnostics: right answers through wrong steps
            for s in g.samples:
                annotate_steps(recipe.tasks[arm], g.problem, s)  # steps_valid, and step_verdicts for the viewer
        # --- filter
        rewards = torch.tensor([[s.rewards["total"] for s in g.samples] for g in groups])  # (P, G)
        correct = torch.tensor([[s.rewards["correct"] for s in g.samples] for g in groups])  # (P, G)
        keep = torch.ones(len(groups), dtype=torch.bool)
        for group_filter in recipe.filters:
            keep &= group_filter(rewards, correct)
        stats.sampled += len(groups)
        stats.zero_variance += int((~has_reward_variance(rewards)).sum())
        all_samples += flatten(groups)
        kept += [(arm, g) for arm, g, k in zip(arms, groups, keep.tolist()) if k][:need]
    return Rollouts([g for _, g in kept], [a for a, _ in kept], all_samples, stats,
                    [c.state_dict() for c in cursors], time.perf_counter() - t_start)


# --------------------------------------------------------------------------------------------
# Sources: when a batch is made


class BatchSource(Protocol):
    def next(self, step: int, bandit: SelfEvolvingCurriculum, cursors: list[dict], rng: random.Random,
             model) -> tuple[Rollouts, float]:
        """Step `step`'s batch and how long the step waited for it. `model` holds the weights the step
        starts from."""
        ...

    def in_flight(self, step: int, bandit: SelfEvolvingCurriculum, cursors: list[dict]) -> Rollouts | None:
        """At a checkpoint after step `step`: the next step's batch if it is already being made (it is then
        saved with the checkpoint, and handed back by `resume`), else None."""
        ...

    def resume(self, pending: Rollouts | None) -> None: ...

    def close(self) -> None: ...


class OnPolicy:
    """Each step samples its own batch with the weights it trains (the papers' setting)."""

    def __init__(self, recipe: BatchRecipe, sampler):
        self.recipe, self.sampler = recipe, sampler

    def next(self, step, bandit, cursors, rng, model):
        batch = sample_batch(self.recipe, self.sampler, bandit, cursors, step, rng)
        return batch, batch.seconds

    def in_flight(self, step, bandit, cursors):
        return None

    def resume(self, pending):
        assert pending is None, "an on-policy run never checkpoints a batch in flight"

    def close(self):
        pass


class OneStepAhead:
    """Step t+1's batch is sampled on a worker thread, by the weights step t starts from, while step t trains.

    Deviation, by design: the ratio is pi_theta / pi_behaviour with the behaviour policy one update old,
    so clipping acts from the first iteration, and the bandit choosing step t+1's categories has seen
    steps up to t-1.
    """

    def __init__(self, recipe: BatchRecipe, model, make_sampler, last_step: int):
        def sample_ahead(sampler, step: int, bandit_copy, cursors: list[dict]) -> Rollouts:
            return sample_batch(recipe, sampler, bandit_copy, cursors, step, random.Random(f"{recipe.seed}/{step}/sample"))

        self.overlap = OverlappedSampling(model, make_sampler, sample_ahead)
        self.last_step = last_step
        self.pending: Rollouts | None = None

    def next(self, step, bandit, cursors, rng, model):
        t_wait = time.perf_counter()
        batch = self.pending if self.pending is not None else self.overlap.result(step, copy.deepcopy(bandit),
                                                                                     list(cursors))
        self.pending = None
        waited = time.perf_counter() - t_wait
        self.overlap.load_weights(model)  # the next batch is sampled by the weights this step starts from
        if step < self.last_step:
            self.overlap.submit(step + 1, copy.deepcopy(bandit), list(batch.cursors))
        return batch, waited

    def in_flight(self, step, bandit, cursors):
        if step >= self.last_step:
            return None
        # the next step's batch was sampled by weights no checkpoint holds: keep the batch itself
        self.pending = self.overlap.result(step + 1, copy.deepcopy(bandit), list(cursors))
        return self.pending

    def resume(self, pending):
        self.pending = pending

    def close(self):
        self.overlap.close()  # a batch still in flight (time budget reached) is finished and discarded


def make_batch_source(cfg, recipe: BatchRecipe, sampler, model, make_sampler) -> BatchSource:
    """`BATCH_SOURCES[name]`: `one_step_ahead` when `overlap_sampling`, else `on_policy`."""
    if cfg.overlap_sampling:
        return OneStepAhead(recipe, model, make_sampler, cfg.steps)
    return OnPolicy(recipe, sampler)


BATCH_SOURCES = {"on_policy": OnPolicy, "one_step_ahead": OneStepAhead}
