"""`reasonloop eval`: greedy accuracy, maj@k and pass@k of a model on held-out problems,
or a grid of task x model x test-time strategy with a report.

Default (no `strategies:`): greedy accuracy plus maj@k / pass@k over `samples_per_prompt`
samples; writes `records.jsonl` (one `EvalRecord` per problem and strategy),
`results.json`, and prints a table (`evaluate.accuracy.evaluate_model`, the same evaluation as a
function, is what the training loops and the quickstart use to score checkpoints).

Grid (`strategies:` set, optionally `tasks:` and `models:`): every cell runs one
strategy of `reasonloop.search` and writes `cells/<task>__<model>__<label>.jsonl`
(its `EvalRecord`s); a killed grid resumes by skipping finished cells. `results.json`
holds each cell's metrics (`evaluate.metrics.summarize`) and `report.md` a table plus
one accuracy-vs-tokens plot per task x model (`evaluate.report`). See docs/evaluation.md.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from reasonloop.config import dump_config
from reasonloop.envs import EnvSpec, Limits, build_env
from reasonloop.evaluate.accuracy import evaluate_model
from reasonloop.evaluate.grade import run_strategy
from reasonloop.models.policy import ModelConfig
from reasonloop.rollout.factory import SamplerConfig, make_sampler
from reasonloop.search.scorers import ScorerConfig
from reasonloop.store.jsonl import write_jsonl
from reasonloop.store.runs import RunDir
from reasonloop.tasks.spec import TaskSpec
from reasonloop.types import EvalRecord
from reasonloop.utils import console


@dataclass
class StrategySpec:
    """One column of the grid: a search strategy with its options and scorer."""

    name: str = "greedy"
    """a name from `reasonloop.search.STRATEGIES`"""
    options: dict = field(default_factory=dict)
    """fields of the strategy's config dataclass, e.g. {n: 8}"""
    scorer: ScorerConfig = field(default_factory=ScorerConfig)
    label: str = ""
    """row name in the report (default: name, scorer and options)"""
    line: str = ""
    """plot line this point belongs to (default: name + scorer)"""

    def __post_init__(self):
        from reasonloop.search import build_strategy_config

        build_strategy_config(self.name, self.options, f"strategies[{self.name}].options")

    @property
    def line_name(self) -> str:
        return self.line or (self.name if self.scorer.kind == "none" else f"{self.name} [{self.scorer.kind}]")

    @property
    def label_name(self) -> str:
        opts = ",".join(f"{k}={v}" for k, v in self.options.items())
        return self.label or (self.line_name + (f" ({opts})" if opts else ""))


@dataclass
class EvalConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    """how the model is run: torch (in process), vllm, or openai (a served model; see rollout/factory.py)"""
    task: TaskSpec = field(default_factory=TaskSpec)
    split: str = "test"
    num_problems: int = 200
    seed: int = 0
    protocol: Literal["none", "reasoning", "greedy", "custom"] = "none"
    """none: greedy + maj@k/pass@k report below; reasoning (k samples at T 0.6, top-p 0.95), greedy or custom:
    the field-standard report (avg@k, pass@k, pass^k, maj@k with standard errors) per benchmark of `tasks`
    (`evaluate.standard`)"""
    samples_per_prompt: int | None = None
    """k of maj@k and pass@k; 0 evaluates greedy decoding only (None: 8, or the protocol's k)"""
    temperature: float | None = None
    """sampling temperature of the k samples (None: 1.0, or the protocol's)"""
    top_p: float | None = None
    """nucleus sampling of the k samples (None: 1.0, or the protocol's)"""
    max_new_tokens: int = 128
    run_name: str = "eval"
    output_dir: str = "runs"
    strategies: list[StrategySpec] = field(default_factory=list)
    """test-time strategies to grid over; empty = the default greedy + maj@k/pass@k evaluation"""
    tasks: list[TaskSpec] = field(default_factory=list)
    """grid tasks (default: `task`)"""
    models: list[ModelConfig] = field(default_factory=list)
    """grid models (default: `model`)"""
    env: EnvSpec = field(default_factory=lambda: EnvSpec(name=""))
    """a multi-turn environment (name from `envs.ENVS`, or a task name with options.tools) instead of `task`:
    episodes are scored by the environment; turns, tool calls and error counts are reported
    (`evaluate.env_eval`); "": the single-turn `task`"""
    turn_limits: Limits = field(default_factory=Limits)
    """with `env`: per-episode limits (turns, tokens); `max_new_tokens` bounds each turn"""

    def __post_init__(self):
        if self.protocol != "none":
            from reasonloop.evaluate.standard import resolve_protocol

            self.temperature, self.top_p, self.samples_per_prompt = resolve_protocol(
                self.protocol, self.temperature, self.top_p, self.samples_per_prompt)
            if self.strategies:
                raise ValueError("protocol and strategies are two kinds of eval: set one of them")
        else:
            self.temperature = 1.0 if self.temperature is None else self.temperature
            self.top_p = 1.0 if self.top_p is None else self.top_p
            self.samples_per_prompt = 8 if self.samples_per_prompt is None else self.samples_per_prompt
        if self.num_problems < 1 or self.samples_per_prompt < 0:
            raise ValueError("num_problems must be >= 1 and samples_per_prompt >= 0")
        if self.top_p != 1.0 and self.protocol == "none":
            raise ValueError("top_p applies to the protocol report: set protocol=custom (or reasoning)")
        if self.env.name and (self.strategies or self.tasks or self.models):
            raise ValueError("env: evaluates one model on one environment; strategies, tasks and models (grids) "
                             "do not apply")
        labels = [s.label_name for s in self.strategies]
        if len(set(labels)) != len(labels):
            raise ValueError(f"strategies: two entries share a label {labels}; set `label:` to tell them apart")


def print_results(title: str, results: dict) -> None:
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in results.items():
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    console.print(table)


def main(cfg: EvalConfig, sampler_factory=None) -> dict:
    """`sampler_factory(cfg.sampler, model) -> Sampler`: `make_sampler`, or Ray rollout workers (`cluster.*`)."""
    if cfg.env.name:
        return run_env(cfg, sampler_factory)
    if cfg.strategies:
        return run_grid(cfg, sampler_factory)
    if cfg.protocol != "none":
        sampler = (sampler_factory or make_sampler)(cfg.sampler, cfg.model)
        run = RunDir.create(Path(cfg.output_dir) / cfg.run_name, dump_config(cfg), resume=True)
        from reasonloop.evaluate.standard import run_benchmarks

        return run_benchmarks(cfg, sampler, run.root)
    task = cfg.task.build(split=cfg.split, size=cfg.num_problems, seed=cfg.seed)
    problems = list(task)
    sampler = (sampler_factory or make_sampler)(cfg.sampler, cfg.model)  # before the run directory: a bad name leaves nothing behind
    run = RunDir.create(Path(cfg.output_dir) / cfg.run_name, dump_config(cfg), resume=True)
    results, records = evaluate_model(sampler, task, problems, samples_per_prompt=cfg.samples_per_prompt,
                                      temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens, seed=cfg.seed)
    results = {"model": cfg.model.path, "task": cfg.task.name, **results}
    write_jsonl(run.root / "records.jsonl", records)
    run.write_json("results.json", results)
    print_results(f"eval: {cfg.model.path} on {cfg.task.name}/{cfg.split}", results)
    return results


def run_env(cfg: EvalConfig, sampler_factory=None) -> dict:
    """Greedy and sampled episodes of `cfg.env` (`evaluate.env_eval`); writes records, trajectories, results."""
    from reasonloop.evaluate.env_eval import evaluate_env_model
    from reasonloop.rollout.multiturn_api import multiturn_runner

    task, make_env = build_env(cfg.env, cfg.split, cfg.num_problems, cfg.seed)
    problems = list(task)
    sampler = (sampler_factory or make_sampler)(cfg.sampler, cfg.model)
    runner = multiturn_runner(sampler)
    run = RunDir.create(Path(cfg.output_dir) / cfg.run_name, dump_config(cfg), resume=True)
    results, records, trajectories = evaluate_env_model(
        runner, task, problems, make_env, limits=cfg.turn_limits, samples_per_prompt=cfg.samples_per_prompt,
        temperature=cfg.temperature, top_p=cfg.top_p, max_new_tokens=cfg.max_new_tokens, seed=cfg.seed)
    results = {"model": cfg.model.path, "env": cfg.env.name, "split": cfg.split, **results}
    write_jsonl(run.root / "records.jsonl", records)
    write_jsonl(run.root / "trajectories.jsonl", [t.to_sample() for t in trajectories])
    run.write_json("results.json", results)
    print_results(f"eval: {cfg.model.path} on env {cfg.env.name}/{cfg.split}", results)
    return results


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.=" else "_" for c in text).strip("_")[:120]


def run_grid(cfg: EvalConfig, sampler_factory=None) -> dict:
    """Every task x model x strategy cell; finished cells (their JSONL exists) are reused."""
    from reasonloop.evaluate.metrics import summarize
    from reasonloop.evaluate.report import write_report
    from reasonloop.search.scorers import make_scorer
    from reasonloop.store.jsonl import read_jsonl

    run = RunDir.create(Path(cfg.output_dir) / cfg.run_name, dump_config(cfg), resume=True)
    cells_dir = run.root / "cells"
    cells_dir.mkdir(exist_ok=True)
    cells = []
    for task_spec in cfg.tasks or [cfg.task]:
        task = task_spec.build(split=cfg.split, size=cfg.num_problems, seed=cfg.seed)
        problems = list(task)
        for model_cfg in cfg.models or [cfg.model]:
            sampler = None
            for spec in cfg.strategies:
                model_name = Path(model_cfg.path).name or model_cfg.path
                path = cells_dir / f"{_slug(task_spec.label)}__{_slug(model_name)}__{_slug(spec.label_name)}.jsonl"
                if path.exists():
                    records = read_jsonl(path, EvalRecord)
                else:
                    sampler = sampler or (sampler_factory or make_sampler)(cfg.sampler, model_cfg)
                    start = time.perf_counter()
                    records, _ = run_strategy(spec.name, spec.options, problems, task, sampler,
                                              make_scorer(spec.scorer, task), label=spec.label_name)
                    for r in records:
                        r.meta["seconds"] = (time.perf_counter() - start) / len(records)
                    write_jsonl(path, records)
                cell = {"task": task_spec.label, "model": model_cfg.path, "strategy": spec.name,
                        "label": spec.label_name, "line": spec.line_name, "scorer": spec.scorer.kind,
                        "options": spec.options, **summarize(records),
                        "seconds_per_problem": sum(r.meta.get("seconds", 0.0) for r in records) / len(records)}
                cells.append(cell)
                console.print(f"{cell['task']} | {model_name} | {cell['label']}: accuracy {cell['accuracy']:.3f} "
                              f"± {cell['accuracy_ci95']:.3f}, {cell['tokens_per_problem']:.0f} tokens/problem")
    results = {"split": cfg.split, "num_problems": cfg.num_problems, "seed": cfg.seed, "cells": cells}
    run.write_json("results.json", results)
    write_report(run.root, cells)
    return results
