"""Distillation of verified rationales: a teacher writes them, the verifier filters, the student
is fine-tuned on what verified (rejection-sampled distillation, as in STaR's data recipe with
a stronger model, or the "distilled" models of DeepSeek-R1, arXiv:2501.12948, which are SFT
on verified teacher traces).

The teacher is any `Sampler` (`rollout.factory`): `teacher.model.path` (a directory or Hub
id) run in process (`teacher.sampler.kind=torch`) or by vLLM, or a model served by any
OpenAI-compatible server (`teacher.sampler.kind=openai teacher.sampler.base_url=...`).

Phases (each saved, so a killed run resumes): teacher samples -> `samples/teacher.jsonl`
(all of them, with their verdicts), the kept set -> `samples/train.jsonl`, the student ->
`final/`. Student accuracy is measured before and after on held-out problems.

Deviation: no few-shot prompting of the teacher; the task prompt alone is sent.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from reasonloop.algorithms.sft import TrainConfig, fit
from reasonloop.config import dump_config
from reasonloop.evaluate.accuracy import held_out_accuracy
from reasonloop.models.lora import LoRAConfig, load_trainable, merged
from reasonloop.models.policy import ModelConfig
from reasonloop.rollout.factory import SamplerConfig, make_sampler
from reasonloop.rollout.groups import sample_and_verify
from reasonloop.rollout.sampler import Sampler, SamplingParams
from reasonloop.store.checkpoint import save_model
from reasonloop.store.jsonl import read_jsonl, write_jsonl
from reasonloop.store.runs import RunDir
from reasonloop.store.trackers import LogConfig
from reasonloop.tasks.spec import TaskSpec
from reasonloop.types import Sample
from reasonloop.utils import console, seed_everything


@dataclass
class TeacherConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    """the teacher: a directory or Hub id (with sampler.kind=openai, the served model's name unless
    sampler.model_name is set)"""
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    """torch, vllm, or openai (sampler.base_url=http://127.0.0.1:8000/v1)"""


@dataclass
class DistillConfig:
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    student: ModelConfig = field(default_factory=ModelConfig)
    task: TaskSpec = field(default_factory=TaskSpec)
    problems: int = 512
    samples_per_prompt: int = 4
    sampling: SamplingParams = field(default_factory=lambda: SamplingParams(temperature=0.7, max_new_tokens=1024))
    max_kept_per_problem: int = 2
    """distinct verified rationales kept per problem"""
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=2, batch_size=16, micro_batch_size=4))
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    """lora.r > 0: the student trains LoRA adapters; the final model is merged"""
    eval_problems: int = 200
    eval_max_new_tokens: int = 1024
    run_name: str = "distill"
    log: LogConfig = field(default_factory=LogConfig)
    """trackers (jsonl always; tensorboard, wandb, mlflow) and whether rollouts are kept"""
    output_dir: str = "runs"
    seed: int = 0
    resume: bool = False

    def __post_init__(self):
        if self.problems < 1 or self.samples_per_prompt < 1 or self.max_kept_per_problem < 1:
            raise ValueError("problems, samples_per_prompt and max_kept_per_problem must be >= 1")


def make_teacher(cfg: TeacherConfig) -> Sampler:
    """The teacher `Sampler` named by the config."""
    return make_sampler(cfg.sampler, cfg.model)


def keep_verified(samples: list[Sample], max_per_problem: int) -> list[Sample]:
    """Verified-correct, distinct (after stripping) rationales, at most `max_per_problem` per problem."""
    kept, seen, count = [], set(), {}
    for s in samples:
        key = (s.problem_id, s.text.strip())
        if s.correct and key not in seen and count.get(s.problem_id, 0) < max_per_problem:
            seen.add(key)
            count[s.problem_id] = count.get(s.problem_id, 0) + 1
            kept.append(s)
    return kept


def main(cfg: DistillConfig) -> dict:
    run = RunDir.create(Path(cfg.output_dir) / cfg.run_name, dump_config(cfg), resume=cfg.resume, log=cfg.log)
    seed_everything(cfg.seed)
    teacher_path = run.samples_dir / "teacher.jsonl"
    # --- teacher: sample and verify (reused on resume) ---
    t0 = time.perf_counter()
    if cfg.resume and teacher_path.exists():
        samples = read_jsonl(teacher_path, Sample)
    else:
        task = cfg.task.build(split="train", size=cfg.problems, seed=cfg.seed)
        problems = list(task)
        teacher = make_teacher(cfg.teacher)
        samples = sample_and_verify(teacher, task, problems, cfg.samples_per_prompt,
                                    SamplingParams(**{**vars(cfg.sampling), "seed": cfg.seed}))
        write_jsonl(teacher_path, samples)
        del teacher
    teacher_seconds = time.perf_counter() - t0
    kept = keep_verified(samples, cfg.max_kept_per_problem)
    write_jsonl(run.samples_dir / "train.jsonl", kept)
    if not kept:
        raise RuntimeError(f"the teacher solved none of {cfg.problems} problems; nothing to distill "
                           f"(samples in {teacher_path})")
    # --- student: evaluate, fine-tune on the verified rationales, evaluate ---
    student, tokenizer = load_trainable(cfg.student, cfg.lora)
    sampler = make_sampler(SamplerConfig(), cfg.student, policy=student, tokenizer=tokenizer)
    eval_task = cfg.task.build(split="test", size=cfg.eval_problems, seed=cfg.seed) if cfg.eval_problems else None

    def evaluate() -> float | None:
        return held_out_accuracy(sampler, eval_task, cfg.eval_max_new_tokens).get("eval/greedy_accuracy")

    before = evaluate()
    summary = fit(student, tokenizer, [(s.prompt, s.text) for s in kept], cfg.train,
                  use_chat_template=cfg.student.use_chat_template, system_prompt=cfg.student.system_prompt,
                  description="distill", on_step=lambda step, m: run.log(m))
    after = evaluate()
    save_model(run.root / "final", merged(student), tokenizer)
    result = {
        "teacher_samples": len(samples),
        "teacher_accuracy": sum(s.correct for s in samples) / len(samples),
        "teacher_tokens": sum(s.num_tokens for s in samples),
        "teacher_seconds": teacher_seconds,
        "kept": len(kept),
        "problems_kept": len({s.problem_id for s in kept}),
        "student/accuracy_before": before,
        "student/accuracy_after": after,
        **{f"train/{k}": v for k, v in summary.items()},
        "final_model": str(run.root / "final"),
    }
    run.write_json("summary.json", result)
    console.print(f"distill: teacher accuracy {result['teacher_accuracy']:.3f}, kept {len(kept)}; "
                  f"student {before} -> {after}; model in {run.root / 'final'}")
    return result
