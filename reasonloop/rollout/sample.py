"""`reasonloop sample`: sample completions for a task's problems, verify them, write a samples JSONL.

The output is the one sample format every other command reads (`sft`, `dpo`, labeling,
evaluation): each row is a `Sample` with its "correct" reward filled in.

With `env.name` (a multi-turn environment, `reasonloop.envs`) each row is one episode
(`Trajectory.to_sample`): `token_ids` are every token after the prompt (drawn and inserted),
`meta` holds `prompt_ids`, `loss_mask` (1 = drawn by the sampler), turn spans and rewards,
`messages`, `counts` (tool calls, errors) and `ending`; `rewards` holds the episode's reward and
"correct" (reward >= 1). The episodes come from the multi-turn runner of `sampler.kind`; an
OpenAI-compatible server's are not token-exact (`meta.token_exact` false, no ids).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from reasonloop.envs import EnvSpec, Limits, build_env
from reasonloop.models.policy import ModelConfig
from reasonloop.rollout.factory import SamplerConfig, make_sampler
from reasonloop.rollout.groups import sample_and_verify
from reasonloop.rollout.sampler import SamplingParams
from reasonloop.store.jsonl import write_jsonl
from reasonloop.tasks.spec import TaskSpec
from reasonloop.utils import console


@dataclass
class SampleConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    task: TaskSpec = field(default_factory=TaskSpec)
    split: str = "train"
    num_problems: int = 64
    seed: int = 0
    samples_per_prompt: int = 4
    sampling: SamplingParams = field(default_factory=SamplingParams)
    output: str = "runs/samples.jsonl"
    env: EnvSpec = field(default_factory=lambda: EnvSpec(name=""))
    """a multi-turn environment instead of `task` (name from `envs.ENVS`, or a task name with options.tools):
    each row is an episode with its token ids, loss mask, messages and counts; "": the single-turn `task`"""
    turn_limits: Limits = field(default_factory=Limits)
    """with `env`: per-episode limits (turns, tokens); `sampling.max_new_tokens` bounds each turn"""

    def __post_init__(self):
        if self.env.self_play and self.split == "train" and self.samples_per_prompt % 2:
            raise ValueError("env.options.opponent=self: each game gives two rows, one per seat, so "
                             f"samples_per_prompt must be even (got {self.samples_per_prompt})")


def main(cfg: SampleConfig, sampler_factory=None) -> dict:
    """`sampler_factory(cfg.sampler, model) -> Sampler`: `make_sampler`, or Ray rollout workers (`cluster.*`)."""
    if cfg.env.name:
        task, make_env = build_env(cfg.env, cfg.split, cfg.num_problems, cfg.seed)
    else:
        task, make_env = cfg.task.build(split=cfg.split, size=cfg.num_problems, seed=cfg.seed), None
    problems = list(task)
    sampler = (sampler_factory or make_sampler)(cfg.sampler, cfg.model)
    start = time.perf_counter()
    params = cfg.sampling if cfg.sampling.seed is not None else SamplingParams(**{**vars(cfg.sampling), "seed": cfg.seed})
    if make_env is not None:
        samples = sample_episodes(sampler, problems, make_env, cfg.samples_per_prompt, params, cfg.turn_limits)
    else:
        samples = sample_and_verify(sampler, task, problems, cfg.samples_per_prompt, params)
    seconds = time.perf_counter() - start
    write_jsonl(Path(cfg.output), samples)
    # episodes: the tokens the model drew (the environment's inserted tokens are not generation)
    tokens = sum(sum(s.meta["loss_mask"]) if make_env else s.num_tokens for s in samples)
    summary = {"samples": len(samples), "accuracy": sum(s.correct for s in samples) / len(samples),
               "tokens": tokens, "seconds": seconds, "tokens_per_second": tokens / max(seconds, 1e-9)}
    if make_env is not None:
        counts: dict[str, int] = {}
        for s in samples:
            for key, value in s.meta["counts"].items():
                counts[key] = counts.get(key, 0) + value
        summary.update({"turns_per_episode": sum(len(s.meta["turns"]) for s in samples) / len(samples),
                        **{f"{k}_per_episode": v / len(samples) for k, v in sorted(counts.items())}})
    console.print(f"sample: {len(samples)} samples, accuracy {summary['accuracy']:.3f}, "
                  f"{summary['tokens_per_second']:.0f} tok/s -> {cfg.output}")
    return summary


def sample_episodes(sampler, problems, make_env, k: int, params: SamplingParams, limits: Limits) -> list:
    """`k` episodes per problem through the sampler's multi-turn runner, as `Sample` rows (problem-major)."""
    from reasonloop.rollout.multiturn_api import multiturn_runner

    rows = []
    for group in multiturn_runner(sampler, make_env).run(problems, make_env, k, params, limits):
        for t in group:
            s = t.to_sample(params.step_separator)
            s.meta["token_exact"] = t.token_exact
            rows.append(s)
    return rows
