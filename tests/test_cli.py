"""Smoke test of every CLI command on a tiny budget, in process (the HF import is paid once)."""

import json
import subprocess
import sys

import pytest

from reasonloop.cli import COMMANDS, main
from reasonloop.store.jsonl import read_jsonl
from reasonloop.types import Sample

TINY_TASK = ["task.options={max_ops: 2, min_ops: 2}"]


def test_cli_start_up_does_not_import_torch():
    code = "import sys, reasonloop.cli as c; c.main(['--help']); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("False")


def test_unknown_command_and_bad_override(capsys):
    assert main(["selftrian"]) == 2
    assert "did you mean 'selftrain'" in capsys.readouterr().err
    assert main(["sft", "train.optim.lrr=1"]) == 2
    assert "did you mean" in capsys.readouterr().err


def test_print_config_shows_resolved_values(capsys):
    assert main(["selftrain", "--print-config", "iterations=7", "train.optim.lr=2e-4"]) == 0
    out = capsys.readouterr().out
    assert "iterations: 7" in out and "lr: 0.0002" in out


def test_every_command_runs_end_to_end(tmp_path, tiny_model_dir, capsys):
    runs = str(tmp_path / "runs")
    init = tmp_path / "init"
    assert main(["init-model", str(init), "hidden_size=32", "intermediate_size=64", "num_layers=1"]) == 0
    assert (init / "config.json").exists() and (init / "tokenizer.json").exists()

    assert main(["pretrain", f"model.path={init}", "num_examples=16", "train.max_steps=2",
                 "train.batch_size=8", "train.micro_batch_size=4", f"output_dir={runs}", *TINY_TASK]) == 0
    base = f"{runs}/pretrain/final"
    assert (tmp_path / "runs/pretrain/final/model.safetensors").exists()

    samples = tmp_path / "samples.jsonl"
    assert main(["sample", f"model.path={base}", "num_problems=3", "samples_per_prompt=2",
                 "sampling.max_new_tokens=12", f"output={samples}", *TINY_TASK]) == 0
    rows = read_jsonl(samples, Sample)
    assert len(rows) == 6 and all("correct" in s.rewards for s in rows)

    assert main(["sft", f"model.path={base}", f"data={samples}", "only_correct=false", "train.max_steps=2",
                 "train.batch_size=4", "train.micro_batch_size=2", f"output_dir={runs}", "save_every=1"]) == 0
    metrics = [json.loads(line) for line in (tmp_path / "runs/sft/metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2] and all(m["loss"] > 0 for m in metrics)
    assert (tmp_path / "runs/sft/checkpoints/latest").read_text().strip() == "step-000002"
    # a second run with the same name must not silently overwrite
    with pytest.raises(FileExistsError):
        main(["sft", f"model.path={base}", f"data={samples}", "only_correct=false", f"output_dir={runs}"])

    assert main(["selftrain", f"model.path={base}", "iterations=1", "problems_per_iteration=3",
                 "samples_per_prompt=2", "sampling.max_new_tokens=12", "eval_problems=3", "eval_max_new_tokens=12",
                 "train.max_steps=1", f"output_dir={runs}", *TINY_TASK]) == 0
    summary = json.loads((tmp_path / "runs/selftrain/summary.json").read_text())
    assert [m["iteration"] for m in summary["iterations"]] == [0, 1]

    assert main(["eval", f"model.path={base}", "num_problems=3", "samples_per_prompt=2", "max_new_tokens=12",
                 f"output_dir={runs}", *TINY_TASK]) == 0
    results = json.loads((tmp_path / "runs/eval/results.json").read_text())
    assert {"greedy_accuracy", "maj@2", "pass@2", "tokens_generated"} <= set(results)
    assert len(read_jsonl(tmp_path / "runs/eval/records.jsonl")) == 6


def test_list_tasks_and_commands(capsys):
    assert main(["list", "commands"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)
    assert main(["list", "tasks"]) == 0
    assert "arithmetic" in capsys.readouterr().out
