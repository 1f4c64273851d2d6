"""`reasonloop compare RUN_A RUN_B`: does B beat A on the same problems, beyond noise?

Reads each run's per-problem records (`benchmarks/<task>.records.jsonl` of a protocol eval,
or `records.jsonl` of the default eval), pairs problems by (task, problem id), scores each
problem with `metric` and tests the per-problem differences B - A:

- paired bootstrap over problems (`evaluate.metrics.paired_bootstrap`, 10,000 resamples,
  seeded): mean difference, 95% percentile interval, two-sided p-value;
- exact McNemar (sign test on discordant problems) as well when every score is 0 or 1
  (greedy accuracy, maj@k of a single vote).
The verdict is "B beats A" when the paired bootstrap's p < `alpha` and the difference is
positive ("A beats B" when negative), else "no significant difference". Per benchmark, and
pooled over all paired problems when there are several benchmarks.

`metric`: avg (avg@k over all samples; default for sampled runs), pass@j, pass^j, maj@j
(j <= the samples per problem), or greedy (the default eval's greedy answers).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from reasonloop.evaluate.metrics import mcnemar_exact, paired_bootstrap
from reasonloop.evaluate.standard import problem_scores
from reasonloop.store.jsonl import read_jsonl
from reasonloop.types import EvalRecord


@dataclass
class CompareConfig:
    runs: list[str] = field(default_factory=list)
    """two eval run directories: A (baseline) then B"""
    metric: str = "avg"
    """avg | pass@j | pass^j | maj@j | greedy"""
    alpha: float = 0.05
    reps: int = 10000
    """bootstrap resamples"""
    seed: int = 0
    output: str = ""
    """also write the comparison as JSON here"""

    def __post_init__(self):
        if len(self.runs) != 2:
            raise ValueError(f"compare takes two runs (A then B), got {len(self.runs)}: {self.runs}")
        if not 0 < self.alpha < 1 or self.reps < 100:
            raise ValueError("alpha must be in (0, 1) and reps >= 100")
        head, _, j = self.metric.partition("@")
        if self.metric not in ("avg", "greedy") and not (head in ("pass", "maj") and j.isdigit()) \
                and not (self.metric.startswith("pass^") and self.metric[5:].isdigit()):
            raise ValueError(f"metric must be avg, greedy, pass@j, pass^j or maj@j, got {self.metric!r}")


def load_records(run: str | Path, metric: str) -> dict[tuple[str, str], EvalRecord]:
    """(task, problem id) -> the record `metric` is scored on, from a protocol or a default eval run."""
    root = Path(run)
    files = sorted((root / "benchmarks").glob("*.records.jsonl")) or ([root / "records.jsonl"]
                                                                      if (root / "records.jsonl").exists() else [])
    if not files:
        raise FileNotFoundError(f"{root}: no eval records (benchmarks/*.records.jsonl or records.jsonl); "
                                "run `reasonloop eval` with output_dir/run_name pointing here")
    out: dict[tuple[str, str], EvalRecord] = {}
    for path in files:
        for r in read_jsonl(path, EvalRecord):
            greedy = r.strategy == "greedy"
            if (metric == "greedy") == greedy:  # greedy scores greedy answers, the others the sampled ones
                out[(r.task, r.problem_id)] = r
    if not out:
        raise ValueError(f"{root}: no records to score {metric!r} on ("
                         + ("no greedy answers)" if metric == "greedy" else "no sampled answers; try metric=greedy)"))
    return out


def score(record: EvalRecord, metric: str, seed: int = 0) -> float:
    """One problem's value of `metric`."""
    if metric == "greedy":
        return float(record.correct)
    if metric == "avg":
        return sum(record.sample_correct) / len(record.sample_correct)
    j = int(metric.split("@")[-1].split("^")[-1])
    if j > len(record.sample_correct):
        raise ValueError(f"metric {metric} needs {j} samples per problem; {record.problem_id} has "
                         f"{len(record.sample_correct)}")
    return problem_scores(record, j, seed)[metric]


def verdict(test: dict, alpha: float) -> str:
    if test["p_value"] < alpha and test["mean_diff"] > 0:
        return "B beats A"
    if test["p_value"] < alpha and test["mean_diff"] < 0:
        return "A beats B"
    return "no significant difference"


def compare(cfg: CompareConfig) -> dict:
    """Per-benchmark and pooled paired tests of B against A."""
    a, b = (load_records(run, cfg.metric) for run in cfg.runs)
    shared = sorted(set(a) & set(b))
    if not shared:
        raise ValueError(f"no problem is in both runs ({len(a)} in A, {len(b)} in B): compare needs the same "
                         "benchmarks with the same split, seed and num_problems")
    tasks = sorted({t for t, _ in shared})
    groups = {t: [k for k in shared if k[0] == t] for t in tasks}
    if len(tasks) > 1:
        groups["all benchmarks"] = shared
    rows = []
    for name, keys in groups.items():
        xs = [score(a[k], cfg.metric, cfg.seed) for k in keys]
        ys = [score(b[k], cfg.metric, cfg.seed) for k in keys]
        test = paired_bootstrap(xs, ys, cfg.reps, cfg.seed)
        row = {"benchmark": name, "num_problems": len(keys), "a": sum(xs) / len(xs), "b": sum(ys) / len(ys),
               **test, "test": "paired bootstrap over problems"}
        if all(v in (0.0, 1.0) for v in xs + ys):
            row["mcnemar"] = mcnemar_exact([v == 1.0 for v in xs], [v == 1.0 for v in ys])
        row["verdict"] = verdict(test, cfg.alpha)
        rows.append(row)
    return {"run_a": cfg.runs[0], "run_b": cfg.runs[1], "metric": cfg.metric, "alpha": cfg.alpha,
            "only_in_a": len(set(a) - set(b)), "only_in_b": len(set(b) - set(a)), "benchmarks": rows}


def main(cfg: CompareConfig) -> dict:
    import sys

    from reasonloop.store.jsonl import RecordError
    from reasonloop.utils import console

    try:
        result = compare(cfg)
    except (FileNotFoundError, ValueError, RecordError) as e:  # bad input: one line, exit status 2
        print(f"reasonloop compare: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    metric = "avg@k" if cfg.metric == "avg" else cfg.metric
    console.print(f"A = {cfg.runs[0]}\nB = {cfg.runs[1]}\n{metric}, paired bootstrap over the same problems "
                  f"({cfg.reps} resamples), alpha {cfg.alpha}:", highlight=False, markup=False)
    for r in result["benchmarks"]:
        mcnemar = f", McNemar exact p={r['mcnemar']['p_value']:.3g}" if "mcnemar" in r else ""
        console.print(f"  {r['benchmark']}: A {r['a']:.3f}, B {r['b']:.3f}, B - A {r['mean_diff']:+.3f} "
                      f"[{r['ci95'][0]:+.3f}, {r['ci95'][1]:+.3f}], p={r['p_value']:.3g}{mcnemar} "
                      f"(n={r['num_problems']}): {r['verdict']}", highlight=False, markup=False)
    if result["only_in_a"] or result["only_in_b"]:
        console.print(f"  unpaired problems left out: {result['only_in_a']} only in A, {result['only_in_b']} only in B",
                      highlight=False, markup=False)
    if cfg.output:
        from reasonloop.store.atomic import atomic_write_text

        atomic_write_text(cfg.output, json.dumps(result, indent=2) + "\n")
    return result
