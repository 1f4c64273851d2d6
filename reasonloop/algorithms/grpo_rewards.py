"""GRPO's rewards: the task's verifier, weighted shaping terms, and process (PRM) rewards.

`score_samples` fills every sample's `rewards` for the batch parts in `grpo_batches.py`.

Rewards beyond the verifier (`rewards`, `process_reward`):
- `rewards: {name: weight}` adds any plain reward callable, from `verify.REWARDS` or by
  import path (`package.module:function`), scored with the verifier through `score_all`.
- `process_reward` is a trained `reasonloop prm` directory; every completion is split into
  steps with the PRM's separator and scored once. `process_reward: task` uses the task's own
  exact step checker instead (1 before the first wrong step, 0 from it on): an exact PRM,
  which procedural tasks have, to measure what process rewards can do at best. `process_mode` says how the scores enter:
  - "posterior": Posterior-GRPO (P-GRPO, seeds [003]): + weight x aggregate
    step score, only for rollouts whose outcome is correct, so a wrong answer cannot earn
    reward for plausible steps. (The paper's reward model is a generative Optimized-Degraded
    model for code; ours is a step-level PRM trained from automatic labels.)
  - "additive": + weight x aggregate step score for every rollout (ungated; the reward-hacking
    baseline Posterior-GRPO argues against).
  - "step": DeepSeekMath process supervision (Shao et al. 2024, §4.1.3): step scores are
    normalised over the group and a token's process advantage is the sum of the normalised
    scores of its step and every later step. Deviation: DeepSeekMath uses process advantages
    *instead* of outcome ones; we add `weight` x the process advantage to the sequence's
    outcome advantage, so the verifier still decides the sign of a whole rollout's credit.
  The PRM score (`reward/prm`) is logged every step and watched by the reward-hacking alarm.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

import torch

from reasonloop.algorithms.prm import (
    expand_to_tokens,
    posterior_gated_rewards,
    process_advantages,
    token_step_index,
)
from reasonloop.models.reward_model import RewardModel
from reasonloop.tasks.base import first_error
from reasonloop.types import Problem, Sample, split_steps
from reasonloop.verify import answer_format_reward, correctness_reward, get_reward, score_all
from reasonloop.verify.aggregate import aggregate
from reasonloop.verify.rewards import soft_overlong_penalty


class _MaxNewTokens(Protocol):
    max_new_tokens: int


class RewardSettings(Protocol):
    """The reward options of a run (the fields `GRPOConfig` documents); what this module reads."""

    sampling: _MaxNewTokens
    format_weight: float
    overlong_weight: float
    overlong_cache: int
    rewards: dict[str, float]
    process_reward: str
    process_mode: Literal["posterior", "additive", "step"]
    process_weight: float
    process_aggregate: str


@dataclass
class RewardSources:
    """What `score_samples` calls besides the task's verifier, loaded once per run."""

    extra: dict[str, Callable] = field(default_factory=dict)
    """name -> reward callable, weighted by `cfg.rewards[name]`"""
    prm: RewardModel | None = None
    exact_steps: bool = False
    """step scores from the task's `check_step` (`process_reward: task`)"""

    @classmethod
    def load(cls, cfg: RewardSettings, device: str = "cpu") -> RewardSources:
        exact = cfg.process_reward == EXACT_PROCESS_REWARD
        prm = RewardModel.from_pretrained(cfg.process_reward, device=device) if cfg.process_reward and not exact else None
        return cls({name: get_reward(name) for name in cfg.rewards}, prm, exact)

    @property
    def has_process(self) -> bool:
        return self.prm is not None or self.exact_steps

    @property
    def step_separator(self) -> str:
        return self.prm.spec.step_separator if self.prm is not None else "\n"

    def step_scores(self, task, problems: list[Problem], steps: list[list[str]]) -> list[list[float]]:
        """One score in [0, 1] per step of each (problem, steps)."""
        if self.prm is not None:
            return self.prm.score_batch([p.prompt for p in problems], steps)
        return [exact_step_scores(task, p, x) for p, x in zip(problems, steps)]


EXACT_PROCESS_REWARD = "task"


def exact_step_scores(task, problem: Problem, steps: list[str]) -> list[float]:
    r"""An exact PRM from the task's step checker: 1.0 before the first wrong step, 0.0 from it on.

    >>> from reasonloop.tasks import make_task
    >>> t = make_task("arithmetic", size=1, seed=0, min_ops=2, max_ops=2, ops=["+"])
    >>> good = t[0].meta["solution"].split("\n")
    >>> exact_step_scores(t, t[0], good), exact_step_scores(t, t[0], ["1 + 1 = 3"] + good[1:])
    ([1.0, 1.0, 1.0], [0.0, 0.0, 0.0])
    """
    error = first_error(task, problem, steps)
    return [1.0 if error is None or i < error else 0.0 for i in range(len(steps))]


def score_samples(cfg: RewardSettings, task, problems: list[Problem], samples: list[Sample],
                  sources: RewardSources | None = None) -> None:
    """Fill `sample.rewards` (correct, format, length, extra rewards, prm, total) in place.

    Correctness is the task's verifier, format is `answer_format_reward`, and the extra
    rewards are `cfg.rewards`, all through `verify.score_all` (parallel, timeouts, a raising
    reward scores 0). The overlong term is DAPO's soft punishment on *token* counts, as in
    the paper, from the sampler's ids. With a PRM, each sample's step scores are stored in
    `sample.meta["step_scores"]` (the "step" mode's input) and their aggregate in
    `rewards["prm"]`, which the total includes as `cfg.process_mode` says.
    """
    sources = sources or RewardSources()
    fns = {"correct": correctness_reward(task), "format": answer_format_reward, **sources.extra}
    scores = score_all(fns, problems, [s.text for s in samples])
    for i, s in enumerate(samples):
        ok, fmt = scores["correct"][i] or 0.0, scores["format"][i] or 0.0
        cache = min(cfg.overlong_cache, cfg.sampling.max_new_tokens)  # logged even when its weight is 0
        length = soft_overlong_penalty(s.num_tokens, cfg.sampling.max_new_tokens, cache)
        extra = {name: scores[name][i] or 0.0 for name in sources.extra}
        if scores.tests[i] is not None:
            s.tests = scores.tests[i]  # code: the per-test verdicts behind "correct"
        s.rewards.update(correct=ok, format=fmt, length=length, **extra,
                         total=ok + cfg.format_weight * fmt + cfg.overlong_weight * length
                         + sum(cfg.rewards[name] * v for name, v in extra.items()))
    if sources.has_process:
        add_process_rewards(cfg, sources, task, problems, samples)


def add_process_rewards(cfg: RewardSettings, sources: RewardSources, task, problems: list[Problem],
                        samples: list[Sample]) -> None:
    """Score every sample's steps; add the aggregate to the total unless the mode is "step"."""
    steps = [split_steps(s.text, sources.step_separator) for s in samples]
    step_scores = sources.step_scores(task, problems, steps)
    process = torch.tensor([aggregate(x, cfg.process_aggregate) for x in step_scores])  # (N,)
    correct = torch.tensor([s.rewards["correct"] for s in samples])  # (N,)
    if cfg.process_mode == "posterior":
        bonus = posterior_gated_rewards(correct, process, cfg.process_weight) - correct  # (N,)
    elif cfg.process_mode == "additive":
        bonus = cfg.process_weight * process
    else:  # "step": enters through per-token advantages, not the sequence reward
        bonus = torch.zeros_like(process)
    for s, scores_, p, b in zip(samples, step_scores, process.tolist(), bonus.tolist()):
        s.meta["step_scores"] = scores_
        s.rewards["prm"] = p
        s.rewards["total"] += b


def token_process_advantages(cfg: RewardSettings, group: list[Sample], outcome_advantages: list[float],
                             decode: Callable[[int], str], separator: str) -> list[list[float]]:
    """Per-token advantages of one group for `process_mode="step"`: each sample's outcome
    advantage plus `process_weight` x the DeepSeekMath process advantage of the token's step."""
    step_advantages = process_advantages([s.meta.get("step_scores", []) for s in group])
    out = []
    for s, outcome, per_step in zip(group, outcome_advantages, step_advantages):
        token_steps = token_step_index([decode(t) for t in s.token_ids], separator)
        out.append([outcome + cfg.process_weight * a for a in expand_to_tokens(per_step, token_steps)])
    return out


def step_validity_metrics(samples: list[Sample]) -> dict[str, float]:
    """For tasks that check steps: the share of samples whose every step is right, and the share
    of verified-correct samples that got there through a wrong step ("lucky")."""
    checked = [s for s in samples if s.meta.get("steps_valid") is not None]
    if not checked:
        return {}
    out = {"process/steps_valid": sum(s.meta["steps_valid"] for s in checked) / len(checked)}
    correct = [s for s in checked if s.rewards.get("correct") == 1.0]
    if correct:
        out["process/lucky_frac"] = sum(not s.meta["steps_valid"] for s in correct) / len(correct)
    return out


def shaping_reward_keys(cfg: RewardSettings) -> list[str]:
    """The logged reward terms that enter the total with a nonzero weight (what the hacking probe watches)."""
    weighted = {"format": cfg.format_weight, "length": cfg.overlong_weight, **cfg.rewards,
                "prm": cfg.process_weight if cfg.process_reward and cfg.process_reward != EXACT_PROCESS_REWARD else 0.0}
    return [f"reward/{name}" for name, weight in weighted.items() if weight]
