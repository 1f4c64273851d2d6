"""`Sampler` over any OpenAI-compatible HTTP server (vLLM, SGLang, llama.cpp, a hosted API).

    sampler = OpenAISampler("http://127.0.0.1:8000/v1", model="Qwen/Qwen2.5-7B-Instruct", endpoint="chat")
    groups = sampler.generate(prompts, samples_per_prompt=4, params=SamplingParams(temperature=0.7))

For teacher distillation and for running search against a served model. Standard library
only (`urllib` + a thread pool): one request per prompt (with `n` samples), at most
`max_concurrency` in flight, each with a timeout, retried with exponential backoff on
connection errors, timeouts, 408/409/429 and 5xx; other 4xx fail at once.

How the `Sampler` contract maps onto the API:
- endpoint "completions" (`/completions`) sends `prompt_format(prompt) + prefix` (the raw
  prompt when `prompt_format` is None; `rollout.factory` passes the model's chat template);
  "chat" (`/chat/completions`) sends a system (if set) and
  a user message, and a prefix as a trailing assistant message with vLLM's
  `continue_final_message=True, add_generation_prompt=False`.
- `logprobs` are the server's per-token logprobs when it returns them (empty otherwise).
  Their semantics are the server's: vLLM reports the raw model distribution unless started
  with `--logprobs-mode processed_logprobs`; they match the contract only when the server's
  temperature handling does.
- `token_ids` are filled only when the server returns them: vLLM's
  `return_tokens_as_token_ids` (sent when `token_ids=True`) turns tokens into "token_id:N".
- finish reason: the API's "length" is "length"; "stop" is "stop" when the server says a
  stop string ended it (vLLM/SGLang `stop_reason`, llama.cpp `stopping_word`), else "eos".
  `include_stop_str` is sent as vLLM's `include_stop_str_in_output`; if a server drops
  the stop string anyway, it is appended back.
- `top_k` and `seed` are sent when set (vLLM, SGLang and llama.cpp accept `top_k`; the
  OpenAI API ignores or rejects it). Request i gets seed `params.seed + i`.
"""

from __future__ import annotations

import json
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from reasonloop.config import UserError
from reasonloop.rollout.sampler import SamplingParams, request_defaults
from reasonloop.types import Sample, split_steps

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class RequestFailed(UserError, RuntimeError):
    """A request that failed for good (non-retryable status, or retries exhausted)."""


class OpenAISampler:
    """`Sampler` over an OpenAI-compatible server; see the module docstring."""

    def __init__(
        self,
        base_url: str,
        model: str,
        endpoint: Literal["completions", "chat"] = "completions",
        api_key: str | None = None,
        max_concurrency: int = 8,
        timeout: float = 120.0,
        max_retries: int = 4,
        backoff: float = 0.5,
        system_prompt: str = "",
        use_n: bool = True,
        token_ids: bool = False,
        extra_body: dict[str, Any] | None = None,
        model_id: str = "",
        prompt_format: Callable[[str], str] | None = None,
    ):
        """
        Args:
            base_url: up to and including the API version, e.g. "http://127.0.0.1:8000/v1".
            use_n: ask for all samples of a prompt in one request (`n`); False sends one request
                per sample (llama.cpp's server ignores `n`).
            backoff: seconds before the first retry; doubles each retry, with +-25 % jitter.
            prompt_format: endpoint "completions" only: the text sent for a raw prompt (e.g. its chat
                template); `Sample.prompt` stays the raw prompt.
        """
        if endpoint not in ("completions", "chat"):
            raise ValueError(f"endpoint must be 'completions' or 'chat', got {endpoint!r}")
        self.base_url, self.model, self.endpoint = base_url.rstrip("/"), model, endpoint
        self.api_key, self.max_concurrency, self.timeout = api_key, max_concurrency, timeout
        self.max_retries, self.backoff, self.system_prompt = max_retries, backoff, system_prompt
        self.use_n, self.token_ids, self.extra_body = use_n, token_ids, extra_body or {}
        self.model_id = model_id or model
        if prompt_format is not None and endpoint != "completions":
            raise ValueError("prompt_format applies to endpoint='completions' (chat servers apply their own template)")
        self.prompt_format = prompt_format

    def generate(
        self,
        prompts: list[str],
        samples_per_prompt: int = 1,
        params: SamplingParams | None = None,
        prefixes: list[str] | None = None,
    ) -> list[list[Sample]]:
        params, prefixes = request_defaults(prompts, params, prefixes)
        per_request = samples_per_prompt if self.use_n else 1
        jobs = [(i, k) for i in range(len(prompts)) for k in range(samples_per_prompt // per_request)]
        with ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
            choices = list(pool.map(
                lambda job: self._sample(prompts[job[0]], prefixes[job[0]], per_request, params,
                                         seed_offset=job[0] * samples_per_prompt + job[1]),
                jobs,
            ))
        groups: list[list[Sample]] = [[] for _ in prompts]
        for (i, _), got in zip(jobs, choices):
            groups[i] += [self._to_sample(c, prompts[i], prefixes[i], params) for c in got]
        return groups

    # --- one request

    def _sample(self, prompt: str, prefix: str, n: int, params: SamplingParams, seed_offset: int) -> list[dict]:
        body: dict[str, Any] = {"model": self.model, "n": n, "max_tokens": params.max_new_tokens,
                                "temperature": params.temperature, "top_p": params.top_p}
        if params.top_k:
            body["top_k"] = params.top_k
        if params.seed is not None:
            body["seed"] = params.seed + seed_offset
        if params.stop:
            body["stop"] = params.stop
            body["include_stop_str_in_output"] = params.include_stop_str
        if self.token_ids:
            body["return_tokens_as_token_ids"] = True
        if self.endpoint == "completions":
            text = self.prompt_format(prompt) if self.prompt_format else prompt
            body.update(prompt=text + prefix, logprobs=1)
        else:
            messages = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
            messages.append({"role": "user", "content": prompt})
            if prefix:
                messages.append({"role": "assistant", "content": prefix})
                body.update(continue_final_message=True, add_generation_prompt=False)
            body.update(messages=messages, logprobs=True)
        body.update(self.extra_body)
        path = "/completions" if self.endpoint == "completions" else "/chat/completions"
        choices = sorted(self._post(path, body)["choices"], key=lambda c: c.get("index", 0))
        if len(choices) != n:
            raise RequestFailed(f"asked for n={n} choices, server returned {len(choices)} (try use_n=False)")
        return choices

    def _post(self, path: str, body: dict) -> dict:
        """POST JSON with timeout and retries; returns the decoded JSON response."""
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        for attempt in range(self.max_retries + 1):
            try:
                request = urllib.request.Request(self.base_url + path, data=data, headers=headers, method="POST")
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return json.loads(response.read())
            except urllib.error.HTTPError as e:
                detail = e.read().decode(errors="replace")[:500]
                if e.code not in RETRY_STATUS:
                    raise RequestFailed(f"POST {path}: HTTP {e.code}: {detail}") from e
                error: Exception = RequestFailed(f"POST {path}: HTTP {e.code}: {detail}")
            except (urllib.error.URLError, TimeoutError, ConnectionError, json.JSONDecodeError) as e:
                error = e  # refused, reset, timed out, truncated body
            if attempt < self.max_retries:
                time.sleep(self.backoff * 2**attempt * random.uniform(0.75, 1.25))
        raise RequestFailed(f"POST {path} failed after {self.max_retries + 1} attempts: {error!r}") from error

    # --- response -> Sample

    def _to_sample(self, choice: dict, prompt: str, prefix: str, params: SamplingParams) -> Sample:
        if self.endpoint == "completions":
            text = choice.get("text") or ""
            lp = choice.get("logprobs") or {}
            tokens, logprobs = lp.get("tokens") or [], lp.get("token_logprobs") or []
        else:
            text = (choice.get("message") or {}).get("content") or ""
            content = (choice.get("logprobs") or {}).get("content") or []
            tokens, logprobs = [c.get("token", "") for c in content], [c.get("logprob") for c in content]
        stop_word = choice.get("stop_reason", choice.get("stopping_word"))
        if choice.get("finish_reason") == "length":
            reason = "length"
        elif isinstance(stop_word, str) and stop_word in params.stop:
            reason = "stop"
            if params.include_stop_str and not text.endswith(stop_word):
                text += stop_word
        else:
            reason = "eos"
        ids = [int(t.split(":", 1)[1]) for t in tokens if t.startswith("token_id:")] if self.token_ids else []
        return Sample(
            problem_id="", prompt=prompt, text=text, token_ids=ids,
            logprobs=[float(x) for x in logprobs if x is not None], finish_reason=reason,
            steps=split_steps(prefix + text, params.step_separator), model_id=self.model_id,
            meta={"prefix": prefix} if prefix else {},
        )
