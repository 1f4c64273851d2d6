"""Teach a fresh model a task's solution format, leaving it a realistic, imperfect reasoner.

The training set is the task's reference solutions, except that a `wrong_step_fraction` of
them contain one plausible wrong step whose error propagates to the final answer (the
task's `corrupt`). The base model therefore learns the format *and* to make mistakes
sometimes, which is the situation self-training and RL start from with real models.

This is supervised pretraining on procedural data, not a method from a paper: it exists so
the whole loop (sample -> verify -> learn) runs end to end on a CPU in minutes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from reasonloop.algorithms.sft import TrainConfig, fit
from reasonloop.config import dump_config
from reasonloop.models.policy import ModelConfig, load_model
from reasonloop.store.checkpoint import save_model
from reasonloop.store.runs import RunDir
from reasonloop.tasks.base import StepTask
from reasonloop.tasks.spec import TaskSpec
from reasonloop.utils import console, seed_everything


@dataclass
class PretrainConfig:
    model: ModelConfig = field(default_factory=lambda: ModelConfig(path="runs/quickstart/init"))
    task: TaskSpec = field(default_factory=TaskSpec)
    num_examples: int = 20_000
    wrong_step_fraction: float = 0.2
    """fraction of training solutions that contain one wrong step"""
    train: TrainConfig = field(default_factory=lambda: TrainConfig(batch_size=64, micro_batch_size=64))
    run_name: str = "pretrain"
    output_dir: str = "runs"
    seed: int = 0

    def __post_init__(self):
        if not 0 <= self.wrong_step_fraction < 1:
            raise ValueError(f"wrong_step_fraction must be in [0, 1), got {self.wrong_step_fraction}")
        if self.num_examples < 1:
            raise ValueError("num_examples must be positive")


def make_pretraining_pairs(task, wrong_step_fraction: float, seed: int) -> list[tuple[str, str]]:
    """(prompt, solution text) for every problem, a fraction of them flawed."""
    if wrong_step_fraction > 0 and not isinstance(task, StepTask):
        raise TypeError(f"task {task.name!r} cannot corrupt steps; set wrong_step_fraction=0")
    rng = random.Random(seed)
    pairs = []
    for problem in task:
        if rng.random() < wrong_step_fraction:
            steps, _ = task.corrupt(problem, rng)
            pairs.append((problem.prompt, "\n".join(steps)))
        else:
            pairs.append((problem.prompt, problem.reference_solution))
    return pairs


def main(cfg: PretrainConfig) -> dict:
    run = RunDir.create(Path(cfg.output_dir) / cfg.run_name, dump_config(cfg), resume=True)
    seed_everything(cfg.seed)
    task = cfg.task.build(split="train", size=cfg.num_examples, seed=cfg.seed)
    pairs = make_pretraining_pairs(task, cfg.wrong_step_fraction, cfg.seed)
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
