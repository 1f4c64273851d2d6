"""Multi-turn rollouts: conversations rendered with the chat template, token-exact trajectories.

    engine = MultiTurnEngine(TorchEngine(model, tokenizer))
    groups = engine.run(problems, make_env, samples_per_problem=4,
                        params=SamplingParams(temperature=1.0, max_new_tokens=128), limits=Limits(max_turns=4))
    groups[i][j]          # Trajectory: prompt_ids, token_ids, loss_mask, logprobs, turns, turn_rewards

How a run goes: every trajectory's opening conversation is rendered with the tokenizer's
chat template (tools passed as `tools=`) and tokenized once. Each trajectory then alternates
assistant turns (sampled) with observations (the environment's messages, rendered and
tokenized as the *difference* the template makes when they are appended: `ChatRenderer`).
The sampled ids are kept as drawn, never re-tokenized from text; the inserted ids carry
loss mask 0.

`kv="cache"` (the default for Llama-family models): each trajectory keeps its KV cache for
its whole life. A trajectory whose turn ends has its last token and its observation's tokens
appended to its own cache (one "extend" forward over only those rows), then decodes on; the
others keep decoding in the same step, so the batch mixes trajectories at different turns,
and a finished trajectory's slot is taken by a waiting one. Each row has its own cache
length, so this file has its own attention over ragged rows (`extend`, `decode_rows`) around
the one Llama layer of `models/llama.py`; `models.decode.forward`/`decode_step` assume one
shared cache column for all rows, which holds for one prompt batch but not across turns.
`kv="reprefill"`: each turn is one `TorchEngine` batch over the whole history so far (the
way a single-turn engine does multi-turn, and the fallback for models the bare forward does
not cover). Both modes draw the same random numbers (row key mixed with the turn, the token
index within the turn), so they produce the same trajectories (tested); `bench/multiturn.py`
measures the difference in speed.

The API backends (`OpenAIMultiTurn`, `VLLMMultiTurn`) are in `rollout/multiturn_api.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F

from reasonloop.envs.base import (
    EnvFactory,
    Environment,
    Limits,
    Message,
    Step,
    Trajectory,
    add_counts,
    summarize,
)
from reasonloop.envs.game import two_seat
from reasonloop.envs.tools import Tool
from reasonloop.models import llama
from reasonloop.models.decode import decode_attention, keep_rows_in_place
from reasonloop.models.llama import LlamaWeights
from reasonloop.models.policy import encode_prompt
from reasonloop.rollout.engine import TorchEngine, _StopChecker, compact_order, pick_tokens, row_uniforms
from reasonloop.rollout.sampler import SamplingParams
from reasonloop.types import Group, Problem


def tool_from_function(fn: Callable[..., Any], name: str | None = None) -> Tool:
    """A `Tool` from a plain function with type hints and a Google-style docstring.

    The schema is `transformers.utils.get_json_schema(fn)`, the format chat templates take.
    """
    from transformers.utils import get_json_schema

    schema = get_json_schema(fn)
    if name is not None:
        schema["function"]["name"] = name
    return Tool(schema["function"]["name"], fn, schema)


# ---------------------------------------------------------------------------------------
# Rendering conversations to token ids

def fallback_text(messages: list[Message], eos: str, generation_prompt: bool) -> str:
    """The plain format for tokenizers without a chat template.

    A system message and the first user message render exactly as `format_prompt` renders a
    single-turn prompt (so one-turn tasks see the same tokens as before); an assistant turn is
    its text and EOS; any later message is "\\n<role>: <content>\\n". `generation_prompt` adds
    nothing: the model continues right after the last message.
    """
    out, first_user = "", True
    for m in messages:
        role, content = m["role"], m.get("content") or ""
        if role == "system":
            out += content + "\n"
        elif role == "assistant":
            out += content + eos
        elif role == "user" and first_user:
            out += content
            first_user = False
        else:
            out += f"\n{m.get('name', role) if role == 'tool' else role}: {content}\n"
    return out


class ChatRenderer:
    """Token ids of a conversation's opening and of each observation appended to it."""

    _PROBE: ClassVar[list[Message]] = [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]

    def __init__(self, tokenizer, eos_ids: list[int], use_chat_template: bool = True):
        self.tok, self.eos_ids = tokenizer, set(eos_ids)
        self.templated = use_chat_template and bool(getattr(tokenizer, "chat_template", None))

    def text(self, messages: list[Message], tools: list[dict], generation_prompt: bool) -> str:
        if self.templated:
            return self.tok.apply_chat_template(messages, tools=tools or None, tokenize=False,
                                                add_generation_prompt=generation_prompt)
        return fallback_text(messages, self.tok.eos_token, generation_prompt)

    def ids(self, messages: list[Message], tools: list[dict], generation_prompt: bool) -> list[int]:
        return encode_prompt(self.tok, self.text(messages, tools, generation_prompt))

    def opening(self, messages: list[Message], tools: list[dict]) -> list[int]:
        """The prompt: the opening conversation and the generation prompt."""
        return self.ids(messages, tools, True)

    def observation(self, messages: list[Message], tools: list[dict], ended_with_eos: bool) -> list[int]:
        """Ids to append after an assistant turn: (its end-of-turn token if the model did not
        draw one), what the template puts after that token, the messages, the generation prompt.

        Computed on a probe conversation, so the history's rendering never changes the result:
        ids(probe + messages) minus ids(probe), both through the template.
        """
        base = self.ids(self._PROBE, tools, False)
        full = self.ids(self._PROBE + list(messages), tools, True)
        if full[: len(base)] == base:
            delta = full[len(base):]
        else:  # a template whose tokens merge across the boundary: tokenize the text difference
            base_text = self.text(self._PROBE, tools, False)
            full_text = self.text(self._PROBE + list(messages), tools, True)
            delta = self.tok(full_text[len(base_text):], add_special_tokens=False)["input_ids"]
        ends = [i for i, t in enumerate(base) if t in self.eos_ids]
        if not ends:
            return delta
        end = ends[-1]
        return ([] if ended_with_eos else [base[end]]) + base[end + 1:] + delta


# ---------------------------------------------------------------------------------------
# Forward passes over rows with their own cache lengths (the bare Llama layer of models/llama.py)

def extend(w: LlamaWeights, keys: list[torch.Tensor], values: list[torch.Tensor], slots: torch.Tensor,
           ids: torch.Tensor, lengths: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Append `ids` (R, S), right-padded, `counts` (R,) real, to cache rows `slots` (R,) whose first
    `lengths` (R,) columns are filled. Returns the logits after each row's last real token (R, V).

    keys/values: per layer (B, H_kv, C, D), written in place at columns lengths[r] + s (the
    position of the token: rows are not padded, each starts at column 0).
    """
    r_n, s_n = ids.shape
    steps = torch.arange(s_n, device=ids.device)
    pos = lengths[:, None] + steps  # (R, S)
    r_idx, s_idx = (steps[None] < counts[:, None]).nonzero(as_tuple=True)  # the real tokens
    dst_slot, dst_col = slots[r_idx], pos[r_idx, s_idx]  # (N,) where their K/V go
    end = int((lengths + counts).max())
    mask = torch.arange(end, device=ids.device)[None, None, :] <= pos[:, :, None]  # (R, S, L) causal
    x = F.embedding(ids, w.embed)  # (R, S, E)
    cos, sin = llama.rope(w, pos, x.dtype)  # (R, S, 1, D)
    for i, layer in enumerate(w.layers):

        def attend(q, k, v, i=i):  # (R, S, H, D), (R, S, H_kv, D) x2
            keys[i][dst_slot, :, dst_col] = k[r_idx, s_idx]  # (N, H_kv, D)
            values[i][dst_slot, :, dst_col] = v[r_idx, s_idx]
            out = F.scaled_dot_product_attention(q.transpose(1, 2), keys[i][slots, :, :end],
                                                 values[i][slots, :, :end], attn_mask=mask[:, None],
                                                 enable_gqa=w.heads != w.kv_heads)  # (R, H, S, D)
            return out.transpose(1, 2)

        x = llama.decoder_layer(w, layer, x, cos, sin, attend)
    last = x[torch.arange(r_n, device=ids.device), counts - 1]  # (R, E)
    return llama.lm_head(w, llama.final_norm(w, last))  # (R, V)


def decode_rows(w: LlamaWeights, keys: list[torch.Tensor], values: list[torch.Tensor], tokens: torch.Tensor,
                lengths: torch.Tensor) -> torch.Tensor:
    """One token per cache row b (all B rows), written at its own column lengths[b]. Returns (B, V).

    `models.decode.decode_step`'s maths with a per-row write column and key mask.
    """
    b_n = tokens.shape[0]
    rows = torch.arange(b_n, device=tokens.device)
    end = int(lengths.max()) + 1
    cols = torch.arange(end, device=tokens.device)
    bias = torch.zeros((b_n, end), device=tokens.device).masked_fill_(cols[None] > lengths[:, None],
                                                                       float("-inf"))[:, None, None]
    scale = 1.0 / w.head_dim**0.5
    x = F.embedding(tokens, w.embed)  # (B, E)
    cos, sin = llama.rope(w, lengths, x.dtype)  # (B, 1, D)
    for i, layer in enumerate(w.layers):

        def attend(q, k, v, i=i):  # (B, H, D), (B, H_kv, D) x2
            keys[i][rows, :, lengths] = k
            values[i][rows, :, lengths] = v
            return decode_attention(q, keys[i][:b_n, :, :end], values[i][:b_n, :, :end], bias, scale)

        x = llama.decoder_layer(w, layer, x, cos, sin, attend)
    return llama.lm_head(w, llama.final_norm(w, x))  # (B, V)


# ---------------------------------------------------------------------------------------
# The engine

def turn_key(key: int, turn: int) -> int:
    """The random-stream key of (trajectory key, turn): turn 0 keeps the single-turn engine's key."""
    return (key + turn * 0x9E3779B1) & 0xFFFFFFFF


@dataclass
class _Row:
    """A live trajectory: its environment, its cache slot, and the turn being sampled."""

    traj: Trajectory
    env: Environment
    key: int
    slot: int = -1
    length: int = 0  # tokens in its KV cache
    pending: list[int] = field(default_factory=list)  # ids to feed before the next draw
    turn_ids: list[int] = field(default_factory=list)
    turn_logps: list[float] = field(default_factory=list)


class TurnLoop:
    """What every token-in/token-out multi-turn sampler shares: the opening of each trajectory,
    recording a finished turn, stepping the environments, rendering their observations."""

    def __init__(self, tokenizer, eos_ids: list[int], use_chat_template: bool = True, system_prompt: str = "",
                 model_id: str = "", env_workers: int = 8):
        self.tok, self.eos_ids = tokenizer, set(eos_ids)
        self.renderer = ChatRenderer(tokenizer, eos_ids, use_chat_template)
        self.system_prompt, self.model_id, self.env_workers = system_prompt, model_id, env_workers

    def start(self, problems: list[Problem], make_env: EnvFactory, samples_per_problem: int,
              params: SamplingParams) -> list[_Row]:
        """One row per trajectory (problem-major), its environment reset and its prompt rendered."""
        if params.stop and not params.include_stop_str:
            raise ValueError("multi-turn sampling keeps the stop string in the turn (include_stop_str=True): "
                             "every drawn token stays in the trajectory")
        if two_seat(make_env):
            raise ValueError("a two-seat game samples both seats: use rollout.selfplay.SelfPlayRunner "
                             "(multiturn_runner(sampler, make_env) picks it)")
        rows: list[_Row] = []
        for i, problem in enumerate(problems):
            for j in range(samples_per_problem):
                env = make_env()
                opening = env.reset(problem)
                if self.system_prompt and not (opening and opening[0]["role"] == "system"):
                    opening = [{"role": "system", "content": self.system_prompt}, *opening]
                prompt_ids = self.renderer.opening(opening, env.tools)
                traj = Trajectory(problem.id, problem.prompt, prompt_ids=prompt_ids, messages=list(opening),
                                  model_id=self.model_id)
                rows.append(_Row(traj, env, key=i * samples_per_problem + j, pending=list(prompt_ids)))
        return rows

    def turn_budget(self, row: _Row, params: SamplingParams, limits: Limits) -> int:
        """Tokens the row's current turn may draw: the turn's limit, or what the trajectory has left."""
        return max(1, min(params.max_new_tokens, limits.max_tokens - len(row.traj.token_ids)))

    @staticmethod
    def collect(rows: list[_Row], n_problems: int, samples_per_problem: int) -> list[list[Trajectory]]:
        out = [[rows[i * samples_per_problem + j].traj for j in range(samples_per_problem)]
               for i in range(n_problems)]
        for group in out:
            for t in group:
                t.check()
        return out

    def end_turns(self, ended: list[tuple[_Row, str]], limits: Limits, pool) -> list[_Row]:
        """Record the ended turns (row, finish reason), step their environments; returns the rows
        that go on (with their observation ids pending)."""
        if not ended:
            return []
        texts = [self.tok.decode(r.turn_ids, skip_special_tokens=True) for r, _ in ended]
        steps: list[Step] = list(pool.map(lambda rt: rt[0].env.step(rt[1]), zip([r for r, _ in ended], texts)))
        going_on = []
        for (row, reason), text, step in zip(ended, texts, steps):
            t = row.traj
            start = len(t.token_ids)
            t.token_ids += row.turn_ids
            t.loss_mask += [1] * len(row.turn_ids)
            t.logprobs += row.turn_logps
            t.turns.append((start, len(t.token_ids)))
            t.turn_rewards.append(float(step.reward))
            t.messages.append({"role": "assistant", "content": text})
            add_counts(t.counts, step.info)
            last = row.turn_ids[-1:]
            row.turn_ids, row.turn_logps = [], []
            if step.done:
                t.ending = "done"
                continue
            if t.num_turns >= limits.max_turns:
                t.ending = "max_turns"
                t.counts["turn_limit"] = t.counts.get("turn_limit", 0) + 1
                continue
            observation = list(step.observation)
            if t.num_turns == limits.max_turns - 1 and limits.last_turn_notice:
                observation.append({"role": "user", "content": limits.last_turn_notice})
                t.counts["last_turn_notice"] = t.counts.get("last_turn_notice", 0) + 1
            obs_ids = self.renderer.observation(observation, row.env.tools, bool(last) and last[0] in self.eos_ids)
            if len(t.token_ids) + len(obs_ids) >= limits.max_tokens:
                t.ending = "max_tokens"
                t.counts["token_limit"] = t.counts.get("token_limit", 0) + 1
                continue
            t.token_ids += obs_ids
            t.loss_mask += [0] * len(obs_ids)
            t.logprobs += [0.0] * len(obs_ids)
            t.messages += observation
            row.pending = last + obs_ids  # the turn's last drawn token enters the cache with them
            going_on.append(row)
        return going_on

class MultiTurnEngine(TurnLoop):
    """Multi-turn sampling over a `TorchEngine`'s model; see the module docstring.

    Args:
        engine: the model, tokenizer, EOS ids, chat-template and system-prompt settings, batch
            size and decode-path choice come from it.
        kv: "cache" keeps each trajectory's KV cache across turns (Llama-family models, the bare
            forward); "reprefill" re-runs the whole history each turn; "auto" picks "cache"
            when the bare forward supports the model.
        env_workers: threads stepping environments (sandboxed tools) in parallel.
    """

    def __init__(self, engine: TorchEngine, kv: Literal["auto", "cache", "reprefill"] = "auto",
                 env_workers: int = 8):
        if kv not in ("auto", "cache", "reprefill"):
            raise ValueError(f"kv must be 'auto', 'cache' or 'reprefill', got {kv!r}")
        reason = llama.unsupported_reason(engine.model) if engine.decode != "hf" else "decode='hf'"
        if reason is None and llama.window(engine.model.config) is not None:
            reason = "sliding-window attention (the ragged cache attention here has no window)"
        if kv == "cache" and reason:
            raise ValueError(f"kv='cache' needs the bare Llama forward: {reason}")
        super().__init__(engine.tokenizer, engine.eos_ids(), engine.use_chat_template, engine.system_prompt,
                         engine.model_id, env_workers)
        self.engine, self.kv = engine, ("reprefill" if reason else "cache") if kv == "auto" else kv

    @torch.inference_mode()
    def run(self, problems: list[Problem], make_env: EnvFactory, samples_per_problem: int = 1,
            params: SamplingParams | None = None, limits: Limits | None = None) -> list[list[Trajectory]]:
        params, limits = params or SamplingParams(), limits or Limits()
        rows = self.start(problems, make_env, samples_per_problem, params)
        seed = params.seed if params.seed is not None else int(torch.randint(0, 2**62, ()).item())
        model = self.engine.model
        was_training = model.training
        model.eval()
        try:
            with ThreadPoolExecutor(self.env_workers) as pool:
                if self.kv == "cache":
                    self._run_cached(rows, params, limits, seed, pool)
                else:
                    self._run_reprefill(rows, params, limits, seed, pool)
        finally:
            model.train(was_training)
        return self.collect(rows, len(problems), samples_per_problem)

    # --- kv="reprefill": one TorchEngine batch per turn over the whole history

    def _run_reprefill(self, rows: list[_Row], params: SamplingParams, limits: Limits, seed: int, pool) -> None:
        engine = self.engine
        weights = LlamaWeights.from_model(engine.model, fuse=engine.fuse_projections) \
            if engine.decode_path() == "fast" else None
        live = list(rows)
        while live:
            ended = []
            for start in range(0, len(live), engine.max_batch_size):
                chunk = live[start: start + engine.max_batch_size]
                contexts = [r.traj.prompt_ids + r.traj.token_ids for r in chunk]
                # identical contexts (a problem's samples at turn 0) share one prefill
                first = {tuple(c): n for n, c in reversed(list(enumerate(contexts)))}
                context_ids = [first[tuple(c)] for c in contexts]
                budget = max(self.turn_budget(r, params, limits) for r in chunk)
                turn_params = SamplingParams(**{**vars(params), "max_new_tokens": budget})
                keys = [turn_key(r.key, r.traj.num_turns) for r in chunk]
                outs = engine._generate_batch(contexts, context_ids, keys, turn_params, seed, weights)
                for row, (ids_, lps, reason, _) in zip(chunk, outs):
                    cap = self.turn_budget(row, params, limits)
                    if len(ids_) > cap:  # the shared batch budget ran past this row's own
                        ids_, lps, reason = ids_[:cap], lps[:cap], "length"
                    row.turn_ids, row.turn_logps = list(ids_), list(lps)
                    ended.append((row, reason))
            live = self.end_turns(ended, limits, pool)

    # --- kv="cache": one KV cache row per live trajectory, kept across turns

    def _run_cached(self, rows: list[_Row], params: SamplingParams, limits: Limits, seed: int, pool) -> None:
        engine, device = self.engine, self.engine.device
        w = LlamaWeights.from_model(engine.model, fuse=False)
        n_slots = min(engine.max_batch_size, len(rows))
        capacity = max(len(r.pending) for r in rows) + limits.max_tokens + 2
        shape = (n_slots, w.kv_heads, capacity, w.head_dim)
        keys = [w.embed.new_zeros(shape) for _ in w.layers]  # zeros: unwritten columns stay finite
        values = [w.embed.new_zeros(shape) for _ in w.layers]
        eos = torch.tensor(engine.eos_ids(), device=device)
        checker = _StopChecker(self.tok, params.stop, True, len(rows)) if params.stop else None
        waiting = list(reversed(rows))
        slot_row: list[_Row | None] = [None] * n_slots
        for s in range(n_slots):
            slot_row[s] = waiting.pop()
            slot_row[s].slot = s
        logits = torch.zeros((n_slots, w.lm_head[0].shape[0]), device=device)
        while any(r is not None for r in slot_row):
            self._feed(w, keys, values, [r for r in slot_row if r is not None and r.pending], logits)
            live = [s for s, r in enumerate(slot_row) if r is not None]
            live_t = torch.tensor(live, device=device)
            steps = torch.tensor([len(slot_row[s].turn_ids) for s in live], device=device)
            turn_keys = torch.tensor([turn_key(slot_row[s].key, slot_row[s].traj.num_turns) for s in live],
                                     device=device)
            u = None if params.greedy else row_uniforms(seed, turn_keys, steps)
            tokens, logps = pick_tokens(logits[live_t], params, None, u)
            hit_eos = torch.isin(tokens, eos).tolist()
            ended = []
            for s, token, logp, is_eos in zip(live, tokens.tolist(), logps.tolist(), hit_eos):
                row = slot_row[s]
                if not row.turn_ids and checker is not None:
                    checker.ids[row.key], checker.text[row.key], checker.ends[row.key] = [], "", []
                    checker.prefix_at[row.key] = checker.read_at[row.key] = 0
                row.turn_ids.append(token)
                row.turn_logps.append(logp)
                if is_eos:
                    ended.append((row, "eos"))
                elif checker is not None and checker.step([row.key], [token]):
                    ended.append((row, "stop"))
                elif len(row.turn_ids) >= self.turn_budget(row, params, limits):
                    ended.append((row, "length"))
            going_on = {id(r) for r in self.end_turns(ended, limits, pool)}
            for row, _ in ended:
                if id(row) not in going_on:  # finished: its slot takes a waiting trajectory
                    new = waiting.pop() if waiting else None
                    slot_row[row.slot] = new
                    if new is not None:
                        new.slot = row.slot
            decoding = [s for s in live if slot_row[s] is not None and not slot_row[s].pending]
            if not waiting and sum(r is None for r in slot_row) >= max(1, engine.drop_fraction * n_slots):
                slot_row, logits, keys, values = self._compact(slot_row, logits, keys, values)
            if decoding:
                self._decode(w, keys, values, slot_row, logits)

    def _feed(self, w, keys, values, feeding: list[_Row], logits: torch.Tensor) -> None:
        """Run the pending ids of `feeding` rows into their caches; identical fresh prompts run once."""
        if not feeding:
            return
        device = logits.device
        first: dict[tuple, _Row] = {}
        copies: list[tuple[_Row, _Row]] = []
        todo = []
        for r in feeding:
            signature = tuple(r.pending) if r.length == 0 else None
            if signature is not None and signature in first:
                copies.append((r, first[signature]))
            else:
                if signature is not None:
                    first[signature] = r
                todo.append(r)
        width = max(len(r.pending) for r in todo)
        ids = torch.full((len(todo), width), self.tok.pad_token_id or 0, dtype=torch.long)
        for n, r in enumerate(todo):
            ids[n, : len(r.pending)] = torch.tensor(r.pending)
        slots = torch.tensor([r.slot for r in todo], device=device)
        out = extend(w, keys, values, slots, ids.to(device), torch.tensor([r.length for r in todo], device=device),
                     torch.tensor([len(r.pending) for r in todo], device=device))
        logits[slots] = out.to(logits.dtype)
        for r in todo:
            r.length += len(r.pending)
            r.pending = []
        for r, source in copies:
            n = len(r.pending)
            for buf in keys + values:
                buf[r.slot, :, :n] = buf[source.slot, :, :n]
            logits[r.slot] = logits[source.slot]
            r.length, r.pending = n, []

    def _decode(self, w, keys, values, slot_row: list[_Row | None], logits: torch.Tensor) -> None:
        """Feed every decoding row its last drawn token. Rows not decoding (just ended a turn, or an
        empty slot) take a dummy token at their next free column: overwritten later, logits unused."""
        device = logits.device
        n = len(slot_row)
        tokens = torch.tensor([r.turn_ids[-1] if r is not None and r.turn_ids and not r.pending else 0
                               for r in slot_row], device=device)
        lengths = torch.tensor([min(r.length, keys[0].shape[2] - 1) if r is not None else 0 for r in slot_row],
                               device=device)
        logits[:n] = decode_rows(w, keys, values, tokens, lengths).to(logits.dtype)
        for r in slot_row:
            if r is not None and r.turn_ids and not r.pending:
                r.length += 1

    def _compact(self, slot_row, logits, keys, values):
        """Drop empty slots, moving at most as many cache rows as were freed (`compact_order`)."""
        done = torch.tensor([r is None for r in slot_row])
        keep = compact_order(done).to(logits.device)
        if len(keep) == len(slot_row):
            return slot_row, logits, keys, values
        longest = max(r.length for r in slot_row if r is not None) if len(keep) else 0
        keys = [keep_rows_in_place(b, keep, longest) for b in keys]
        values = [keep_rows_in_place(b, keep, longest) for b in values]
        new_rows = [slot_row[i] for i in keep.tolist()]
        for s, r in enumerate(new_rows):
            r.slot = s
        return new_rows, logits[keep], keys, values


# ---------------------------------------------------------------------------------------
# A frozen copy of a policy as a game opponent

class PolicyOpponent:
    """A `Sampler` playing the opponent's seat of `envs.game.TicTacToeEnv` (a frozen policy copy).

    It sees the board from its own side and answers 'Move: <cell>'; an unreadable or illegal
    answer falls back to the lowest free cell, counted in `fallbacks`.
    """

    def __init__(self, sampler, params: SamplingParams | None = None):
        self.sampler, self.fallbacks = sampler, 0
        self.params = params or SamplingParams(temperature=1.0, max_new_tokens=32)

    def move(self, board: str, legal: list[int], mark: str) -> int:
        from reasonloop.envs.game import _MOVE, show

        prompt = f"Tic-tac-toe. You play {mark}. Board (free cells numbered):\n{show(board)}\nReply with your " \
                 f"move as 'Move: <cell>'."
        text = self.sampler.generate([prompt], 1, self.params)[0][0].text
        found = [int(c) for c in _MOVE.findall(text)]
        if found and found[-1] in legal:
            return found[-1]
        self.fallbacks += 1
        return legal[0]


# ---------------------------------------------------------------------------------------
# Groups for the training loops, and evaluation

def sample_env_groups(runner, problems: list[Problem], k: int, params: SamplingParams, make_env: EnvFactory,
                      limits: Limits) -> list[Group]:
    """`k` trajectories per problem as `Group`s of `Sample`s (`Trajectory.to_sample`), the loops' unit.

    The environment's reward is the sample's "total" (the sum of its turn rewards) and "correct"
    is reward >= 1; "format" and "length" are 0 (no shaping terms on environment rewards).
    """
    groups = []
    for problem, trajectories in zip(problems, runner.run(problems, make_env, k, params, limits), strict=True):
        samples = []
        for t in trajectories:
            if not t.token_exact:
                raise ValueError("training on trajectories needs their exact token ids: sample them with the torch "
                                 "engine or vLLM, not an OpenAI-compatible server")
            s = t.to_sample(params.step_separator)
            s.rewards.update(total=t.reward, format=0.0, length=0.0)
            samples.append(s)
        groups.append(Group(problem, samples))
    return groups


def evaluate_env(runner, problems: list[Problem], make_env: EnvFactory, limits: Limits,
                 max_new_tokens: int) -> tuple[dict[str, float], list[Trajectory]]:
    """Greedy, one trajectory per problem: accuracy (reward >= 1), mean reward, and per problem the
    turns, tool calls and error counts (`envs.summarize`). Returns (metrics, trajectories)."""
    params = SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens)
    # a two-seat game (self-play runner) gives two trajectories, one per seat, per problem
    trajectories = [t for g in runner.run(problems, make_env, 2 if two_seat(make_env) else 1, params, limits)
                    for t in g] if problems else []
    stats = summarize(trajectories)
    metrics = {"eval/greedy_accuracy": sum(t.reward >= 1.0 for t in trajectories) / max(1, len(trajectories)),
               **{f"eval/{k}": v for k, v in stats.items() if k != "trajectories"}}
    return metrics, trajectories
