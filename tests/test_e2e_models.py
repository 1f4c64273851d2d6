"""From the CLI on models like the ones users run: a served model over the OpenAI API, and a local
Qwen2 checkpoint with a trained byte-level BPE tokenizer and a ChatML template (tests/hf_models.py)."""

import json

import pytest
from fake_servers import JSONServer
from hf_models import build_chat_checkpoint

from reasonloop.cli import main
from reasonloop.models.policy import ModelConfig, load_model
from reasonloop.rollout.engine import TorchEngine
from reasonloop.rollout.sampler import SamplingParams
from reasonloop.store.jsonl import read_jsonl
from reasonloop.tasks.spec import TaskSpec
from reasonloop.types import Sample

TASK = TaskSpec("arithmetic", {"max_ops": 2, "min_ops": 2})
TASK_ARGS = ["task.name=arithmetic", "task.options={max_ops: 2, min_ops: 2}"]


def solver_server(problems) -> JSONServer:
    """An OpenAI-compatible chat server that solves the even-numbered test problems and fails the others."""
    answers = {p.prompt: (p.reference_solution if i % 2 == 0 else "Answer: -1") for i, p in enumerate(problems)}

    def respond(path, body):
        text = answers.get(body["messages"][-1]["content"], "no idea")
        return {"choices": [{"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                            for i in range(body.get("n", 1))]}

    return JSONServer(respond)


def test_eval_a_served_model_in_one_command(tmp_path, monkeypatch):
    problems = list(TASK.build(split="test", size=5, seed=0))
    server = solver_server(problems)
    monkeypatch.setenv("SERVED_KEY", "sk-local")
    try:
        code = main(["eval", "sampler.kind=openai", f"sampler.base_url={server.url}", "sampler.api_key_env=SERVED_KEY",
                     "model.path=org/served-model", "model.system_prompt=Think step by step.", *TASK_ARGS,
                     "num_problems=5", "samples_per_prompt=3", f"output_dir={tmp_path}"])
    finally:
        server.close()
    assert code == 0
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    # problems 0, 2, 4 are solved, by the greedy answer and by all 3 samples
    assert results["greedy_accuracy"] == pytest.approx(0.6) and results["maj@3"] == pytest.approx(0.6)
    assert results["pass@3"] == pytest.approx(0.6) and results["model"] == "org/served-model"
    records = read_jsonl(tmp_path / "eval" / "records.jsonl")
    assert len(records) == 10 and {r.model_id for r in records} == {"org/served-model"}
    greedy = [r for r in server.requests if r["n"] == 1]
    sampled = [r for r in server.requests if r["n"] == 3]
    assert len(greedy) == len(sampled) == 5 and all(r["temperature"] == 0.0 for r in greedy)
    assert all(r["path"] == "/v1/chat/completions" and r["model"] == "org/served-model" for r in server.requests)
    assert all(r["messages"][0] == {"role": "system", "content": "Think step by step."} for r in server.requests)
    assert {r["messages"][1]["content"] for r in greedy} == {p.prompt for p in problems}


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory):
    return build_chat_checkpoint(tmp_path_factory.mktemp("e2e") / "qwen2-chat")


def test_eval_and_sample_a_local_chat_checkpoint(chat_model, tmp_path):
    """`reasonloop sample` and `reasonloop eval` on a Qwen2 + BPE + ChatML checkpoint, as a user runs them
    (in process: the same entry point as the console script; tests/test_cli.py runs it as a subprocess)."""
    samples = tmp_path / "samples.jsonl"
    sample_args = [f"model.path={chat_model}", "model.system_prompt=Be brief.", *TASK_ARGS, "num_problems=3",
                   "samples_per_prompt=2", "sampling.max_new_tokens=8", "seed=3", f"output={samples}"]
    assert main(["sample", *sample_args]) == 0
    rows = read_jsonl(samples, Sample)
    assert len(rows) == 6 and all(s.model_id == str(chat_model) and "correct" in s.rewards for s in rows)

    # the CLI's samples are the ones drawn from the ChatML-formatted prompt with the system message
    model, tok = load_model(ModelConfig(path=str(chat_model)))
    prompts = [p.prompt for p in TASK.build(split="train", size=3, seed=3)]
    params = SamplingParams(max_new_tokens=8, seed=3)
    expected = TorchEngine(model, tok, system_prompt="Be brief.").generate(prompts, 2, params)
    assert [s.token_ids for s in rows] == [s.token_ids for g in expected for s in g]
    raw = TorchEngine(model, tok, use_chat_template=False).generate(prompts, 2, params)
    assert [s.token_ids for s in rows] != [s.token_ids for g in raw for s in g]

    assert main(["eval", f"model.path={chat_model}", *TASK_ARGS, "num_problems=3", "samples_per_prompt=2",
                 "max_new_tokens=8", f"output_dir={tmp_path / 'runs'}"]) == 0
    results = json.loads((tmp_path / "runs" / "eval" / "results.json").read_text())
    assert results["model"] == str(chat_model) and results["num_problems"] == 3
    assert {"greedy_accuracy", "maj@2", "pass@2"} <= set(results)
    assert len(read_jsonl(tmp_path / "runs" / "eval" / "records.jsonl")) == 6
