"""Teach a fresh model a task's solution format, leaving it a realistic, imperfect reasoner.

The training set is the task's reference solutions, except that a `wrong_step_fraction` of
them are flawed, in one of two ways (`flaw`):

- "slip": one plausible wrong step (off by one, a carry error, swapped digits) whose error
  propagates to the answer (the task's `corrupt`). Random slips are never the most likely
  step, so they make *sampling* error-prone but barely touch greedy decoding.
- "misconception": a systematic error applied at every step where it can occur (for
  arithmetic, never carrying or borrowing: the task's `misconception`). Above a fraction
  of 0.5 it becomes the model's most likely step, like a real model's misconceptions:
  greedy decoding inherits it, while sampling still finds correct solutions sometimes,
  which is exactly what verification-based self-training and RL can exploit.

This is supervised pretraining on procedural data, not a method from a paper: it exists so
the whole loop (sample -> verify -> learn) runs end to end on a CPU in minutes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

from reasonloop.algorithms.common import OptimConfig
from reasonloop.algorithms.sft import TrainConfig, fit
from reasonloop.config import ConfigError, dump_config
from reasonloop.models.policy import ModelConfig, load_model
from reasonloop.store.checkpoint import save_model
from reasonloop.store.runs import RunDir
from reasonloop.store.trackers import LogConfig
from reasonloop.tasks.base import StepTask
from reasonloop.tasks.spec import TaskSpec
from reasonloop.types import Problem
from reasonloop.utils import console, seed_everything


@runtime_checkable
class MisconceptionTask(Protocol):
    def misconception(self, problem: Problem) -> tuple[list[str], int] | None: ...


@dataclass
class PretrainConfig:
    model: ModelConfig = field(default_factory=lambda: ModelConfig(path="runs/quickstart/init"))
    task: TaskSpec = field(default_factory=TaskSpec)
    num_examples: int = 20_000
    wrong_step_fraction: float = 0.2
    """fraction of training solutions that are flawed"""
    flaw: Literal["slip", "misconception"] = "slip"
    """"slip": one random wrong step; "misconception": a systematic error (see module docstring)"""
    train: TrainConfig = field(default_factory=lambda: TrainConfig(batch_size=64, micro_batch_size=64, max_length=512,
                                                                   optim=OptimConfig(lr=1e-3)))
    """from-scratch pretraining of the tiny quickstart models: their settings, not a 0.5-7B model's"""
    run_name: str = "pretrain"
    log: LogConfig = field(default_factory=LogConfig)
    """trackers (jsonl always; tensorboard, wandb, mlflow) and whether rollouts are kept"""
    output_dir: str = "runs"
    seed: int = 0

    def __post_init__(self):
        if not 0 <= self.wrong_step_fraction < 1:
            raise ValueError(f"wrong_step_fraction must be in [0, 1), got {self.wrong_step_fraction}")
        if self.num_examples < 1:
            raise ValueError("num_examples must be positive")


def make_pretraining_pairs(
    task, wrong_step_fraction: float, seed: int, flaw: str = "slip"
) -> list[tuple[str, str]]:
    """(prompt, solution text) for every problem, a fraction of them flawed."""
    if wrong_step_fraction > 0 and flaw == "slip" and not isinstance(task, StepTask):
        raise ConfigError(f"task {task.name!r} cannot corrupt steps; set wrong_step_fraction=0")
    if wrong_step_fraction > 0 and flaw == "misconception" and not isinstance(task, MisconceptionTask):
        raise ConfigError(f"task {task.name!r} has no systematic misconception; use flaw=slip")
    rng = random.Random(seed)
    pairs = []
    for problem in task:
        flawed = None
        if rng.random() < wrong_step_fraction:
            flawed = task.corrupt(problem, rng) if flaw == "slip" else task.misconception(problem)
        text = "\n".join(flawed[0]) if flawed else problem.reference_solution
        if text is None:
            raise ConfigError(f"problem {problem.id!r} of task {task.name!r} has no reference solution to train on "
                              f"(e.g. {problem.meta.get('source', 'its row')})")
        pairs.append((problem.prompt, text))
    return pairs


def main(cfg: PretrainConfig) -> dict:
    run = RunDir.create(Path(cfg.output_dir) / cfg.run_name, dump_config(cfg), resume=True, log=cfg.log)
    seed_everything(cfg.seed)
    task = cfg.task.build(split="train", size=cfg.num_examples, seed=cfg.seed)
    pairs = make_pretraining_pairs(task, cfg.wrong_step_fraction, cfg.seed, cfg.flaw)
    model, tokenizer = load_model(cfg.model, for_training=True)
    summary = fit(model, tokenizer, pairs, cfg.train, use_chat_template=cfg.model.use_chat_template,
                  system_prompt=cfg.model.system_prompt, description="pretrain",
                  on_step=lambda step, m: run.log(m) if step % 10 == 0 else None)
    save_model(run.root / "final", model, tokenizer)
    summary["examples"] = len(pairs)
    run.write_json("summary.json", summary)
    console.print(f"pretrain: {summary['steps']} steps in {summary['train_seconds']:.0f}s, "
                  f"loss {summary['loss_first']:.3f} -> {summary['loss_last']:.3f}; model in {run.root / 'final'}")
    return summary
