"""Stand-ins for the servers and engines the tests cannot run here: a `vllm` module (no GPU) and an
OpenAI-compatible HTTP server on 127.0.0.1 (stdlib, in a thread). One copy, used by every test that
needs them."""

from __future__ import annotations

import json
import sys
import threading
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch

# --- vLLM ---------------------------------------------------------------------------------------


@dataclass
class Logprob:
    logprob: float


@dataclass
class CompletionOutput:
    token_ids: list
    logprobs: list
    finish_reason: str
    stop_reason: object = None
    text: str = ""


@dataclass
class RequestOutput:
    outputs: list


@dataclass
class FakeSamplingParams:
    """vLLM's `SamplingParams`, the fields reasonloop sets."""

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    max_tokens: int = 16
    stop: list | None = None
    include_stop_str_in_output: bool = False
    seed: int | None = None
    logprobs: int | None = None


class FakeVLLMModel(torch.nn.Module):
    """Stands in for vLLM's model: `load_weights` takes (HF name, tensor) pairs."""

    def __init__(self, shapes):
        super().__init__()
        self.store = {k: torch.zeros(s) for k, s in shapes.items()}

    def load_weights(self, weights):
        for name, tensor in weights:
            self.store[name].copy_(tensor)


@dataclass
class FakeLLM:
    """vLLM's `LLM`: sample i of a request is the last two prompt tokens + i, then EOS / length / stop by i % 3.

    `inner` is the in-process model chain that `vllm_backend` reaches for weight loading; a test that
    checks weights sets it with `with_model`.
    """

    kwargs: dict
    calls: list = field(default_factory=list)
    resets: int = 0
    inner: object = None
    rpc: list = field(default_factory=list)

    def generate(self, requests, params, use_tqdm=True):
        self.calls.append((requests, params))
        outs = []
        for req, p in zip(requests, params):
            samples = []
            for i in range(p.n):
                ids = req["prompt_token_ids"][-2:] + [40 + i]
                kind = ["eos", "length", "stop"][i % 3]
                if kind == "eos":
                    ids = ids + [2]
                samples.append(CompletionOutput(
                    text="".join(chr(65 + t % 26) for t in ids if t != 2) + ("\n|" if kind == "stop" else ""),
                    token_ids=ids, logprobs=[{t: Logprob(-0.5 * (k + 1))} for k, t in enumerate(ids)],
                    finish_reason="length" if kind == "length" else "stop",
                    stop_reason="|" if kind == "stop" else None,
                ))
            outs.append(RequestOutput(samples))
        return outs

    def reset_prefix_cache(self):
        self.resets += 1

    def collective_rpc(self, fn, args=()):
        self.rpc.append(fn)
        worker = types.SimpleNamespace(model_runner=types.SimpleNamespace(model=self.model_for_rpc))
        return [fn(worker, *args)]

    @property
    def llm_engine(self):
        return self.inner


def model_chain(model) -> object:
    """The attribute path vLLM's in-process engine exposes its model under (V0 layout)."""
    return types.SimpleNamespace(model_executor=types.SimpleNamespace(
        driver_worker=types.SimpleNamespace(model_runner=types.SimpleNamespace(model=model))))


def install_vllm(monkeypatch, make_llm: Callable[..., object]) -> types.ModuleType:
    """Make `import vllm` give a module whose `LLM(**kwargs)` is `make_llm(**kwargs)`."""
    module = types.ModuleType("vllm")
    module.LLM = make_llm
    module.SamplingParams = FakeSamplingParams
    monkeypatch.setitem(sys.modules, "vllm", module)
    return module


def install_vllm_with_model(monkeypatch, model: torch.nn.Module) -> list[FakeLLM]:
    """A fake `vllm` whose engines load weights into a `FakeVLLMModel` shaped like `model`; returns the
    list the engines are appended to as they are built, and the fake model is `llms[i].inner_model`."""
    inner = FakeVLLMModel({k: v.shape for k, v in model.state_dict().items()})
    llms: list[FakeLLM] = []

    def make(**kwargs):
        llm = FakeLLM(kwargs, inner=model_chain(inner))
        llm.inner_model = inner
        llms.append(llm)
        return llm

    install_vllm(monkeypatch, make)
    return llms


# --- an OpenAI-compatible server -------------------------------------------------------------------


class JSONServer:
    """A loopback HTTP server: every POST's JSON body goes to `respond(path, body)`, which returns the
    JSON reply, or (status, reply). Bodies are kept in `requests` (with their `path`)."""

    def __init__(self, respond: Callable[[str, dict], object]):
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, **body})
                reply = respond(self.path, body)
                status, payload = reply if isinstance(reply, tuple) else (200, reply)
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and left

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
