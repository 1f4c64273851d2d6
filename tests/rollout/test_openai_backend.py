"""OpenAISampler against a small OpenAI-schema server on 127.0.0.1 (stdlib, in a thread)."""

import threading
import time

import pytest
from fake_servers import JSONServer

from reasonloop.rollout.openai_backend import OpenAISampler, RequestFailed
from reasonloop.rollout.sampler import Sampler, SamplingParams


class FakeServer(JSONServer):
    """Serves /v1/completions and /v1/chat/completions with scripted, checkable answers.

    The completion for a request is "<last 3 chars of the prompt>|<choice index>\\nok"; its
    "tokens" are its characters, token i having logprob -0.1 * (i + 1). `fail` holds status
    codes to answer with, one per request, before answering normally; `delay` is a sleep per
    request (in seconds), applied to the first `delay_count` requests.
    """

    def __init__(self):
        self.fail: list[int] = []
        self.delay, self.delay_count = 0.0, 0
        self.in_flight = self.max_in_flight = self.served = 0
        self.lock = threading.Lock()
        super().__init__(self.respond)

    def respond(self, path: str, body: dict):
        with self.lock:
            self.served += 1
            status = self.fail.pop(0) if self.fail else 200
            delay = self.delay if self.served <= self.delay_count else 0.0
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        time.sleep(delay)
        # leaves the in-flight count *before* the reply goes out: once the client has the
        # reply it may send its next request, which must not find this one still counted
        with self.lock:
            self.in_flight -= 1
        if status != 200:
            return status, {"error": {"message": "scripted failure"}}
        return self.answer(path, body)

    def answer(self, path: str, body: dict) -> dict:
        chat = path.endswith("/chat/completions")
        source = body["messages"][-1]["content"] if chat else body["prompt"]
        choices = []
        for i in range(body.get("n", 1)):
            text = f"{source[-3:]}|{i}\nok"
            finish, stop_reason = "stop", None
            for s in body.get("stop") or []:
                if s in text:  # vLLM semantics: cut at the stop string, report it
                    text = text[: text.index(s) + (len(s) if body.get("include_stop_str_in_output") else 0)]
                    stop_reason = s
                    break
            if len(text) > body["max_tokens"]:
                text, finish = text[: body["max_tokens"]], "length"
            tokens = [f"token_id:{ord(c)}" if body.get("return_tokens_as_token_ids") else c for c in text]
            lps = [-0.1 * (k + 1) for k in range(len(tokens))]
            choice = {"index": i, "finish_reason": finish, "stop_reason": stop_reason}
            if chat:
                choice["message"] = {"role": "assistant", "content": text}
                choice["logprobs"] = {"content": [{"token": t, "logprob": lp} for t, lp in zip(tokens, lps)]}
            else:
                choice["text"] = text
                choice["logprobs"] = {"tokens": tokens, "token_logprobs": lps}
            choices.append(choice)
        return {"id": "x", "object": "text_completion", "model": body["model"], "choices": choices[::-1]}



@pytest.fixture()
def server():
    s = FakeServer()
    yield s
    s.close()


def test_completions(server):
    sampler = OpenAISampler(server.url, model="m", token_ids=True)
    assert isinstance(sampler, Sampler)
    groups = sampler.generate(["abcdef", "xyz"], 3, SamplingParams(temperature=0.5, top_k=7, seed=10, max_new_tokens=50))
    assert [len(g) for g in groups] == [3, 3]
    s = groups[0][2]
    assert s.text == "def|2\nok" and s.finish_reason == "eos" and s.steps == ["def|2", "ok"]
    assert s.token_ids == [ord(c) for c in s.text]
    assert s.logprobs == pytest.approx([-0.1 * (k + 1) for k in range(len(s.text))])
    assert groups[1][0].text == "xyz|0\nok"
    sent = sorted(server.requests, key=lambda r: r["prompt"])
    assert [r["prompt"] for r in sent] == ["abcdef", "xyz"] and all(r["n"] == 3 for r in sent)
    assert sent[0]["temperature"] == 0.5 and sent[0]["top_k"] == 7 and sent[0]["logprobs"] == 1
    assert {r["seed"] for r in sent} == {10, 13}  # a distinct seed per request


def test_chat_stop_length_and_prefix(server):
    sampler = OpenAISampler(server.url, model="m", endpoint="chat", system_prompt="be brief")
    g = sampler.generate(["hello"], 1, SamplingParams(stop=["|"], include_stop_str=True))[0][0]
    assert (g.text, g.finish_reason) == ("llo|", "stop")
    assert server.requests[-1]["messages"] == [{"role": "system", "content": "be brief"},
                                               {"role": "user", "content": "hello"}]
    g = sampler.generate(["hello"], 1, SamplingParams(stop=["|"], include_stop_str=False))[0][0]
    assert (g.text, g.finish_reason) == ("llo", "stop")
    g = sampler.generate(["hello"], 1, SamplingParams(max_new_tokens=4))[0][0]
    assert (g.text, g.finish_reason, len(g.logprobs)) == ("llo|", "length", 4)
    g = sampler.generate(["hello"], 1, SamplingParams(step_separator="|"), prefixes=["step A|"])[0][0]
    last = server.requests[-1]
    assert last["messages"][-1] == {"role": "assistant", "content": "step A|"} and last["continue_final_message"]
    assert g.text == " A||0\nok" and g.meta["prefix"] == "step A|" and g.steps == ["step A", "A", "0\nok"]


def test_stop_string_put_back_when_server_drops_it(server):
    sampler = OpenAISampler(server.url, model="m", extra_body={"include_stop_str_in_output": False})
    g = sampler.generate(["hello"], 1, SamplingParams(stop=["|"]))[0][0]
    assert (g.text, g.finish_reason) == ("llo|", "stop")


def test_retries_with_backoff_then_success(server):
    server.fail = [503, 429]
    sampler = OpenAISampler(server.url, model="m", backoff=0.05)
    t0 = time.perf_counter()
    assert sampler.generate(["abc"], 1)[0][0].text == "abc|0\nok"
    assert len(server.requests) == 3
    assert time.perf_counter() - t0 >= 0.75 * (0.05 + 0.1)  # slept before each retry


def test_non_retryable_and_exhausted(server):
    server.fail = [400]
    with pytest.raises(RequestFailed, match="HTTP 400"):
        OpenAISampler(server.url, model="m", backoff=0.01).generate(["abc"])
    assert len(server.requests) == 1
    server.fail = [500] * 10
    with pytest.raises(RequestFailed, match="after 3 attempts"):
        OpenAISampler(server.url, model="m", backoff=0.01, max_retries=2).generate(["abc"])
    assert len(server.requests) == 4


def test_timeout_is_retried(server):
    server.delay, server.delay_count = 1.0, 1  # the first request hangs past the timeout
    sampler = OpenAISampler(server.url, model="m", timeout=0.3, backoff=0.01)
    assert sampler.generate(["abc"])[0][0].text == "abc|0\nok"
    assert len(server.requests) == 2


def test_connection_refused_fails_after_retries():
    with pytest.raises(RequestFailed, match="after 2 attempts"):
        OpenAISampler("http://127.0.0.1:9/v1", model="m", max_retries=1, backoff=0.01, timeout=1).generate(["a"])


def test_concurrency_limit_and_one_request_per_sample(server):
    server.delay, server.delay_count = 0.1, 1000
    sampler = OpenAISampler(server.url, model="m", max_concurrency=3, use_n=False)
    groups = sampler.generate([f"p{i:02d}" for i in range(6)], 2, SamplingParams(seed=0))
    assert len(server.requests) == 12 and all(r["n"] == 1 for r in server.requests)
    assert server.max_in_flight == 3
    assert [s.text for s in groups[4]] == ["p04|0\nok"] * 2
    assert sorted(r["seed"] for r in server.requests) == list(range(12))
