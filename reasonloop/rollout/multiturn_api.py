"""Multi-turn rollouts through vLLM (token-in/token-out) and OpenAI-compatible servers (chat + tools).

    runner = VLLMMultiTurn(VLLMEngine(ModelConfig(path=..., device="cuda")))
    groups = runner.run(problems, make_env, samples_per_problem=8, params=..., limits=...)   # token-exact

    runner = OpenAIMultiTurn(OpenAISampler(url, model="Qwen/Qwen2.5-7B-Instruct", endpoint="chat"))
    groups = runner.run(problems, make_env, ...)        # messages, tool calls and rewards; not token-exact

`VLLMMultiTurn` renders and tokenizes here (`ChatRenderer`, the same ids as the torch engine)
and sends vLLM `prompt_token_ids` = prompt + everything so far each turn; the drawn ids come
back as ids, so trajectories are token-exact like `MultiTurnEngine`'s. vLLM's prefix cache
keeps the history's KV blocks between turns (what `kv="cache"` does in the torch engine).

`OpenAIMultiTurn` uses the server's chat API: the environment's tools go in `tools`, the
reply's `tool_calls` are handed to the environment as Hermes `<tool_call>` blocks (its one
parsing path) and its observations go back as `tool` messages with the calls' ids. The server
renders and tokenizes the conversation, so the ids of inserted text are unknown here: the
trajectory has `token_exact=False` (messages, rewards and counts only), which is what evaluation
against a served model needs; train on trajectories from the torch engine or vLLM. The token
limit counts the server's reported completion tokens (`usage`), or characters / 4 without it; the
episode's total is in `counts["completion_tokens"]` (what evaluation and search charge).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from reasonloop.envs.base import EnvFactory, Limits, Message, Trajectory, add_counts
from reasonloop.rollout.multiturn import TurnLoop, turn_key
from reasonloop.rollout.openai_backend import OpenAISampler
from reasonloop.rollout.sampler import SamplingParams
from reasonloop.types import Problem


class VLLMMultiTurn(TurnLoop):
    """Token-exact multi-turn sampling over a `VLLMEngine` (one vLLM batch per round of turns)."""

    def __init__(self, engine, env_workers: int = 8):
        tok = engine.tokenizer
        super().__init__(tok, [tok.eos_token_id], engine.config.use_chat_template, engine.config.system_prompt,
                         engine.model_id, env_workers)
        self.engine = engine

    def run(self, problems: list[Problem], make_env: EnvFactory, samples_per_problem: int = 1,
            params: SamplingParams | None = None, limits: Limits | None = None) -> list[list[Trajectory]]:
        params, limits = params or SamplingParams(), limits or Limits()
        rows = self.start(problems, make_env, samples_per_problem, params)
        live = list(rows)
        with ThreadPoolExecutor(self.env_workers) as pool:
            while live:
                requests = [{"prompt_token_ids": r.traj.prompt_ids + r.traj.token_ids} for r in live]
                vparams = [self.engine._vllm_params(
                    n=1, temperature=params.temperature, top_p=params.top_p,
                    top_k=params.top_k if params.top_k > 0 else -1, max_tokens=self.turn_budget(r, params, limits),
                    stop=list(params.stop) or None, include_stop_str_in_output=True,
                    seed=None if params.seed is None else params.seed + turn_key(r.key, r.traj.num_turns),
                    logprobs=0) for r in live]
                outputs = self.engine.llm.generate(requests, vparams, use_tqdm=False)
                ended = []
                for row, out in zip(live, outputs):
                    c = out.outputs[0]
                    row.turn_ids = list(c.token_ids)
                    row.turn_logps = [float(step[t].logprob) for t, step in zip(row.turn_ids, c.logprobs or [])]
                    if len(row.turn_logps) != len(row.turn_ids):
                        raise ValueError("vLLM returned no logprob for some drawn tokens (logprobs=0 was asked)")
                    ended.append((row, "length" if c.finish_reason == "length" else "stop"))
                live = self.end_turns(ended, limits, pool)
        return self.collect(rows, len(problems), samples_per_problem)


def _as_hermes(calls: list[dict]) -> str:
    """The API's tool_calls as `<tool_call>` blocks (arguments kept verbatim when they are not JSON)."""
    out = []
    for c in calls:
        fn = c.get("function") or {}
        raw = fn.get("arguments") or "{}"
        try:
            arguments: Any = json.loads(raw) if isinstance(raw, str) else raw
        except json.JSONDecodeError:
            out.append(f'<tool_call>{{"name": {json.dumps(fn.get("name"))}, "arguments": {raw}}}</tool_call>')
            continue
        out.append(f"<tool_call>{json.dumps({'name': fn.get('name'), 'arguments': arguments})}</tool_call>")
    return "".join(out)


class OpenAIMultiTurn:
    """Multi-turn episodes against an OpenAI-compatible chat server; see the module docstring."""

    def __init__(self, sampler: OpenAISampler):
        if sampler.endpoint != "chat":
            raise ValueError("OpenAIMultiTurn needs an OpenAISampler with endpoint='chat'")
        self.sampler = sampler

    def run(self, problems: list[Problem], make_env: EnvFactory, samples_per_problem: int = 1,
            params: SamplingParams | None = None, limits: Limits | None = None) -> list[list[Trajectory]]:
        params, limits = params or SamplingParams(), limits or Limits()
        jobs = [(i, j) for i in range(len(problems)) for j in range(samples_per_problem)]
        with ThreadPoolExecutor(self.sampler.max_concurrency) as pool:
            done = list(pool.map(lambda job: self._episode(problems[job[0]], make_env(), params, limits,
                                                           job[0] * samples_per_problem + job[1]), jobs))
        return [done[i * samples_per_problem: (i + 1) * samples_per_problem] for i in range(len(problems))]

    def _episode(self, problem: Problem, env, params: SamplingParams, limits: Limits, key: int) -> Trajectory:
        opening = env.reset(problem)
        if self.sampler.system_prompt and not (opening and opening[0]["role"] == "system"):
            opening = [{"role": "system", "content": self.sampler.system_prompt}, *opening]
        traj = Trajectory(problem.id, problem.prompt, messages=list(opening), model_id=self.sampler.model_id,
                          token_exact=False)
        api: list[dict] = [dict(m) for m in opening]
        used = 0
        while True:
            body: dict[str, Any] = {"model": self.sampler.model, "messages": api, "temperature": params.temperature,
                                    "top_p": params.top_p, "n": 1,
                                    "max_tokens": max(1, min(params.max_new_tokens, limits.max_tokens - used))}
            if env.tools:
                body["tools"] = env.tools
            if params.top_k:
                body["top_k"] = params.top_k
            if params.seed is not None:
                body["seed"] = params.seed + turn_key(key, traj.num_turns)
            if params.stop:
                body.update(stop=params.stop, include_stop_str_in_output=True)
            body.update(self.sampler.extra_body)
            reply = self.sampler._post("/chat/completions", body)
            message = reply["choices"][0].get("message") or {}
            content, calls = message.get("content") or "", message.get("tool_calls") or []
            turn_tokens = int((reply.get("usage") or {}).get("completion_tokens", 0)) or (len(content) + 3) // 4
            used += turn_tokens
            add_counts(traj.counts, {"completion_tokens": turn_tokens})  # the ids are unknown: the cost is counted
            text = content + _as_hermes(calls)
            step = env.step(text)
            traj.messages.append({"role": "assistant", "content": text})
            traj.turn_rewards.append(float(step.reward))
            traj.turns.append((0, 0))
            add_counts(traj.counts, step.info)
            assistant: dict[str, Any] = {"role": "assistant", "content": content}
            if calls:
                assistant["tool_calls"] = calls
            api.append(assistant)
            if step.done:
                traj.ending = "done"
                return traj
            if traj.num_turns >= limits.max_turns:
                traj.ending = "max_turns"
                traj.counts["turn_limit"] = traj.counts.get("turn_limit", 0) + 1
                return traj
            if used >= limits.max_tokens:
                traj.ending = "max_tokens"
                traj.counts["token_limit"] = traj.counts.get("token_limit", 0) + 1
                return traj
            observation: list[Message] = list(step.observation)
            if traj.num_turns == limits.max_turns - 1 and limits.last_turn_notice:
                observation.append({"role": "user", "content": limits.last_turn_notice})
                traj.counts["last_turn_notice"] = traj.counts.get("last_turn_notice", 0) + 1
            ids = iter([c.get("id") for c in calls])
            for m in observation:
                out = dict(m)
                if m.get("role") == "tool":
                    call_id = next(ids, None)
                    if call_id:
                        out["tool_call_id"] = call_id
                api.append(out)
            traj.messages += observation


def multiturn_runner(sampler, make_env=None):
    """The multi-turn sampler over a single-turn one: `TorchEngine` -> `MultiTurnEngine`, `VLLMEngine` ->
    `VLLMMultiTurn`, a chat `OpenAISampler` -> `OpenAIMultiTurn` (not token-exact: evaluation only).
    With a two-seat game factory (`envs.two_seat(make_env)`, self-play): `rollout.selfplay.SelfPlayRunner`
    (torch engine or vLLM)."""
    from reasonloop.config import ConfigError
    from reasonloop.envs.game import two_seat
    from reasonloop.rollout.engine import TorchEngine
    from reasonloop.rollout.multiturn import MultiTurnEngine
    from reasonloop.rollout.vllm_backend import VLLMEngine

    if make_env is not None and two_seat(make_env):
        from reasonloop.rollout.selfplay import SelfPlayRunner

        if not isinstance(sampler, TorchEngine | VLLMEngine):
            raise ConfigError("self-play (opponent=self) samples token-exact trajectories: sampler.kind=torch or vllm")
        return SelfPlayRunner(sampler)
    if isinstance(sampler, TorchEngine):
        return MultiTurnEngine(sampler)
    if isinstance(sampler, VLLMEngine):
        return VLLMMultiTurn(sampler)
    if isinstance(sampler, OpenAISampler):
        return OpenAIMultiTurn(sampler)
    raise ConfigError(f"no multi-turn runner for a {type(sampler).__name__}: environments run on sampler.kind="
                      f"torch, vllm or openai in this process (not on Ray rollout workers)")
