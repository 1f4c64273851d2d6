"""Field-standard evaluation: a fixed sampling protocol, avg@k / pass@k / pass^k / maj@k with
standard errors, one results JSON per benchmark and a summary table across benchmarks.

    reasonloop eval protocol=reasoning model.path=runs/grpo/final tasks='[{name: arithmetic}, {name: countdown}]'

Protocols (`PROTOCOLS`):
- `reasoning`: k samples per problem at temperature 0.6, top-p 0.95 (DeepSeek-R1's evaluation
  setting, arXiv:2501.12948 §3; k = `samples_per_prompt`, default 16), reported as avg@k
  (R1's "pass@1"), unbiased pass@j, pass^j and maj@j for j = 1, 2, 4, ..., k;
- `greedy`: one greedy decode per problem (accuracy = avg@1, binomial standard error);
- `custom`: the same report with `temperature`, `top_p` and `samples_per_prompt` as set.
A preset's sampling values are fixed: setting another temperature or top-p with it is a config
error, not silently overridden.

Every benchmark (each of `tasks`, default `task`; any registered task, dataset tasks included)
writes `benchmarks/<task>.json` (protocol, sampling, metrics with standard errors) and
`benchmarks/<task>.records.jsonl` (one `EvalRecord` per problem: every sample's answer and
verdict, so `reasonloop compare` can pair problems); `summary.json` and `summary.md` hold the
table across benchmarks. Works through any `Sampler` (`evaluate_protocol` takes one).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

from reasonloop.evaluate.accuracy import tests_meta
from reasonloop.evaluate.metrics import (
    bootstrap_se,
    maj_at_k,
    pass_at_k,
    pass_hat_k,
    powers_of_two_upto,
    standard_error,
)
from reasonloop.rollout.groups import verify_with_tests
from reasonloop.rollout.sampler import SamplingParams
from reasonloop.search.voting import canonical_answer, majority_vote
from reasonloop.store.atomic import atomic_write_text
from reasonloop.store.jsonl import write_jsonl
from reasonloop.types import EvalRecord


@dataclass(frozen=True)
class Protocol:
    temperature: float | None
    """None: the config's value (custom)"""
    top_p: float | None
    samples: int | None
    """default k (None: the config's)"""


PROTOCOLS: dict[str, Protocol] = {
    "reasoning": Protocol(temperature=0.6, top_p=0.95, samples=16),
    "greedy": Protocol(temperature=0.0, top_p=1.0, samples=1),
    "custom": Protocol(temperature=None, top_p=None, samples=None),
}


def resolve_protocol(name: str, temperature: float | None, top_p: float | None,
                     samples: int | None) -> tuple[float, float, int]:
    """(temperature, top_p, k) of protocol `name`; explicit values must agree with a preset's."""
    preset = PROTOCOLS[name]
    out = []
    for key, given, fixed, default in (("temperature", temperature, preset.temperature, 1.0),
                                       ("top_p", top_p, preset.top_p, 1.0)):
        if fixed is not None and given is not None and given != fixed:
            raise ValueError(f"protocol={name} fixes {key}={fixed}; got {key}={given} (use protocol=custom)")
        out.append(fixed if fixed is not None else (default if given is None else given))
    if name == "greedy" and samples not in (None, 1):
        raise ValueError(f"protocol=greedy decodes once per problem; got samples_per_prompt={samples}")
    k = samples if samples is not None else (preset.samples or 8)
    if k < 1:
        raise ValueError(f"protocol={name} needs samples_per_prompt >= 1, got {k}")
    return out[0], out[1], k


def problem_scores(record: EvalRecord, k: int, seed: int = 0) -> dict[str, float]:
    """The per-problem estimators of one record's i.i.d. samples, for j = 1, 2, 4, ..., k (avg over all n)."""
    n, c = len(record.sample_correct), sum(record.sample_correct)
    out = {f"avg@{k}": c / n}
    for j in powers_of_two_upto(min(k, n)):
        out[f"pass@{j}"] = pass_at_k(n, c, j)
        out[f"pass^{j}"] = pass_hat_k(n, c, j)
        out[f"maj@{j}"] = maj_at_k(record.predictions, record.sample_correct, j, seed)
    return out


def benchmark_metrics(records: list[EvalRecord], seed: int = 0) -> dict[str, dict[str, float]]:
    """Each metric's mean over problems with its CLT standard error and a bootstrap one."""
    k = min(len(r.sample_correct) for r in records)
    per_problem = [problem_scores(r, k, seed) for r in records]
    names = [m for m in per_problem[0] if all(m in p for p in per_problem)]
    out = {}
    for name in names:
        values = [p[name] for p in per_problem]
        out[name] = {"value": sum(values) / len(values), "se": standard_error(values),
                     "bootstrap_se": bootstrap_se(values, seed=seed)}
    return out


def evaluate_protocol(sampler, task, problems, *, protocol: str, temperature: float, top_p: float, k: int,
                      max_new_tokens: int, seed: int = 0) -> tuple[dict, list[EvalRecord]]:
    """Sample k completions per problem with the protocol's settings, grade them, and report."""
    start = time.perf_counter()
    params = SamplingParams(temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                            seed=None if temperature == 0 else seed)
    groups = sampler.generate([p.prompt for p in problems], k, params)
    records = []
    for p, group in zip(problems, groups):
        answers = [canonical_answer(s.text) for s in group]
        verdicts = [verify_with_tests(task, p, s.text) for s in group]
        oks = [value == 1.0 for value, _ in verdicts]
        chosen = majority_vote(answers)
        records.append(EvalRecord(
            problem_id=p.id, task=task.name, strategy=f"{protocol}@{k}", answer=p.answer, selected=chosen,
            correct=chosen is not None and any(a == chosen and ok for a, ok in zip(answers, oks)),
            predictions=answers, sample_correct=oks, tokens=sum(s.num_tokens for s in group), model_calls=k,
            model_id=group[0].model_id if group else "",
            meta={"iid_candidates": True, "finish_reasons": [s.finish_reason for s in group],
                  **tests_meta([tests for _, tests in verdicts])}))
    results = {
        "benchmark": task.name, "protocol": protocol, "temperature": temperature, "top_p": top_p, "samples": k,
        "max_new_tokens": max_new_tokens, "seed": seed, "num_problems": len(problems),
        "metrics": benchmark_metrics(records, seed),
        "tokens_per_problem": sum(r.tokens for r in records) / max(1, len(records)),
        "truncated_frac": sum(f == "length" for r in records for f in r.meta["finish_reasons"])
        / max(1, len(records) * k),
        "seconds": time.perf_counter() - start,
    }
    return results, records


def slug(text: str) -> str:
    return re.sub(r"[^\w.=-]+", "_", text).strip("_")[:120] or "task"


def headline(results: dict) -> list[str]:
    """The summary columns of one benchmark: avg@k, pass@k and maj@k at the largest k, pass^k likewise."""
    k = max(int(m.split("@")[1]) for m in results["metrics"] if m.startswith("pass@"))
    n = results["samples"]
    return [f"avg@{n}", f"pass@{k}", f"maj@{k}", f"pass^{k}"]


def summary_markdown(all_results: list[dict]) -> str:
    """One row per benchmark (value ± standard error), plus the unweighted mean over benchmarks."""
    columns = headline(all_results[0])  # one protocol and k for every benchmark: the same columns
    lines = [f"| benchmark | problems | {' | '.join(columns)} |", "|---" * (len(columns) + 2) + "|"]
    for r in all_results:
        cells = [f"{r['metrics'][c]['value']:.3f} ± {r['metrics'][c]['se']:.3f}" for c in columns]
        lines.append(f"| {r['benchmark']} | {r['num_problems']} | {' | '.join(cells)} |")
    if len(all_results) > 1:
        cells = []
        for c in columns:
            mean = sum(r["metrics"][c]["value"] for r in all_results) / len(all_results)
            se = sum(r["metrics"][c]["se"] ** 2 for r in all_results) ** 0.5 / len(all_results)
            cells.append(f"{mean:.3f} ± {se:.3f}")
        lines.append(f"| mean over benchmarks | {sum(r['num_problems'] for r in all_results)} | {' | '.join(cells)} |")
    first = all_results[0]
    return (f"# Evaluation: protocol {first['protocol']} (temperature {first['temperature']}, top-p {first['top_p']}, "
            f"{first['samples']} samples per problem)\n\nvalue ± standard error over problems\n\n"
            + "\n".join(lines) + "\n")


def run_benchmarks(cfg, sampler, root: Path) -> dict:
    """Every benchmark of `cfg` (an `EvalConfig` with a protocol) through `sampler`; writes the files."""
    from reasonloop.store.atomic import atomic_write_json
    from reasonloop.utils import console

    temperature, top_p, k = cfg.temperature, cfg.top_p, cfg.samples_per_prompt  # resolved by EvalConfig
    all_results = []
    for spec in cfg.tasks or [cfg.task]:
        task = spec.build(split=cfg.split, size=cfg.num_problems, seed=cfg.seed)
        results, records = evaluate_protocol(sampler, task, list(task), protocol=cfg.protocol,
                                             temperature=temperature, top_p=top_p, k=k,
                                             max_new_tokens=cfg.max_new_tokens, seed=cfg.seed)
        results = {"model": cfg.model.path, "split": cfg.split, **results}
        name = slug(spec.name)
        write_jsonl(root / "benchmarks" / f"{name}.records.jsonl", records)
        atomic_write_json(root / "benchmarks" / f"{name}.json", results)
        all_results.append(results)
        top = headline(results)[0]
        console.print(f"eval {spec.name}: {top} {results['metrics'][top]['value']:.3f} "
                      f"± {results['metrics'][top]['se']:.3f} ({len(records)} problems)")
    summary = summary_markdown(all_results)
    atomic_write_text(root / "summary.md", summary)
    atomic_write_json(root / "summary.json", {"benchmarks": all_results})
    console.print(summary, highlight=False, markup=False)
    return {"benchmarks": all_results}
