"""Multi-turn runners over vLLM (a fake `vllm` module) and an OpenAI-compatible chat server (a local fake)."""

from typing import ClassVar

import pytest
from fake_servers import CompletionOutput, JSONServer, Logprob, RequestOutput, install_vllm

from reasonloop.envs import Limits, Step, ToolEnv, calculator_tool
from reasonloop.models.policy import ModelConfig
from reasonloop.rollout.sampler import SamplingParams
from reasonloop.types import Problem


class EchoEnv:
    tools: ClassVar[list] = []

    def __init__(self, turns=3):
        self.turns, self.n = turns, 0

    def reset(self, problem):
        return [{"role": "user", "content": problem.prompt}]

    def step(self, text):
        self.n += 1
        if self.n >= self.turns:
            return Step(reward=1.0, done=True)
        return Step(observation=[{"role": "tool", "name": "echo", "content": f"seen {len(text)}"}])


class FakeLLM:
    """Draws [10 + len(prompt) % 7, 11, (EOS unless the request's max_tokens < 3)]."""

    def __init__(self, **kwargs):
        self.calls = []

    def generate(self, requests, params, use_tqdm=True):
        self.calls.append((requests, params))
        outs = []
        for req, p in zip(requests, params):
            ids = [10 + len(req["prompt_token_ids"]) % 7, 11, 2][: p.max_tokens]
            outs.append(RequestOutput([CompletionOutput(
                ids, [{t: Logprob(-0.25 * (k + 1))} for k, t in enumerate(ids)],
                "stop" if ids[-1] == 2 else "length")]))
        return outs


@pytest.fixture()
def fake_vllm(monkeypatch):
    return install_vllm(monkeypatch, FakeLLM)


def test_vllm_runner_is_token_in_token_out(fake_vllm, tiny_model_dir):
    from reasonloop.rollout.multiturn_api import VLLMMultiTurn
    from reasonloop.rollout.vllm_backend import VLLMEngine

    engine = VLLMEngine(ModelConfig(path=str(tiny_model_dir)))
    runner = VLLMMultiTurn(engine)
    problems = [Problem("a", "1+1?"), Problem("b", "two plus two?")]
    groups = runner.run(problems, lambda: EchoEnv(3), 2, SamplingParams(seed=7), Limits(max_turns=5, max_tokens=400))
    calls = engine.llm.calls
    assert len(calls) == 3  # one vLLM batch per round of turns
    for t in (t for g in groups for t in g):
        assert t.num_turns == 3 and t.ending == "done" and t.reward == 1.0
        sampled = [tok for tok, m in zip(t.token_ids, t.loss_mask) if m]
        assert len(sampled) == 9 and sampled[2::3] == [2, 2, 2]
        assert [lp for lp, m in zip(t.logprobs, t.loss_mask) if m] == [-0.25, -0.5, -0.75] * 3
        # each request was exactly prompt + everything before the turn: no re-tokenization
        for k, (a, _) in enumerate(t.turns):
            row = next(r for r in calls[k][0] if r["prompt_token_ids"] == t.prompt_ids + t.token_ids[:a])
            assert row is not None
        obs = t.token_ids[t.turns[0][1]: t.turns[1][0]]
        assert runner.renderer.observation([t.messages[2]], [], True) == obs
    # a turn cut by the token budget gets the end-of-turn token inserted (mask 0)
    short = runner.run(problems[:1], lambda: EchoEnv(3), 1, SamplingParams(max_new_tokens=2),
                       Limits(max_turns=3, max_tokens=400))[0][0]
    first_end = short.turns[0][1]
    assert short.token_ids[first_end] == 2 and short.loss_mask[first_end] == 0


def reply(content="", tool_calls=None, tokens=5):
    message = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {"choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": {"completion_tokens": tokens}}


class Product:
    name = "product"

    def verify(self, problem, completion):
        return float(completion.strip() == f"Answer: {problem.answer}")


def test_openai_runner_uses_the_tool_call_api():
    from reasonloop.rollout.multiturn_api import OpenAIMultiTurn
    from reasonloop.rollout.openai_backend import OpenAISampler

    def script(body):
        last = body["messages"][-1]
        if last["role"] == "tool":
            return reply(f"Answer: {last['content']}")
        if "malformed" in body["messages"][-1]["content"]:
            return reply("", [{"id": "c9", "type": "function",
                               "function": {"name": "calculator", "arguments": "{expression: 1"}}])
        return reply("Let me compute.", [{"id": "call_1", "type": "function",
                                          "function": {"name": "calculator", "arguments": '{"expression": "12*34"}'}}])

    server = JSONServer(lambda path, body: script(body))
    runner = OpenAIMultiTurn(OpenAISampler(server.url, model="m", endpoint="chat", max_retries=0))
    problem = Problem("p", "What is 12*34?", answer="408")
    [[t]] = runner.run([problem], lambda: ToolEnv(Product(), [calculator_tool()]), 1,
                       SamplingParams(temperature=0.5, seed=3), Limits(max_turns=3))
    assert t.reward == 1.0 and t.num_turns == 2 and not t.token_exact
    assert t.counts == {"tool_calls": 1, "completion_tokens": 10}  # the server's usage: 5 per turn
    first, second = server.requests
    assert first["tools"][0]["function"]["name"] == "calculator" and first["temperature"] == 0.5
    assert second["messages"][-2]["tool_calls"][0]["id"] == "call_1"
    assert second["messages"][-1] == {"role": "tool", "name": "calculator", "content": "408", "tool_call_id": "call_1"}
    assert t.messages[-1]["content"] == "Answer: 408"
    # malformed arguments are data: the environment counts them and the episode goes on to its limit
    bad = Problem("q", "malformed please", answer="1")
    [[u]] = runner.run([bad], lambda: ToolEnv(Product(), [calculator_tool()]), 1, SamplingParams(),
                       Limits(max_turns=2))
    assert u.ending == "max_turns" and u.counts["malformed_tool_call"] == 1 and u.counts["turn_limit"] == 1
    with pytest.raises(ValueError, match="endpoint='chat'"):
        OpenAIMultiTurn(OpenAISampler(server.url, model="m"))
    server.close()
