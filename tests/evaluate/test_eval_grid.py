"""`reasonloop eval` over a task x strategy grid: records, results.json, report, resume."""

import json

import pytest

from reasonloop.config import load_config
from reasonloop.evaluate.run import EvalConfig, main


def test_grid_writes_cells_results_and_report_and_resumes(tiny_model_dir, tmp_path):
    overrides = [f"model.path={tiny_model_dir}", "model.device=cpu", f"output_dir={tmp_path}", "run_name=grid",
                 "num_problems=2", "task.options={max_ops: 2}"]
    yaml_path = tmp_path / "grid.yaml"
    yaml_path.write_text(
        "strategies:\n"
        "  - {name: greedy, options: {max_new_tokens: 10}}\n"
        "  - {name: majority, options: {n: 2, max_new_tokens: 10}}\n"
        "  - {name: best_of_n, options: {n: 2, max_new_tokens: 10}, scorer: {kind: oracle_step}}\n")
    cfg = load_config(EvalConfig, yaml_path, overrides)
    results = main(cfg)
    root = tmp_path / "grid"
    assert [c["line"] for c in results["cells"]] == ["greedy", "majority", "best_of_n [oracle_step]"]
    saved = json.loads((root / "results.json").read_text())
    assert saved["cells"][1]["pass@2"] >= saved["cells"][1]["pass@1"]
    assert "pass@1" not in saved["cells"][0] or saved["cells"][0]["pass@1"] is not None
    assert (root / "report.md").read_text().count("| greedy") == 1 and (root / "plot_0.png").stat().st_size > 1000
    cells = sorted((root / "cells").glob("*.jsonl"))
    assert len(cells) == 3
    # a rerun reuses finished cells (no model is even loaded for them)
    stamp = [c.stat().st_mtime_ns for c in cells]
    again = main(cfg)
    assert [c.stat().st_mtime_ns for c in cells] == stamp
    assert again["cells"] == results["cells"]


def test_default_eval_still_works(tiny_model_dir, tmp_path):
    cfg = load_config(EvalConfig, None, [f"model.path={tiny_model_dir}", "model.device=cpu", f"output_dir={tmp_path}",
                                         "num_problems=2", "samples_per_prompt=2", "max_new_tokens=8"])
    results = main(cfg)
    assert {"greedy_accuracy", "greedy_ci95", "maj@2", "pass@2"} <= set(results)


def test_greedy_step_accuracy_does_not_count_lucky_answers():
    """A right answer reached through a wrong step counts for greedy_accuracy, not greedy_step_accuracy."""
    from reasonloop.evaluate.accuracy import evaluate_model
    from reasonloop.tasks import make_task
    from reasonloop.types import Sample

    task = make_task("arithmetic", size=3, seed=0, min_ops=2, max_ops=2, ops=["+"])
    problems = list(task)
    right = problems[0].meta["solution"]
    first, rest = problems[1].meta["solution"].split("\n", 1)
    lucky = first.rsplit("=", 1)[0] + "= " + str(int(first.rsplit("=", 1)[1]) + 1) + "\n" + rest
    texts = {problems[0].prompt: right, problems[1].prompt: lucky, problems[2].prompt: "Answer: -1"}

    class Scripted:
        def generate(self, prompts, n, params):
            return [[Sample("p", q, texts[q], token_ids=[1])] for q in prompts]

    results, records = evaluate_model(Scripted(), task, problems, samples_per_prompt=0, temperature=1.0,
                                      max_new_tokens=8)
    assert results["greedy_accuracy"] == pytest.approx(2 / 3)
    assert results["greedy_step_accuracy"] == pytest.approx(1 / 3)
    assert [r.meta["steps_valid"] for r in records] == [True, False, False]
