"""`reasonloop eval`: greedy accuracy, maj@k and pass@k of a model on held-out problems.

Writes `records.jsonl` (one `EvalRecord` per problem and strategy), `results.json`, and
prints a table. `evaluate_model()` is the same evaluation as a function, used by the
training loops and the quickstart to score checkpoints.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from reasonloop.config import dump_config
from reasonloop.evaluate.metrics import canonical_answer, majority_vote, mean_ci95, pass_at_k
from reasonloop.models.policy import ModelConfig
from reasonloop.rollout.sampler import SamplingParams
from reasonloop.store.jsonl import write_jsonl
from reasonloop.store.runs import RunDir
from reasonloop.tasks.spec import TaskSpec
from reasonloop.types import EvalRecord
from reasonloop.utils import console


@dataclass
class EvalConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    task: TaskSpec = field(default_factory=TaskSpec)
    split: str = "test"
    num_problems: int = 200
    seed: int = 0
    samples_per_prompt: int = 8
    """k of maj@k and pass@k; 0 evaluates greedy decoding only"""
    temperature: float = 1.0
    """sampling temperature of the k samples"""
    max_new_tokens: int = 128
    run_name: str = "eval"
    output_dir: str = "runs"

    def __post_init__(self):
        if self.num_problems < 1 or self.samples_per_prompt < 0:
            raise ValueError("num_problems must be >= 1 and samples_per_prompt >= 0")


def evaluate_model(sampler, task, problems, *, samples_per_prompt: int, temperature: float,
                   max_new_tokens: int, seed: int = 0) -> tuple[dict, list[EvalRecord]]:
    """Greedy accuracy (+ maj@k, pass@1, pass@k over `samples_per_prompt` samples)."""
    start = time.perf_counter()
    prompts = [p.prompt for p in problems]
    greedy = sampler.generate(prompts, 1, SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens))
    records = []
    for p, (s,) in zip(problems, greedy):
        ok = task.verify(p, s.text) == 1.0
        records.append(EvalRecord(problem_id=p.id, task=task.name, strategy="greedy", answer=p.answer,
                                  selected=canonical_answer(s.text), correct=ok, predictions=[canonical_answer(s.text)],
                                  sample_correct=[ok], tokens=s.num_tokens, model_calls=1, model_id=s.model_id))
    results = {"num_problems": len(problems)}
    acc, ci = mean_ci95([float(r.correct) for r in records])
    results.update({"greedy_accuracy": acc, "greedy_ci95": ci,
                    "greedy_tokens_per_problem": sum(r.tokens for r in records) / len(records)})
    k = samples_per_prompt
    if k > 0:
        groups = sampler.generate(prompts, k, SamplingParams(temperature=temperature, max_new_tokens=max_new_tokens,
                                                             seed=seed))
        vote_rows, p1, pk = [], [], []
        for p, group in zip(problems, groups):
            answers = [canonical_answer(s.text) for s in group]
            oks = [task.verify(p, s.text) == 1.0 for s in group]
            chosen = majority_vote(answers)
            chosen_ok = chosen is not None and any(a == chosen and o for a, o in zip(answers, oks))
            vote_rows.append(EvalRecord(problem_id=p.id, task=task.name, strategy=f"maj@{k}", answer=p.answer,
                                        selected=chosen, correct=chosen_ok, predictions=answers, sample_correct=oks,
                                        tokens=sum(s.num_tokens for s in group), model_calls=k,
                                        model_id=group[0].model_id))
            p1.append(pass_at_k(k, sum(oks), 1))
            pk.append(pass_at_k(k, sum(oks), k))
        records += vote_rows
        maj, maj_ci = mean_ci95([float(r.correct) for r in vote_rows])
        results.update({f"maj@{k}": maj, f"maj@{k}_ci95": maj_ci, "pass@1": sum(p1) / len(p1),
                        f"pass@{k}": sum(pk) / len(pk),
                        f"maj@{k}_tokens_per_problem": sum(r.tokens for r in vote_rows) / len(vote_rows)})
    results["tokens_generated"] = sum(r.tokens for r in records)
    results["eval_seconds"] = time.perf_counter() - start
    return results, records


def print_results(title: str, results: dict) -> None:
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in results.items():
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    console.print(table)


def main(cfg: EvalConfig) -> dict:
    from reasonloop.rollout.engine import TorchEngine

    run = RunDir.create(Path(cfg.output_dir) / cfg.run_name, dump_config(cfg), resume=True)
    task = cfg.task.build(split=cfg.split, size=cfg.num_problems, seed=cfg.seed)
    problems = list(task)
    sampler = TorchEngine.from_config(cfg.model)
    results, records = evaluate_model(sampler, task, problems, samples_per_prompt=cfg.samples_per_prompt,
                                      temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens, seed=cfg.seed)
    results = {"model": cfg.model.path, "task": cfg.task.name, **results}
    write_jsonl(run.root / "records.jsonl", records)
    run.write_json("results.json", results)
    print_results(f"eval: {cfg.model.path} on {cfg.task.name}/{cfg.split}", results)
    return results
