"""`reasonloop eval` and `reasonloop sample` over multi-turn environments, through the CLI."""

import json
import re

import pytest
from fake_servers import JSONServer
from test_multiturn_api import reply

from reasonloop.cli import main as cli
from reasonloop.envs import EnvSpec, Limits
from reasonloop.models.policy import ModelConfig
from reasonloop.rollout.engine import TorchEngine
from reasonloop.rollout.multiturn import MultiTurnEngine
from reasonloop.rollout.sampler import SamplingParams


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_eval_over_an_environment_reports_accuracy_turns_and_counts(tiny_model_dir, tmp_path):
    args = ["eval", f"model.path={tiny_model_dir}", "env.name=long_arithmetic", "env.options.tools=[python]",
            "turn_limits.max_turns=3", "num_problems=3", "samples_per_prompt=2", "max_new_tokens=12",
            f"output_dir={tmp_path}", "run_name=e"]
    assert cli(args) == 0
    root = tmp_path / "e"
    results = json.loads((root / "results.json").read_text())
    records = read_jsonl(root / "records.jsonl")
    episodes = read_jsonl(root / "trajectories.jsonl")
    assert [r["strategy"] for r in records] == ["greedy"] * 3 + ["sampled@2"] * 3
    assert len(episodes) == 3 + 3 * 2
    for e in episodes:  # token-exact episodes: every id has a mask bit and a logprob, drawn ids have logprobs
        m = e["meta"]
        assert len(m["loss_mask"]) == len(e["token_ids"]) == len(e["logprobs"]) and m["prompt_ids"]
        assert m["messages"][-1]["role"] == "assistant" and len(m["turns"]) >= 1
    # the report is the episodes' own numbers
    greedy, sampled = episodes[:3], episodes[3:]
    assert results["greedy/turns"] == pytest.approx(sum(len(e["meta"]["turns"]) for e in greedy) / 3)
    assert results["sampled/sampled_tokens"] == pytest.approx(sum(sum(e["meta"]["loss_mask"]) for e in sampled) / 6)
    assert results["greedy/tool_calls_per_trajectory"] == pytest.approx(
        sum(e["meta"]["counts"].get("tool_calls", 0) for e in greedy) / 3)
    for key in ("greedy_accuracy", "greedy_ci95", "avg@2", "avg@2_se", "pass@2", "pass@2_se", "maj@2", "maj@2_se",
                "pass^2", "sampled/turns"):
        assert key in results
    # greedy episodes are reproducible: the same ids as the runner gives in code
    engine = TorchEngine.from_config(ModelConfig(path=str(tiny_model_dir)))
    task, make_env = EnvSpec("long_arithmetic", {"tools": ["python"]}).build("test", 3, 0)
    again = MultiTurnEngine(engine).run(list(task), make_env, 1, SamplingParams(temperature=0.0, max_new_tokens=12),
                                        Limits(max_turns=3))
    assert [g[0].token_ids for g in again] == [e["token_ids"] for e in greedy]


def calculator_script(body):
    """A model that calls the calculator on the prompt's expression, then answers with the tool's result;
    a sampled answer turn whose seed is odd answers 0 instead (a wrong answer the report must count)."""
    last = body["messages"][-1]
    if last["role"] == "tool":
        wrong = body["temperature"] > 0 and body.get("seed", 0) % 2 == 1
        return reply(f"Answer: {0 if wrong else last['content']}", tokens=3)
    expression = re.search(r"Compute (.+) exactly", last["content"]).group(1)
    return reply("", [{"id": "c1", "type": "function",
                       "function": {"name": "calculator", "arguments": json.dumps({"expression": expression})}}],
                 tokens=7)


def test_eval_through_an_openai_server_counts_tool_calls_and_votes(tmp_path):
    server = JSONServer(lambda path, body: calculator_script(body))
    args = ["eval", "sampler.kind=openai", f"sampler.base_url={server.url}", "sampler.max_retries=0", "model.path=m",
            "env.name=long_arithmetic", "env.options.tools=[calculator]", "num_problems=4", "samples_per_prompt=2",
            f"output_dir={tmp_path}", "run_name=api"]
    assert cli(args) == 0
    results = json.loads((tmp_path / "api" / "results.json").read_text())
    # greedy: call, then the right answer, every problem
    assert results["greedy_accuracy"] == 1.0 and results["greedy/turns"] == 2.0
    assert results["greedy/tool_calls_per_trajectory"] == 1.0
    assert results["greedy/completion_tokens_per_trajectory"] == 10.0
    # sampled, seed 0: the answer turn's seed is turn_key(key, 1) = key + 0x9E3779B1 (odd), so the episode
    # with key 2i (j = 0) answers wrong and key 2i + 1 (j = 1) right: per problem [wrong, right]
    assert results["avg@2"] == 0.5 and results["pass@1"] == 0.5 and results["pass@2"] == 1.0
    assert results["pass^2"] == 0.0 and results["maj@1"] == 0.5
    assert results["maj@2"] == 0.0  # a 1-1 tie goes to the first sample, the wrong one
    assert results["avg@2_se"] == 0.0  # every problem scores the same
    records = read_jsonl(tmp_path / "api" / "records.jsonl")
    assert [r["sample_correct"] for r in records if r["strategy"] == "sampled@2"] == [[False, True]] * 4
    assert all(r["tokens"] == 20 for r in records if r["strategy"] == "sampled@2")


def test_sample_writes_episodes_with_ids_masks_and_counts(tiny_model_dir, tmp_path):
    out = tmp_path / "episodes.jsonl"
    args = ["sample", f"model.path={tiny_model_dir}", "env.name=tictactoe", "env.options.max_illegal=1",
            "num_problems=2", "samples_per_prompt=2", "sampling.max_new_tokens=8", "turn_limits.max_turns=3",
            f"output={out}"]
    assert cli(args) == 0
    rows = read_jsonl(out)
    assert len(rows) == 4 and [r["problem_id"] for r in rows][::2] == [rows[0]["problem_id"], rows[2]["problem_id"]]
    engine = TorchEngine.from_config(ModelConfig(path=str(tiny_model_dir)))
    task, make_env = EnvSpec("tictactoe", {"max_illegal": 1}).build("train", 2, 0)
    again = MultiTurnEngine(engine).run(list(task), make_env, 2, SamplingParams(max_new_tokens=8, seed=0),
                                        Limits(max_turns=3))
    for row, t in zip(rows, [t for g in again for t in g]):
        m = row["meta"]
        assert row["token_ids"] == t.token_ids and m["loss_mask"] == t.loss_mask and m["prompt_ids"] == t.prompt_ids
        assert m["counts"] == t.counts and m["messages"] == t.messages and m["token_exact"] is True
        # a random tiny model names no cell: illegal move, told so, then a forfeit (reward -1)
        assert m["counts"]["illegal_move"] == 2 and m["counts"]["forfeit"] == 1 and row["rewards"]["reward"] == -1.0
        assert 0 in m["loss_mask"]  # the environment's message is in the ids, masked


def test_bad_environment_input_is_one_line(tiny_model_dir, tmp_path, capsys):
    base = [f"model.path={tiny_model_dir}", f"output_dir={tmp_path}", "num_problems=1"]
    assert cli(["eval", *base, "env.name=tictactoe", "env.options.bogus=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no option(s) ['bogus']" in err
    assert cli(["eval", *base, "env.name=tictactoe", "strategies=[{name: greedy}]"]) == 2
    assert "strategies" in capsys.readouterr().err


def test_sample_and_eval_over_an_environment_with_vllm(tiny_model_dir, tmp_path, monkeypatch):
    from fake_servers import install_vllm
    from test_multiturn_api import FakeLLM

    install_vllm(monkeypatch, FakeLLM)
    out = tmp_path / "v.jsonl"
    common = [f"model.path={tiny_model_dir}", "sampler.kind=vllm", "env.name=tictactoe", "env.options.max_illegal=0",
              "num_problems=2"]
    assert cli(["sample", *common, "samples_per_prompt=2", f"output={out}"]) == 0
    rows = read_jsonl(out)
    assert len(rows) == 4
    for r in rows:  # the fake draws [10 + len(context) % 7, 11, EOS]: no move, so a forfeit after one turn
        m = r["meta"]
        assert m["token_exact"] and r["token_ids"][1:] == [11, 2] and m["loss_mask"] == [1, 1, 1]
        assert r["token_ids"][0] == 10 + len(m["prompt_ids"]) % 7 and m["counts"] == {"illegal_move": 1, "forfeit": 1}
    assert cli(["eval", *common, "samples_per_prompt=2", f"output_dir={tmp_path}", "run_name=v"]) == 0
    results = json.loads((tmp_path / "v" / "results.json").read_text())
    assert results["greedy_accuracy"] == 0.0 and results["avg@2"] == 0.0 and results["greedy/forfeit_per_trajectory"] == 1.0
