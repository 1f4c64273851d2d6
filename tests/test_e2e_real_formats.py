"""Every command end to end from the CLI on what users actually train: a Qwen2-architecture
checkpoint with a byte-level BPE tokenizer and a ChatML template (built here, tests/hf_models.py)
and GSM8K-, MATH-, HumanEval- and PRM800K-format files (tests/fixtures/). Nothing touches the network.

Each run is tiny (a few problems, a few tokens); what is checked is that the whole path works on
these formats: the dataset rows become problems with their golds, the chat template formats the
prompts, the verifiers grade, and every command writes its outputs.
"""

import json
from pathlib import Path

import pytest
from hf_models import build_chat_checkpoint

from reasonloop.cli import main
from reasonloop.store.jsonl import read_jsonl
from reasonloop.types import EvalRecord, Sample

FIXTURES = Path(__file__).resolve().parent / "fixtures"
GSM8K = ["task.name=gsm8k", f"task.source={FIXTURES / 'gsm8k.jsonl'}"]
MATH = ["task.name=math", f"task.source={FIXTURES / 'math.jsonl'}"]
HUMANEVAL = ["task.name=humaneval", f"task.source={FIXTURES / 'humaneval.jsonl'}"]


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory):
    return build_chat_checkpoint(tmp_path_factory.mktemp("real") / "qwen2-chat")


def test_eval_gsm8k_and_humaneval_files(chat_model, tmp_path):
    assert main(["eval", f"model.path={chat_model}", *GSM8K, "task.split=train", "num_problems=3",
                 "samples_per_prompt=2", "max_new_tokens=8", f"output_dir={tmp_path}", "run_name=gsm8k"]) == 0
    records = read_jsonl(tmp_path / "gsm8k" / "records.jsonl", EvalRecord)
    assert {r.answer for r in records} <= {"72", "10", "600", "3000"} and len(records) == 6
    # code: a random model writes no passing program; the sandbox grades every completion
    assert main(["eval", f"model.path={chat_model}", *HUMANEVAL, "task.split=test", "num_problems=2",
                 "samples_per_prompt=0", "max_new_tokens=8", f"output_dir={tmp_path}", "run_name=he"]) == 0
    results = json.loads((tmp_path / "he" / "results.json").read_text())
    assert results["task"] == "humaneval" and results["greedy_accuracy"] == 0.0


def test_sample_then_sft_on_gsm8k(chat_model, tmp_path):
    samples = tmp_path / "samples.jsonl"
    assert main(["sample", f"model.path={chat_model}", *GSM8K, "split=train", "num_problems=2",
                 "samples_per_prompt=2", "sampling.max_new_tokens=8", f"output={samples}"]) == 0
    rows = read_jsonl(samples, Sample)
    assert len(rows) == 4 and all("correct" in s.rewards for s in rows)
    # the model's samples are wrong: train on every sample (only_correct=false), as a distillation set would
    assert main(["sft", f"model.path={chat_model}", f"data={samples}", "only_correct=false",
                 "train.max_steps=1", "train.batch_size=2", "train.micro_batch_size=2",
                 f"output_dir={tmp_path}"]) == 0
    assert (tmp_path / "sft" / "final" / "config.json").exists()


def test_selftrain_on_math(chat_model, tmp_path):
    assert main(["selftrain", f"model.path={chat_model}", *MATH, "iterations=1", "problems_per_iteration=2",
                 "samples_per_prompt=2", "sampling.max_new_tokens=8", "train.max_steps=1", "train.batch_size=2",
                 "train.micro_batch_size=2", "eval_problems=0", f"output_dir={tmp_path}"]) == 0
    drawn = read_jsonl(tmp_path / "selftrain" / "samples" / "iter_001.jsonl", Sample)
    assert len(drawn) == 4 and all(s.problem_id.startswith("math/") for s in drawn)
    assert (tmp_path / "selftrain" / "final" / "config.json").exists()


def test_grpo_on_gsm8k(chat_model, tmp_path):
    assert main(["grpo", f"model.path={chat_model}", *GSM8K, "steps=2", "prompts_per_step=2",
                 "samples_per_prompt=2", "sampling.max_new_tokens=8", "eval_problems=0", "save_every=1",
                 f"output_dir={tmp_path}"]) == 0
    metrics = [json.loads(line) for line in (tmp_path / "grpo" / "metrics.jsonl").read_text().splitlines()]
    steps = [m for m in metrics if m.get("step", 0) > 0 and "reward/mean" in m]
    assert [m["step"] for m in steps] == [1, 2] and steps[-1]["data/epochs"] == 1.0  # 4 problems, 2 steps of 2
    assert (tmp_path / "grpo" / "final" / "config.json").exists()


def test_search_majority_on_gsm8k(chat_model, tmp_path):
    assert main(["search", f"model.path={chat_model}", *GSM8K, "split=train", "num_problems=2",
                 "strategy=majority", "options={n: 2, max_new_tokens: 8}", f"output_dir={tmp_path}"]) == 0
    records = read_jsonl(tmp_path / "search" / "records.jsonl", EvalRecord)
    assert len(records) == 2 and all(len(r.predictions) == 2 for r in records)


def test_label_prm800k_rows_for_prm_evaluation(tmp_path):
    out = tmp_path / "steps.jsonl"
    assert main(["label", "task.name=prm800k", f"task.source={FIXTURES / 'prm800k.jsonl'}", "method=dataset",
                 f"output={out}"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 3 and all(len(row["labels"]) == len(row["completions"]) > 0 for row in rows)
    assert rows[1]["labels"] == [True, False]  # the human rating of the wrong step is kept


def test_sft_on_a_datasets_reference_solutions(chat_model, tmp_path):
    """`sft from_task=true`: GSM8K's worked answers as the completions, by epochs with the seeded order."""
    assert main(["sft", f"model.path={chat_model}", "from_task=true", *GSM8K, "train.epochs=2",
                 "train.batch_size=2", "train.micro_batch_size=2", f"output_dir={tmp_path}"]) == 0
    summary = json.loads((tmp_path / "sft" / "summary.json").read_text())
    assert summary["examples"] == 4 and summary["steps"] == 4  # 4 solutions, 2 epochs of 2 batches
    # a task without reference solutions is one clear error
    assert main(["sft", f"model.path={chat_model}", "from_task=true", "task.name=aime",
                 f"task.source={FIXTURES / 'aime.jsonl'}", f"output_dir={tmp_path}", "run_name=aime"]) == 2
