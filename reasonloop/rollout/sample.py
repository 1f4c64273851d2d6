"""`reasonloop sample`: sample completions for a task's problems, verify them, write a samples JSONL.

The output is the one sample format every other command reads (`sft`, `dpo`, labeling,
evaluation): each row is a `Sample` with its "correct" reward filled in.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

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


def main(cfg: SampleConfig, sampler_factory=None) -> dict:
    """`sampler_factory(cfg.sampler, model) -> Sampler`: `make_sampler`, or Ray rollout workers (`cluster.*`)."""
    task = cfg.task.build(split=cfg.split, size=cfg.num_problems, seed=cfg.seed)
    problems = list(task)
    sampler = (sampler_factory or make_sampler)(cfg.sampler, cfg.model)
    start = time.perf_counter()
    params = cfg.sampling if cfg.sampling.seed is not None else SamplingParams(**{**vars(cfg.sampling), "seed": cfg.seed})
    samples = sample_and_verify(sampler, task, problems, cfg.samples_per_prompt, params)
    seconds = time.perf_counter() - start
    write_jsonl(Path(cfg.output), samples)
    tokens = sum(s.num_tokens for s in samples)
    summary = {"samples": len(samples), "accuracy": sum(s.correct for s in samples) / len(samples),
               "tokens": tokens, "seconds": seconds, "tokens_per_second": tokens / max(seconds, 1e-9)}
    console.print(f"sample: {len(samples)} samples, accuracy {summary['accuracy']:.3f}, "
                  f"{summary['tokens_per_second']:.0f} tok/s -> {cfg.output}")
    return summary
