"""`reasonloop search`: run one test-time strategy on held-out problems and grade it.

    reasonloop search model.path=DIR strategy=beam options="{n: 8, beam_width: 4}" scorer.kind=oracle_step

Writes `records.jsonl` (one `EvalRecord` per problem: the selected answer, every
candidate's answer and correctness, tokens / model calls / scorer calls) and
`results.json` (accuracy with its 95% interval, mean tokens, pass@k / maj@k over the
candidates). For grids of task x model x strategy with a report, use `reasonloop eval`
with `strategies:` (docs/evaluation.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reasonloop.config import dump_config
from reasonloop.evaluate.grade import run_strategy
from reasonloop.evaluate.metrics import summarize
from reasonloop.evaluate.run import print_results
from reasonloop.models.policy import ModelConfig
from reasonloop.rollout.factory import SamplerConfig, make_sampler
from reasonloop.search import STRATEGIES, build_strategy_config
from reasonloop.search.scorers import ScorerConfig, make_scorer
from reasonloop.store.jsonl import write_jsonl
from reasonloop.store.runs import RunDir
from reasonloop.tasks.spec import TaskSpec


@dataclass
class SearchConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    """how the model is run: torch (in process), vllm, or openai (a served model; see rollout/factory.py)"""
    task: TaskSpec = field(default_factory=TaskSpec)
    split: str = "test"
    num_problems: int = 100
    seed: int = 0
    strategy: str = "majority"
    """a name from `reasonloop.search.STRATEGIES`"""
    options: dict[str, Any] = field(default_factory=dict)
    """fields of the strategy's config dataclass, e.g. {n: 16, aggregation: min}"""
    scorer: ScorerConfig = field(default_factory=ScorerConfig)
    run_name: str = "search"
    output_dir: str = "runs"

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy: unknown {self.strategy!r}; known: {', '.join(STRATEGIES)}")
        build_strategy_config(self.strategy, self.options, "options")  # validate early, with the key named
        if self.num_problems < 1:
            raise ValueError(f"num_problems must be >= 1, got {self.num_problems}")


def main(cfg: SearchConfig, sampler_factory=None) -> dict:
    """`sampler_factory(cfg.sampler, model) -> Sampler`: `make_sampler`, or Ray rollout workers (`cluster.*`)."""
    task = cfg.task.build(split=cfg.split, size=cfg.num_problems, seed=cfg.seed)
    problems = list(task)
    sampler = (sampler_factory or make_sampler)(cfg.sampler, cfg.model)  # before the run directory: a bad name leaves nothing behind
    run = RunDir.create(Path(cfg.output_dir) / cfg.run_name, dump_config(cfg), resume=True)
    scorer = make_scorer(cfg.scorer, task)
    records, _ = run_strategy(cfg.strategy, cfg.options, problems, task, sampler, scorer)
    results = {"model": cfg.model.path, "task": cfg.task.name, "strategy": cfg.strategy,
               "scorer": cfg.scorer.kind, **summarize(records)}
    write_jsonl(run.root / "records.jsonl", records)
    run.write_json("results.json", results)
    print_results(f"search: {cfg.strategy} on {cfg.task.name}/{cfg.split}", results)
    return results
