"""Field-standard evaluation: the estimators by hand, the protocol presets, the per-benchmark files,
and `reasonloop compare`'s paired tests."""

import json
import math

import pytest

from reasonloop.config import ConfigError, load_config
from reasonloop.evaluate.compare import CompareConfig, compare
from reasonloop.evaluate.metrics import (
    bootstrap_se,
    maj_at_k,
    mcnemar_exact,
    paired_bootstrap,
    pass_at_k,
    pass_hat_k,
    standard_error,
)
from reasonloop.evaluate.run import EvalConfig
from reasonloop.evaluate.standard import (
    benchmark_metrics,
    evaluate_protocol,
    resolve_protocol,
    summary_markdown,
)
from reasonloop.store.jsonl import write_jsonl
from reasonloop.tasks import make_task
from reasonloop.types import EvalRecord, Sample


def test_pass_hat_k_and_pass_at_k_by_hand():
    # n = 5, c = 3: pass^2 = C(3,2)/C(5,2) = 3/10; pass@2 = 1 - C(2,2)/C(5,2) = 9/10
    assert pass_hat_k(5, 3, 2) == pytest.approx(0.3) and pass_at_k(5, 3, 2) == pytest.approx(0.9)
    assert pass_hat_k(5, 3, 1) == pass_at_k(5, 3, 1) == pytest.approx(0.6)  # both are avg@n at k = 1
    assert pass_hat_k(5, 3, 4) == 0.0 and pass_at_k(5, 3, 4) == 1.0


def test_maj_at_k_averages_every_subset_and_samples_many():
    answers, oks = ["7", "7", "3", None], [True, True, False, False]
    # k = 2, 6 pairs: {7,7} right; {7,3} x2 tie -> first (7) right; {7,None} x2 right; {3,None} wrong -> 5/6
    assert maj_at_k(answers, oks, 2) == pytest.approx(5 / 6)
    assert maj_at_k(answers, oks, 4) == 1.0 and maj_at_k(answers, oks, 1) == 0.5
    many = ["1"] * 15 + ["2"] * 15  # C(30, 15) subsets: estimated from 2000 seeded random ones
    got = maj_at_k(many, [True] * 15 + [False] * 15, 15, seed=1)
    assert 0.4 < got < 0.75 and got == maj_at_k(many, [True] * 15 + [False] * 15, 15, seed=1)


def test_standard_errors_and_paired_tests_by_hand():
    values = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0]  # p = 5/8: sd sqrt(15/56), se = that / sqrt(8)
    assert standard_error(values) == pytest.approx(math.sqrt(15 / 56) / math.sqrt(8))
    assert bootstrap_se(values, reps=4000) == pytest.approx(math.sqrt(0.625 * 0.375 / 8), rel=0.1)
    a, b = [0.0] * 20 + [1.0] * 20, [1.0] * 12 + [0.0] * 8 + [1.0] * 20  # B right on 12 more, never worse
    test = paired_bootstrap(a, b, reps=2000)
    assert test["mean_diff"] == pytest.approx(0.3) and test["ci95"][0] > 0 and test["p_value"] < 0.01
    assert mcnemar_exact([x == 1 for x in a], [y == 1 for y in b]) == {"b_only": 12, "a_only": 0,
                                                                      "p_value": 2 / 2 ** 12}
    same = paired_bootstrap(a, a[::-1], reps=2000)  # same total, discordant both ways
    assert same["mean_diff"] == 0 and same["p_value"] == 1.0


def test_protocol_presets_fix_their_sampling_and_reject_conflicts():
    assert resolve_protocol("reasoning", None, None, None) == (0.6, 0.95, 16)
    assert resolve_protocol("reasoning", 0.6, None, 4) == (0.6, 0.95, 4)
    assert resolve_protocol("greedy", None, None, None) == (0.0, 1.0, 1)
    assert resolve_protocol("custom", 0.8, 0.9, None) == (0.8, 0.9, 8)
    cfg = load_config(EvalConfig, overrides=["protocol=reasoning", "samples_per_prompt=4"])
    assert (cfg.temperature, cfg.top_p, cfg.samples_per_prompt) == (0.6, 0.95, 4)
    with pytest.raises(ConfigError, match="protocol=reasoning fixes temperature=0.6; got temperature=1.0"):
        load_config(EvalConfig, overrides=["protocol=reasoning", "temperature=1.0"])
    with pytest.raises(ConfigError, match="greedy decodes once"):
        load_config(EvalConfig, overrides=["protocol=greedy", "samples_per_prompt=8"])
    legacy = load_config(EvalConfig)  # no protocol: the default eval as before
    assert (legacy.temperature, legacy.samples_per_prompt, legacy.top_p) == (1.0, 8, 1.0)


class AnswerSampler:
    """Answers each prompt's k samples from a script: True -> the right answer, False -> a wrong one."""

    model_id = "scripted"

    def __init__(self, task, script):
        self.task, self.script, self.calls = task, script, []

    def generate(self, prompts, samples_per_prompt=1, params=None, prefixes=None):
        self.calls.append(params)
        by_prompt = {self.task[i].prompt: self.task[i] for i in range(len(self.task))}
        out = []
        for prompt in prompts:
            p = by_prompt[prompt]
            oks = self.script[p.id][:samples_per_prompt]
            out.append([Sample(p.id, prompt, f"Answer: {p.answer if ok else int(p.answer) + 1 + j % 2}",
                               token_ids=[1, 2, 3], finish_reason="eos") for j, ok in enumerate(oks)])
        return out


def test_evaluate_protocol_reports_every_estimator_with_errors(tmp_path):
    task = make_task("arithmetic", split="test", size=3, seed=0)
    ids = [task[i].id for i in range(3)]
    script = {ids[0]: [True, True, True, True], ids[1]: [True, False, False, False], ids[2]: [False] * 4}
    sampler = AnswerSampler(task, script)
    results, records = evaluate_protocol(sampler, task, list(task), protocol="reasoning", temperature=0.6,
                                         top_p=0.95, k=4, max_new_tokens=16, seed=3)
    assert (sampler.calls[0].temperature, sampler.calls[0].top_p, sampler.calls[0].seed) == (0.6, 0.95, 3)
    m = results["metrics"]
    assert m["avg@4"]["value"] == pytest.approx((1 + 0.25 + 0) / 3)
    assert m["avg@4"]["se"] == pytest.approx(standard_error([1.0, 0.25, 0.0]))
    assert m["pass@4"]["value"] == pytest.approx(2 / 3) and m["pass^2"]["value"] == pytest.approx(1 / 3)
    # problem 1: one right answer and three wrong ones split 2/1 between two values -> maj@4 wrong
    assert m["maj@4"]["value"] == pytest.approx(1 / 3) and m["maj@1"]["value"] == pytest.approx(m["avg@4"]["value"])
    assert [r.sample_correct for r in records] == [script[i] for i in ids]
    assert results["num_problems"] == 3 and results["tokens_per_problem"] == 12
    table = summary_markdown([results, {**results, "benchmark": "other"}])
    assert "| arithmetic | 3 | 0.417 ± 0.300 |" in table and "| mean over benchmarks | 6 |" in table


def records(task, oks_by_problem, strategy="reasoning"):
    return [EvalRecord(problem_id=pid, task=task, strategy=strategy, answer="1", selected=None,
                       correct=all(oks), predictions=["1" if ok else "2" for ok in oks], sample_correct=oks)
            for pid, oks in oks_by_problem.items()]


def test_compare_pairs_problems_and_says_who_wins(tmp_path):
    a = {f"p{i}": [i % 2 == 0, False] for i in range(40)}  # avg 0.25
    b = {f"p{i}": [i % 2 == 0, i < 30] for i in range(40)}  # same, plus right on 30 second samples
    for run, oks in (("A", a), ("B", b)):
        write_jsonl(tmp_path / run / "benchmarks" / "arith.records.jsonl", records("arith", oks))
        write_jsonl(tmp_path / run / "benchmarks" / "count.records.jsonl", records("count", a))
    result = compare(CompareConfig(runs=[str(tmp_path / "A"), str(tmp_path / "B")], reps=2000))
    arith, count, pooled = result["benchmarks"]
    assert arith["benchmark"] == "arith" and arith["mean_diff"] == pytest.approx(30 / 80)
    assert arith["verdict"] == "B beats A" and count["verdict"] == "no significant difference"
    assert pooled["benchmark"] == "all benchmarks" and pooled["num_problems"] == 80
    maj = compare(CompareConfig(runs=[str(tmp_path / "B"), str(tmp_path / "A")], metric="pass@2", reps=2000))
    assert maj["benchmarks"][0]["verdict"] == "A beats B" and "mcnemar" in maj["benchmarks"][0]
    with pytest.raises(ValueError, match="needs 4 samples"):
        compare(CompareConfig(runs=[str(tmp_path / "A"), str(tmp_path / "B")], metric="maj@4"))
    with pytest.raises(ValueError, match="no problem is in both runs"):
        write_jsonl(tmp_path / "C" / "records.jsonl", records("arith", {"q": [True]}, strategy="maj@1"))
        compare(CompareConfig(runs=[str(tmp_path / "A"), str(tmp_path / "C")]))


def test_eval_command_with_a_protocol_writes_a_json_per_benchmark_and_a_summary(tiny_model_dir, tmp_path):
    from reasonloop.evaluate.run import main

    cfg = load_config(EvalConfig, overrides=[f"model.path={tiny_model_dir}", "protocol=reasoning", "samples_per_prompt=2",
                                             "num_problems=3", "max_new_tokens=8", f"output_dir={tmp_path}",
                                             "run_name=ev", "tasks=[{name: arithmetic}, {name: countdown}]"])
    out = main(cfg)
    assert [r["benchmark"] for r in out["benchmarks"]] == ["arithmetic", "countdown"]
    saved = json.loads((tmp_path / "ev" / "benchmarks" / "countdown.json").read_text())
    assert saved["protocol"] == "reasoning" and saved["top_p"] == 0.95 and set(saved["metrics"]) >= {
        "avg@2", "pass@2", "pass^2", "maj@2"}
    assert "| countdown | 3 |" in (tmp_path / "ev" / "summary.md").read_text()
    same = compare(CompareConfig(runs=[str(tmp_path / "ev")] * 2, reps=500))
    assert all(r["mean_diff"] == 0 and r["verdict"] == "no significant difference" for r in same["benchmarks"])


def test_benchmark_metrics_use_the_fewest_samples_common_to_all_problems():
    got = benchmark_metrics(records("t", {"a": [True, False, True, True], "b": [False, True]}))
    assert "pass@2" in got and "pass@4" not in got and got["avg@2"]["value"] == pytest.approx((0.75 + 0.5) / 2)


def test_a_dataset_task_goes_through_the_same_protocol(tmp_path):
    from pathlib import Path

    task = make_task("gsm8k", source=str(Path(__file__).parents[1] / "fixtures" / "gsm8k.jsonl"))
    ids = [task[i].id for i in range(len(task))]
    script = {pid: [i % 2 == 0, True] for i, pid in enumerate(ids)}
    results, records = evaluate_protocol(AnswerSampler(task, script), task, list(task), protocol="greedy",
                                         temperature=0.0, top_p=1.0, k=1, max_new_tokens=16)
    assert results["benchmark"] == "gsm8k" and [r.sample_correct for r in records] == [[i % 2 == 0] for i in
                                                                                     range(len(ids))]
    assert {r.strategy for r in records} == {"greedy@1"}  # not the default eval's "greedy": compare scores avg@1
    for run in ("a", "b"):
        write_jsonl(tmp_path / run / "benchmarks" / "gsm8k.records.jsonl", records)
    same = compare(CompareConfig(runs=[str(tmp_path / "a"), str(tmp_path / "b")], reps=200))
    assert same["benchmarks"][0]["a"] == results["metrics"]["avg@1"]["value"] and "mcnemar" in same["benchmarks"][0]
    assert results["metrics"]["avg@1"]["value"] == pytest.approx(sum(i % 2 == 0 for i in range(len(ids))) / len(ids))
