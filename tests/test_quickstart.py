"""The quickstart pipeline: a tiny-budget smoke run, and (slow) the real run's promise."""

import json

import pytest

from reasonloop.config import load_config
from reasonloop.quickstart import QuickstartConfig, run


def test_quickstart_smoke_writes_report_and_results(tmp_path):
    cfg = load_config(QuickstartConfig, None, [
        f"output_dir={tmp_path / 'qs'}", "model.hidden_size=32", "model.intermediate_size=64", "model.num_layers=1",
        "pretrain_examples=64", "pretrain.batch_size=16", "pretrain.micro_batch_size=16", "eval_problems=4",
        "eval_samples_per_prompt=2", "selftrain_iterations=1", "selftrain_problems=4",
        "selftrain_samples_per_prompt=2", "grpo_steps=1", "grpo_prompts_per_step=2", "grpo_samples_per_prompt=2",
        "max_new_tokens=16",
    ])
    results = run(cfg)
    saved = json.loads((tmp_path / "qs/results.json").read_text())
    assert saved["base_accuracy"] == results["base_accuracy"]
    assert {"base_accuracy", "final_accuracy", "grpo_accuracy", "wall_seconds", "stages"} <= set(saved)
    assert [s["stage"] for s in saved["stages"]] == [
        "init-model", "pretrain", "eval base", "selftrain", "eval self-trained", "grpo", "eval grpo"]
    report = (tmp_path / "qs/report.md").read_text()
    assert "| eval base |" in report and "Self-training changed greedy accuracy" in report


@pytest.mark.slow
def test_quickstart_self_training_clearly_beats_the_base(tmp_path):
    """The real quickstart (about 5 minutes on 2 cores): self-training must add 20+ points."""
    results = run(QuickstartConfig(output_dir=str(tmp_path / "qs")))
    assert results["final_accuracy"] >= results["base_accuracy"] + 0.20
    assert results["grpo_accuracy"] > results["base_accuracy"]
