"""Smoke test of every CLI command on a tiny budget, in process (the HF import is paid once); help and
errors as a person sees them, in subprocesses."""

import json
import os
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
    # a second run with the same name must not silently overwrite: one line, exit status 2
    capsys.readouterr()
    assert main(["sft", f"model.path={base}", f"data={samples}", "only_correct=false", f"output_dir={runs}"]) == 2
    assert "already holds checkpoints; pass --resume" in capsys.readouterr().err

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


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reasonloop", *args], capture_output=True, text=True, check=False,
                          env={**os.environ, **(env or {})})


def test_help_goes_to_stdout_and_lists_every_key():
    top = run_cli("--help")
    assert top.returncode == 0 and top.stderr == "" and "eval" in top.stdout and "--debug" in top.stdout
    code = "import sys, reasonloop.cli as c; c.main(['eval', '--help']); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("False")  # eval's help needs its config, not torch
    assert "usage: reasonloop eval" in out and "sampler.kind: torch|vllm|openai = torch" in out
    assert "  model.path: str = runs/quickstart/base\n      local directory" in out
    assert "  run_name: str = eval\n" in out and "\n      k of maj@k and pass@k" in out
    assert "sampler.base_url: str = ''" in out and "      openai: the API root" in out


@pytest.mark.parametrize("args, message", [
    (["eval", "sampler.kindd=openai"], ("reasonloop eval: override 'sampler.kindd=openai': unknown key "
                                        "sampler.'kindd' for SamplerConfig; did you mean sampler.'kind'?")),
    (["search", "--config", "no/such.yaml"], "reasonloop search: config file no/such.yaml does not exist"),
    (["eval", "task.name=gsm9k"], ("reasonloop eval: invalid TaskSpec (task): unknown task 'gsm9k'; did you mean "
                                  "'gsm8k'? known tasks:")),
    (["sample", "model.path=runs/no/such/model"], "reasonloop sample: model 'runs/no/such/model': no such directory"),
    (["eval", "sampler.kind=openai", "sampler.base_url=http://127.0.0.1:9/v1", "sampler.max_retries=0",
      "model.path=served", "num_problems=1"], "reasonloop eval: POST /chat/completions failed after 1 attempts"),
])
def test_errors_for_people_are_one_line_with_status_2(args, message, tmp_path):
    done = run_cli(*args, f"output_dir={tmp_path}" if args[0] != "sample" else f"output={tmp_path}/s.jsonl")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(message) and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    if "POST" not in message:  # (a server that is down is found at the first request, once the run has started)
        assert not (tmp_path / "eval").exists()  # nothing written for a run that could not start


def test_hub_id_offline_without_cache_names_the_id_and_debug_shows_the_traceback(tmp_path):
    env = {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    done = run_cli("eval", "model.path=Qwen/Qwen2.5-0.5B-Instruct", f"output_dir={tmp_path}", env=env)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("reasonloop eval: model 'Qwen/Qwen2.5-0.5B-Instruct': not a local directory, and "
                                  f"not in the Hugging Face cache ({tmp_path / 'hf' / 'hub'}) while HF_HUB_OFFLINE")
    assert "init-model" not in done.stderr
    debug = run_cli("--debug", "eval", "task.name=gsm9k", f"output_dir={tmp_path}")
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "ConfigError: invalid TaskSpec" in debug.stderr


def test_bad_rows_and_missing_files_in_process(tmp_path, tiny_model_dir, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "Q", "completion": "A"}\n{"prompt": "Q"}\n')
    args = [f"model.path={tiny_model_dir}", f"output_dir={tmp_path}"]
    assert main(["sft", f"data={bad}", *args]) == 2
    assert capsys.readouterr().err == f"reasonloop sft: {bad}:2: missing field 'completion' (fields: ['prompt']; " \
                                      "set prompt_field= / completion_field= to map yours)\n"
    assert main(["sft", f"data={tmp_path / 'none.jsonl'}", *args, "run_name=other"]) == 2
    assert f"{tmp_path / 'none.jsonl'}" in capsys.readouterr().err
    assert main(["sft", *args, "run_name=third"]) == 2
    assert capsys.readouterr().err == "reasonloop sft: sft needs data=<file.jsonl> (or from_task=true with task.name=...)\n"


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_has_help(name, capsys):
    assert main([name, "--help"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"usage: reasonloop {name}") and err == ""
    assert "config keys (" in out and out.count("\n") > 10
