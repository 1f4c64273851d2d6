"""Self-training by rejection sampling: sample k per problem, keep the verified-correct ones,
fine-tune, repeat. The simplest form of STaR / ReST-EM / RFT.

Papers:
- STaR (Zelikman et al. 2022, arXiv:2203.14465): keep correct rationales, fine-tune, repeat;
  restarts fine-tuning from the *base* model each iteration.
- ReST-EM (Singh et al. 2023, arXiv:2312.06585): E-step = sample and filter with a binary
  reward, M-step = fine-tune from the base model on the filtered set; a few iterations.
- RFT (Yuan et al. 2023, arXiv:2308.01825): distinct correct reasoning paths (dedup) matter.

Options (all validated at config load):
- `init_each_iteration="base"` is ReST-EM/STaR (M-step from the base weights on the
  current iteration's data); "continue" keeps fine-tuning the latest model (cheaper,
  common in practice).
- `max_kept_per_problem` caps distinct correct rationales per problem (RFT dedup), so easy
  problems do not dominate the training set.

Deviations: fresh problems are drawn each iteration (procedural tasks have unlimited
problems; the papers reuse a fixed training set); rationalization, B-STaR's adaptive
exploration and partial-solution learning are not in this file yet.

Resume: each iteration records its phase in `state.json`; sampled data is saved before
training, so a killed run resumes from the last finished phase of the current iteration.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from reasonloop.algorithms.sft import TrainConfig, fit
from reasonloop.config import dump_config
from reasonloop.evaluate.run import evaluate_model
from reasonloop.models.policy import ModelConfig, load_model
from reasonloop.rollout.engine import TorchEngine
from reasonloop.rollout.sampler import SamplingParams
from reasonloop.store.checkpoint import save_model
from reasonloop.store.jsonl import read_jsonl, write_jsonl
from reasonloop.store.runs import RunDir
from reasonloop.tasks.spec import TaskSpec
from reasonloop.types import Sample
from reasonloop.utils import console, seed_everything


@dataclass
class SelfTrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    task: TaskSpec = field(default_factory=TaskSpec)
    iterations: int = 3
    problems_per_iteration: int = 256
    samples_per_prompt: int = 4
    sampling: SamplingParams = field(default_factory=lambda: SamplingParams(temperature=1.0, max_new_tokens=128))
    max_kept_per_problem: int = 4
    """distinct correct rationales kept per problem"""
    init_each_iteration: Literal["continue", "base"] = "continue"
    """"base": fine-tune from the base model every iteration (ReST-EM, STaR); "continue": from the latest"""
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=2, batch_size=32, micro_batch_size=32))
    eval_problems: int = 200
    """held-out problems scored (greedy) after every iteration; 0 disables"""
    eval_max_new_tokens: int = 128
    run_name: str = "selftrain"
    output_dir: str = "runs"
    seed: int = 0
    resume: bool = False

    def __post_init__(self):
        if self.iterations < 1 or self.problems_per_iteration < 1 or self.samples_per_prompt < 1:
            raise ValueError("iterations, problems_per_iteration and samples_per_prompt must be >= 1")
        if self.max_kept_per_problem < 1:
            raise ValueError("max_kept_per_problem must be >= 1")


def select_correct(samples: list[Sample], max_per_problem: int) -> list[Sample]:
    """Verified-correct samples, distinct texts only, at most `max_per_problem` per problem."""
    kept, seen, per_problem = [], set(), {}
    for s in samples:
        key = (s.problem_id, s.text.strip())
        if not s.correct or key in seen or per_problem.get(s.problem_id, 0) >= max_per_problem:
            continue
        seen.add(key)
        per_problem[s.problem_id] = per_problem.get(s.problem_id, 0) + 1
        kept.append(s)
    return kept


def main(cfg: SelfTrainConfig) -> dict:
    run = RunDir.create(Path(cfg.output_dir) / cfg.run_name, dump_config(cfg), resume=cfg.resume)
    state = (run.load_state() if cfg.resume else None) or {"iteration": 0, "phase": "start"}
    seed_everything(cfg.seed)
    start_path = run.latest_checkpoint() if state["iteration"] > 0 else None
    model, tokenizer = load_model(_with_path(cfg.model, start_path), for_training=True)
    sampler = TorchEngine(model, tokenizer, model_id=cfg.model.path, use_chat_template=cfg.model.use_chat_template,
                          system_prompt=cfg.model.system_prompt)
    eval_task = cfg.task.build(split="test", size=cfg.eval_problems, seed=cfg.seed) if cfg.eval_problems else None

    def evaluate() -> dict:
        if eval_task is None:
            return {}
        results, _ = evaluate_model(sampler, eval_task, list(eval_task), samples_per_prompt=0, temperature=1.0,
                                    max_new_tokens=cfg.eval_max_new_tokens)
        return {"eval/greedy_accuracy": results["greedy_accuracy"], "eval/ci95": results["greedy_ci95"]}

    history = [r for r in run.read_metrics() if r.get("iteration", 10**9) <= state["iteration"]]
    if state["iteration"] == 0 and state["phase"] == "start":
        base = {"iteration": 0, **evaluate()}
        run.log(base)
        history = [base]
        console.print(f"selftrain: base accuracy {base.get('eval/greedy_accuracy', float('nan')):.3f}")

    for it in range(state["iteration"] + 1, cfg.iterations + 1):
        timing: dict[str, float] = {}
        samples_path = run.samples_dir / f"iter_{it:03d}.jsonl"
        # --- sample and verify (skipped when resuming after this phase) ---
        if state == {"iteration": it - 1, "phase": "sampled"} and samples_path.exists():
            samples = read_jsonl(samples_path, Sample)
        else:
            t0 = time.perf_counter()
            task = cfg.task.build(split="train", size=cfg.problems_per_iteration, seed=cfg.seed * 1000 + it)
            problems = list(task)
            params = SamplingParams(**{**vars(cfg.sampling), "seed": cfg.seed * 1000 + it})
            groups = sampler.generate([p.prompt for p in problems], cfg.samples_per_prompt, params)
            samples = []
            for p, group in zip(problems, groups):
                for s in group:
                    s.problem_id = p.id
                    s.rewards["correct"] = task.verify(p, s.text)
                    samples.append(s)
            write_jsonl(samples_path, samples)
            state = {"iteration": it - 1, "phase": "sampled"}
            run.save_state(state)
            timing["time/sample"] = time.perf_counter() - t0
        kept = select_correct(samples, cfg.max_kept_per_problem)
        solved = {s.problem_id for s in kept}
        # --- learn ---
        if cfg.init_each_iteration == "base" and it > 1:
            fresh, _ = load_model(cfg.model, for_training=True)
            model.load_state_dict(fresh.state_dict())
        summary = {}
        if kept:
            summary = fit(model, tokenizer, [(s.prompt, s.text) for s in kept], cfg.train,
                          use_chat_template=cfg.model.use_chat_template, system_prompt=cfg.model.system_prompt,
                          description=f"selftrain iter {it}")
        else:
            console.print(f"[yellow]iteration {it}: no correct samples; nothing to learn from[/yellow]")
        # --- evaluate, checkpoint, log ---
        t0 = time.perf_counter()
        metrics = {
            "iteration": it,
            "samples": len(samples),
            "sample_accuracy": sum(s.correct for s in samples) / len(samples),
            "problems_solved": len(solved) / max(1, len({s.problem_id for s in samples})),
            "kept": len(kept),
            "tokens_generated": sum(s.num_tokens for s in samples),
            "train/loss": summary.get("loss_last"),
            "train/tokens": summary.get("train_tokens", 0),
            "time/train": summary.get("train_seconds", 0.0),
            **evaluate(),
        }
        timing["time/eval"] = time.perf_counter() - t0
        metrics.update(timing)
        ckpt = save_model(run.checkpoint_path(it), model, tokenizer)
        run.mark_latest(ckpt)
        run.log(metrics)
        state = {"iteration": it, "phase": "done"}
        run.save_state(state)
        history.append(metrics)
        console.print(
            f"selftrain iter {it}: sample acc {metrics['sample_accuracy']:.3f}, kept {len(kept)}, "
            f"eval acc {metrics.get('eval/greedy_accuracy', float('nan')):.3f}"
        )
    save_model(run.root / "final", model, tokenizer)
    result = {"iterations": history, "final_model": str(run.root / "final")}
    run.write_json("summary.json", result)
    return result


def _with_path(model_cfg: ModelConfig, path: Path | None) -> ModelConfig:
    return model_cfg if path is None else ModelConfig(**{**vars(model_cfg), "path": str(path)})
