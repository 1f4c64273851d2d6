"""The built-in torch sampling engine for any Hugging Face causal LM (CPU or CUDA).

How a call runs (see `rollout.sampler` for the contract):

1. Each prompt (+ prefix) is tokenized once. Prompts are sorted by length and packed,
   all samples of a prompt together, into batches under `max_batch_size` rows and
   `max_batch_tokens` (rows x (longest context + max_new_tokens)).
2. Prefill: each *distinct* context in a batch runs through the model once (left-padded)
   (`share_prefill`). On the bare path its samples then share its KV-cache slot until their
   draws differ (`share_decode`, `_SharedDecoder`); otherwise its cache is copied to its
   `samples_per_prompt` rows.
3. Decode: one token per row per step into a preallocated KV cache. Llama-family models
   run through a bare functional forward (`models/decode.py`, `decode="auto"`),
   any other model through its HF modules with `_PreallocatedLayer` (one buffer per
   layer sized for the longest row, no per-step concatenation). Rows that finish (EOS,
   stop string, length) are dropped from the batch (`drop_finished`): the last live rows
   move into the finished rows' slots (`compact_order`), so a drop copies at most as many
   cache rows as finished.
4. Stop strings are checked incrementally: each row's text grows by the newly decoded
   characters (the offset trick of vLLM's detokenizer), and only the tail is searched.

Sampling is batch-invariant: the random number for row (prompt i, sample j) at step t is
a hash of (seed, i * samples_per_prompt + j, t), and the token is drawn by inverting the
CDF with it. So a seeded call returns the same samples whatever the batch size, padding,
prefill sharing or row dropping, and `engine.generate` is reproducible given `seed`. With
`prompt_offset=k` prompt i counts as prompt k + i, so shards of a list spread over workers
draw what the whole list draws in one process.

Written by hand rather than calling `model.generate`: we need the sampling-time logprob of
every drawn token, stop strings checked per row, rows leaving the batch as they finish,
and control over batching. Measured effect of each choice: `docs/rollout.md`.
"""

from __future__ import annotations

import bisect
from typing import Literal

import torch
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer

from reasonloop.models import decode as bare
from reasonloop.models.decode import StaticKVCache, keep_rows_in_place
from reasonloop.models.forward import decode_path
from reasonloop.models.llama import LlamaWeights
from reasonloop.models.policy import ModelConfig, encode_context, load_model
from reasonloop.rollout.sampler import SamplingParams, request_defaults
from reasonloop.types import Sample, split_steps
from reasonloop.utils import optional_progress

# ---------------------------------------------------------------------------------------
# Pure sampling maths

def process_logits(logits: torch.Tensor, temperature: float, top_k: int, top_p: float) -> torch.Tensor:
    """Temperature, then top-k, then top-p (nucleus) filtering; removed entries become -inf.

    logits: (B, V) float. Returns (B, V).
    """
    logits = logits / temperature
    if top_k > 0 and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (B, V)
        probs = sorted_logits.softmax(-1)
        # drop a token when the mass *before* it already reaches top_p (keeps at least one)
        drop_sorted = (probs.cumsum(-1) - probs) >= top_p  # (B, V)
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def pick_tokens(
    logits: torch.Tensor,
    params: SamplingParams,
    generator: torch.Generator | None = None,
    uniforms: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Choose the next token per row; returns (tokens (B,), logprobs (B,)).

    logprobs are log softmax(logits / T) of the chosen token, before top-k/top-p (the
    contract in `rollout.sampler`). With `uniforms` ((B,) in (0, 1)) a token is drawn by
    inverting the CDF of the filtered distribution at that number, which makes the draw a
    function of the row's own random number only; otherwise `torch.multinomial(generator)`.
    """
    logits = logits.float()
    if params.greedy:
        logp = torch.log_softmax(logits, dim=-1)  # (B, V)
        tokens = logits.argmax(dim=-1)
    else:
        logp = torch.log_softmax(logits / params.temperature, dim=-1)  # (B, V)
        probs = process_logits(logits, params.temperature, params.top_k, params.top_p).softmax(-1)
        if uniforms is None:
            tokens = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        else:
            cdf = probs.cumsum(-1)  # (B, V); filtered-out tokens add 0, so they are never hit
            target = uniforms.to(cdf)[:, None] * cdf[:, -1:]  # (B, 1), in (0, total]
            tokens = torch.searchsorted(cdf, target).squeeze(-1).clamp_(max=logits.shape[-1] - 1)
    return tokens, logp.gather(-1, tokens[:, None]).squeeze(-1)


def compact_order(done: torch.Tensor) -> torch.Tensor:
    """Which rows to keep, in which order, when the `done` rows (A,) bool leave the batch.

    Live rows in the first A' = (number live) slots stay put; the live rows beyond A'
    move into the holes left by finished rows, in order. So dropping k rows moves at most
    k rows of the KV cache. Returns (A',): new slot b holds old row keep[b].
    """
    live = ~done
    n = int(live.sum())
    keep = torch.arange(n, device=done.device)
    holes = done[:n].nonzero().flatten()  # finished rows inside the kept head
    movers = live[n:].nonzero().flatten() + n  # live rows in the dropped tail
    keep[holes] = movers
    return keep


def row_uniforms(seed: int, keys: torch.Tensor, step: int) -> torch.Tensor:
    """A uniform number in (0, 1) per row: a hash of (seed, row key, step). (R,) float64.

    Counter-based, so a row's stream does not depend on which other rows share its batch.
    The mixer is the 32-bit integer hash `x = ((x >> 16) ^ x) * 0x45d9f3b` (3 rounds)
    chained over the three inputs; every product stays below 2**63, so int64 is exact.
    """
    def mix(x: torch.Tensor) -> torch.Tensor:
        for _ in range(3):
            x = (((x >> 16) ^ x) * 0x45D9F3B) & 0xFFFFFFFF
        return (x >> 16) ^ x

    h = mix(torch.full_like(keys, seed & 0xFFFFFFFF) ^ ((seed >> 32) & 0xFFFFFFFF))
    h = mix(h ^ (keys & 0xFFFFFFFF))
    h = mix(h ^ (step & 0xFFFFFFFF))
    return (h.double() + 0.5) / 2.0**32


# ---------------------------------------------------------------------------------------
# KV cache with one preallocated buffer per layer

class _PreallocatedLayer(DynamicLayer):
    """A KV cache layer whose buffers (B, H, capacity, D) are allocated once.

    `update` writes the new keys/values in place and returns views of the filled part, so
    no step concatenates (DynamicLayer copies the whole cache every step). `keys`/`values`
    are those views, which is all the HF attention and mask code reads.
    """

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, capacity: int):
        super().__init__()
        batch, heads, length, _ = keys.shape
        self.k_buf = keys.new_empty((batch, heads, capacity, keys.shape[-1]))  # (B, H, C, D)
        self.v_buf = values.new_empty((batch, heads, capacity, values.shape[-1]))
        self.k_buf[:, :, :length] = keys
        self.v_buf[:, :, :length] = values
        self.length = length
        self.dtype, self.device, self.is_initialized = keys.dtype, keys.device, True
        self._views()

    def _views(self):
        self.keys = self.k_buf[:, :, : self.length]  # (B, H, L, D)
        self.values = self.v_buf[:, :, : self.length]

    def update(self, key_states, value_states, *args, **kwargs):
        new = key_states.shape[-2]
        if self.length + new > self.k_buf.shape[2]:
            raise RuntimeError(f"KV cache capacity {self.k_buf.shape[2]} exceeded")
        self.k_buf[:, :, self.length : self.length + new] = key_states
        self.v_buf[:, :, self.length : self.length + new] = value_states
        self.length += new
        self._views()
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep rows `indices` in place, moving only the rows that change slot."""
        self.k_buf = keep_rows_in_place(self.k_buf, indices, self.length)
        self.v_buf = keep_rows_in_place(self.v_buf, indices, self.length)
        self._views()


def _decode_cache(prefill: DynamicCache, rows: torch.Tensor, capacity: int, preallocate: bool) -> Cache:
    """The decode-time cache: prefill row `rows[b]` becomes row b (one row per sample)."""
    kinds = {type(layer) for layer in prefill.layers}
    if preallocate and kinds == {DynamicLayer}:  # plain full attention in every layer
        return Cache(layers=[_PreallocatedLayer(l.keys[rows], l.values[rows], capacity) for l in prefill.layers])
    prefill.batch_select_indices(rows)  # sliding-window / hybrid models: HF's own layers
    return prefill


# ---------------------------------------------------------------------------------------
# Two decoders behind one interface: prefill once, then one token per row per step

class _HFDecoder:
    """Through the HF module stack: any causal LM (`decode="hf"`, and the fallback of "auto")."""

    free_drops = False  # dropping rows moves KV-cache rows: done in batches (`drop_fraction`)

    def __init__(self, model, preallocate: bool):
        self.model, self.preallocate = model, preallocate

    def prefill(self, input_ids, attention, positions, expand, max_new) -> torch.Tensor:
        """input_ids, attention, positions (P, W); row b of the batch is prefill row expand[b]. Returns (B, V)."""
        prefill = DynamicCache()
        out = self.model(input_ids=input_ids, attention_mask=attention, position_ids=positions,
                         past_key_values=prefill, use_cache=True, logits_to_keep=1)
        self.cache = _decode_cache(prefill, expand, input_ids.shape[1] + max_new, self.preallocate)
        # generated tokens are always real: the mask is the prompt's, then ones
        self.attention = torch.cat([attention[expand], attention.new_ones((len(expand), max_new))], 1)  # (B, W+T)
        self.length = input_ids.shape[1]
        return out.logits[:, -1, :][expand]

    def step(self, tokens, positions) -> torch.Tensor:
        """tokens, positions (A,): one new token per live row. Returns (A, V)."""
        self.length += 1
        out = self.model(input_ids=tokens[:, None], attention_mask=self.attention[:, : self.length],
                         position_ids=positions[:, None], past_key_values=self.cache, use_cache=True)
        return out.logits[:, -1, :]

    def keep(self, rows) -> None:
        self.cache.batch_select_indices(rows)
        self.attention = self.attention[rows]


class _BareDecoder:
    """`models/decode.py` over a `StaticKVCache` (`decode="fast"`, and "auto" when supported)."""

    free_drops = False

    def __init__(self, weights: LlamaWeights):
        self.w = weights

    def prefill(self, input_ids, attention, positions, expand, max_new) -> torch.Tensor:
        width = input_ids.shape[1]
        cache = StaticKVCache.empty(self.w, len(input_ids), width + max_new, self.w.embed)
        logits = bare.forward(self.w, cache, input_ids, positions, attention.bool(), last_only=True)
        self.cache = cache.expand(expand)
        self.key_mask = torch.cat([attention[expand].bool(), attention.new_ones((len(expand), max_new),
                                                                               dtype=torch.bool)], 1)  # (B, W+T)
        self.bias = None  # the additive form of key_mask, built at the first decode step
        return logits[expand, -1]

    def step(self, tokens, positions) -> torch.Tensor:
        if self.bias is None:
            self.bias = bare.key_bias(self.key_mask)  # (B, W+T)
        return bare.decode_step(self.w, self.cache, tokens, positions, self.bias)

    def keep(self, rows) -> None:
        self.cache.keep(rows)
        self.key_mask = self.key_mask[rows]
        self.bias = None if self.bias is None else self.bias[rows]


class _SharedDecoder:
    """The bare forward with one KV-cache slot per distinct *history*, not per row (`share_decode`).

    Samples of one prompt often draw the same first tokens (a policy sure of its first step,
    or of a whole short answer); until they diverge, their keys, values and next-token logits
    are identical, so computing them once per row repeats work. Here rows map to slots: all
    rows of a prompt start in the prompt's prefill slot (no copy of the prompt's cache per
    sample); after each draw, rows of one slot that drew the same token stay together, and a
    slot whose rows drew k different tokens splits into k slots (k - 1 copies of its filled
    cache columns, appended). Slots left without rows are compacted away (`compact_order`).
    Each step runs the forward on the slots only and hands every row its slot's logits, so the
    rows' draws are exactly the unshared path's: each row keeps its own random stream.
    How much this saves depends on how much a prompt's samples agree (`docs/rollout.md`).
    """

    free_drops = True  # dropping a finished row only forgets its slot index

    def __init__(self, weights: LlamaWeights):
        self.w = weights

    def prefill(self, input_ids, attention, positions, expand, max_new) -> torch.Tensor:
        width, rows, prompts = input_ids.shape[1], len(expand), len(input_ids)
        full = StaticKVCache.empty(self.w, rows, width + max_new, self.w.embed)  # a slot per row at most
        self.k_full, self.v_full, self.length = full.k, full.v, width
        cache = StaticKVCache([k[:prompts] for k in full.k], [v[:prompts] for v in full.v])
        logits = bare.forward(self.w, cache, input_ids, positions, attention.bool(), last_only=True)
        key_mask = torch.cat([attention.bool(), attention.new_ones((prompts, max_new), dtype=torch.bool)], 1)
        self.bias = attention.new_zeros((rows, width + max_new), dtype=torch.float32)  # (slots, W+T)
        self.bias[:prompts] = bare.key_bias(key_mask)
        self.slots, self.row_slot = prompts, expand.clone()  # (A,) slot of each live row
        return logits[expand, -1]

    def keep(self, rows) -> None:
        self.row_slot = self.row_slot[rows]  # a slot left without rows is compacted at the next step

    def _move(self, src: torch.Tensor, dst_start: int) -> None:
        """Copy slots `src` (filled columns, and their bias rows) to slots dst_start, dst_start+1, ..."""
        dst = slice(dst_start, dst_start + len(src))
        for buf in self.k_full + self.v_full:
            buf[dst, :, : self.length] = buf.index_select(0, src)[:, :, : self.length]
        self.bias[dst] = self.bias.index_select(0, src)

    def step(self, tokens, positions) -> torch.Tensor:
        vocab = self.w.embed.shape[0]
        children, row_child = torch.unique(self.row_slot * vocab + tokens, return_inverse=True)  # (C,), (A,)
        parent, child_token = children // vocab, children % vocab  # (C,) sorted by parent
        first = torch.ones_like(parent, dtype=torch.bool)
        first[1:] = parent[1:] != parent[:-1]  # the first child of a slot keeps the slot
        child_slot = parent.clone()
        extra = (~first).nonzero().flatten()
        if len(extra):  # a slot whose rows drew different tokens: copies for the other children
            child_slot[extra] = self.slots + torch.arange(len(extra), device=parent.device)
            self._move(parent[extra], self.slots)
        total = self.slots + len(extra)
        used = torch.zeros(total, dtype=torch.bool, device=parent.device)
        used[child_slot] = True
        if not bool(used.all()):  # slots without rows: the last live slots fill their places
            keep = compact_order(~used)  # (S,) new slot b holds old slot keep[b]
            for buf in self.k_full + self.v_full:  # moves slots inside the full buffer, which stays whole
                keep_rows_in_place(buf, keep, self.length)
            self.bias[: len(keep)] = self.bias.index_select(0, keep)
            remap = torch.empty(total, dtype=torch.long, device=parent.device)
            remap[keep] = torch.arange(len(keep), device=parent.device)
            child_slot = remap[child_slot]
            total = len(keep)
        self.slots = total
        self.row_slot = child_slot[row_child]  # (A,)
        slot_tokens = torch.empty(total, dtype=torch.long, device=parent.device)
        slot_tokens[child_slot] = child_token
        slot_positions = torch.empty(total, dtype=torch.long, device=parent.device)
        slot_positions[self.row_slot] = positions  # rows of a slot are one prompt at one step: one position
        cache = StaticKVCache([k[:total] for k in self.k_full], [v[:total] for v in self.v_full])
        cache.length = self.length
        logits = bare.decode_step(self.w, cache, slot_tokens, slot_positions, self.bias[:total])  # (S, V)
        self.length += 1
        return logits.index_select(0, self.row_slot)  # (A, V)


# ---------------------------------------------------------------------------------------
# Incremental stop-string checking

class _StopChecker:
    """Per-row text built incrementally from new tokens; finds stop strings in the tail.

    Decoding only the tokens since the last complete character (vLLM's prefix/read
    offsets) costs O(1) per token instead of re-decoding the whole row every step; all
    rows of a step are decoded in one `batch_decode` call.
    """

    def __init__(self, tokenizer, stops: list[str], include: bool, rows: int):
        self.tok, self.stops, self.include = tokenizer, stops, include
        self.longest = max(len(s) for s in stops)
        self.ids: list[list[int]] = [[] for _ in range(rows)]
        self.prefix_at, self.read_at = [0] * rows, [0] * rows
        self.text = [""] * rows
        self.ends: list[list[int]] = [[] for _ in range(rows)]  # text length after each token

    def step(self, rows: list[int], tokens: list[int]) -> dict[int, tuple[int, int]]:
        """Append one token per row; returns {row: (tokens kept, char cut)} for rows that stopped."""
        for r, t in zip(rows, tokens):
            self.ids[r].append(t)
        old = self.tok.batch_decode([self.ids[r][self.prefix_at[r] : self.read_at[r]] for r in rows],
                                    skip_special_tokens=True)
        new = self.tok.batch_decode([self.ids[r][self.prefix_at[r] :] for r in rows], skip_special_tokens=True)
        stopped = {}
        for r, a, b in zip(rows, old, new):
            before = len(self.text[r])
            if len(b) > len(a) and not b.endswith("\ufffd"):  # a complete character arrived
                self.text[r] += b[len(a) :]
                self.prefix_at[r], self.read_at[r] = self.read_at[r], len(self.ids[r])
            self.ends[r].append(len(self.text[r]))
            if len(self.text[r]) > before:
                found = self._find(self.text[r], max(0, before - self.longest + 1))
                if found is not None:
                    start, end = found
                    cut = end if self.include else start
                    # tokens kept: up to the one that completes the stop string, or (stop string
                    # excluded) the one that starts it
                    n = bisect.bisect_left(self.ends[r], end if self.include else start + 1) + 1
                    stopped[r] = (min(n, len(self.ids[r])), cut)
        return stopped

    def _find(self, text: str, since: int) -> tuple[int, int] | None:
        """(start, end) of the earliest stop string starting at or after `since`."""
        best = None
        for s in self.stops:
            k = text.find(s, since)
            if k >= 0 and (best is None or k < best[0]):
                best = (k, k + len(s))
        return best


# ---------------------------------------------------------------------------------------
# The engine

class TorchEngine:
    """`Sampler` over an in-process HF model.

    Args:
        max_batch_size: most rows (samples) decoded together.
        max_batch_tokens: rows x (longest context + max_new_tokens) per batch; bounds the KV cache.
        share_prefill: prefill each distinct context once and copy its KV cache to its samples.
        drop_finished: remove finished rows from the batch (and the KV cache) as they finish.
        drop_fraction: drop once at least this fraction of the batch has finished (0 = every step).
        preallocate_cache: one KV buffer per layer instead of growing it by concatenation (HF path).
        decode: "auto" runs Llama-family models through the bare forward of `models/decode.py`
            (same maths, measurably faster) and any other model through its HF modules;
            "fast" requires the bare forward (ValueError naming the reason otherwise), "hf"
            always uses the HF modules (`models/forward.decode_path` decides, per `generate`
            call, so a hook or a LoRA wrapper added later sends the model back to the HF path).
        fuse_projections: in the bare forward, one matmul for q|k|v and one for gate|up
            (weights concatenated once per `generate` call). Off by default: no measurable
            gain on CPU at 0.9-20 M parameters (`docs/rollout.md`).
        share_decode: in the bare forward, rows of one prompt whose tokens so far are identical
            share one KV-cache slot and one forward per step, splitting when they draw different
            tokens (`_SharedDecoder`): same samples, less work when samples agree. Needs `share_prefill`.
    """

    def __init__(
        self,
        model,
        tokenizer,
        model_id: str = "",
        max_batch_size: int = 512,
        max_batch_tokens: int = 1 << 17,
        use_chat_template: bool = True,
        system_prompt: str = "",
        share_prefill: bool = True,
        drop_finished: bool = True,
        drop_fraction: float = 0.125,
        preallocate_cache: bool = True,
        decode: Literal["auto", "fast", "hf"] = "auto",
        fuse_projections: bool = False,
        share_decode: bool = True,
    ):
        if decode not in ("auto", "fast", "hf"):
            raise ValueError(f"TorchEngine decode must be 'auto', 'fast' or 'hf', got {decode!r}")
        if decode == "fast":
            decode_path(model, decode, what="TorchEngine decode")  # ValueError naming the reason (lengths: per call)
        self.model, self.tokenizer, self.model_id = model, tokenizer, model_id
        self.max_batch_size, self.max_batch_tokens = max_batch_size, max_batch_tokens
        self.use_chat_template, self.system_prompt = use_chat_template, system_prompt
        self.share_prefill, self.drop_finished = share_prefill, drop_finished
        self.drop_fraction, self.preallocate_cache = drop_fraction, preallocate_cache
        self.decode, self.fuse_projections = decode, fuse_projections
        self.share_decode = share_decode

    @classmethod
    def from_config(cls, config: ModelConfig, **kwargs) -> TorchEngine:
        model, tokenizer = load_model(config)
        return cls(model, tokenizer, model_id=config.path, use_chat_template=config.use_chat_template,
                   system_prompt=config.system_prompt, **kwargs)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def encode_context(self, prompt: str, prefix: str = "") -> list[int]:
        return encode_context(self.tokenizer, prompt, prefix, self.use_chat_template, self.system_prompt)

    def eos_ids(self) -> list[int]:
        """The tokenizer's EOS plus any extra EOS ids of the model's generation config."""
        ids = {self.tokenizer.eos_token_id}
        extra = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        ids |= set(extra) if isinstance(extra, list) else {extra}
        return sorted(i for i in ids if i is not None)

    def decode_path(self, length: int | None = None) -> Literal["fast", "hf"]:
        """The path a `generate` call takes whose rows use up to `length` KV-cache columns (see
        `decode`; None: sequence lengths aside)."""
        return decode_path(self.model, self.decode, what="TorchEngine decode", length=length)

    @torch.inference_mode()
    def generate(
        self,
        prompts: list[str],
        samples_per_prompt: int = 1,
        params: SamplingParams | None = None,
        prefixes: list[str] | None = None,
        prompt_offset: int = 0,
    ) -> list[list[Sample]]:
        """`prompt_offset` is the index of `prompts[0]` in the caller's whole list: row keys continue
        from there, so a list split into shards (one per worker) draws exactly what it draws whole."""
        params, prefixes = request_defaults(prompts, params, prefixes)
        contexts = [self.encode_context(p, x) for p, x in zip(prompts, prefixes)]
        order = sorted(range(len(prompts)), key=lambda i: -len(contexts[i]))  # similar lengths: less padding
        rows = [(i, j) for i in order for j in range(samples_per_prompt)]
        # seed=None draws one from torch's global RNG, so torch.manual_seed still controls it
        seed = params.seed if params.seed is not None else int(torch.randint(0, 2**62, ()).item())

        was_training = self.model.training
        self.model.eval()  # no dropout while sampling; restored below
        try:
            # the bare forward reads the parameters as they are now (training updates them in place)
            longest = max(len(c) for c in contexts) + params.max_new_tokens  # a sliding window must cover it
            weights = (LlamaWeights.from_model(self.model, fuse=self.fuse_projections)
                       if self.decode_path(longest) == "fast" else None)
            results: dict[tuple[int, int], Sample] = {}
            with optional_progress(len(rows), "sampling") as advance:
                for batch in self._batches(rows, contexts, params.max_new_tokens):
                    keys = [(prompt_offset + i) * samples_per_prompt + j for i, j in batch]
                    outs = self._generate_batch([contexts[i] for i, _ in batch], [i for i, _ in batch], keys,
                                                params, seed, weights)
                    for (i, j), (ids, lps, reason, text) in zip(batch, outs):
                        results[(i, j)] = Sample(
                            problem_id="", prompt=prompts[i], text=text, token_ids=ids, logprobs=lps,
                            finish_reason=reason, steps=split_steps(prefixes[i] + text, params.step_separator),
                            model_id=self.model_id, meta={"prefix": prefixes[i]} if prefixes[i] else {},
                        )
                    advance(len(batch))
        finally:
            self.model.train(was_training)
        return [[results[(i, j)] for j in range(samples_per_prompt)] for i in range(len(prompts))]

    def _batches(self, rows, contexts, max_new_tokens):
        """Consecutive runs of `rows` under the row and token budgets (at least one row each)."""
        batch: list[tuple[int, int]] = []
        longest = 0
        for row in rows:
            n = len(contexts[row[0]])
            if batch and (len(batch) >= self.max_batch_size
                          or (len(batch) + 1) * (max(longest, n) + max_new_tokens) > self.max_batch_tokens):
                yield batch
                batch, longest = [], 0
            batch.append(row)
            longest = max(longest, n)
        if batch:
            yield batch

    def _generate_batch(self, contexts, prompt_ids, keys, params: SamplingParams, seed: int, weights):
        """Sample one completion per row; returns [(token_ids, logprobs, finish_reason, text)]."""
        tok, device = self.tokenizer, self.device
        n_rows, max_new = len(contexts), params.max_new_tokens

        # --- prefill: each distinct prompt once, left-padded so every last token is at -1
        if self.share_prefill:
            distinct = list(dict.fromkeys(prompt_ids))
            expand = torch.tensor([distinct.index(p) for p in prompt_ids], device=device)  # (B,)
            prefill_ctx = [contexts[prompt_ids.index(p)] for p in distinct]
        else:
            expand, prefill_ctx = torch.arange(n_rows, device=device), contexts
        width = max(len(c) for c in prefill_ctx)
        input_ids = torch.full((len(prefill_ctx), width), tok.pad_token_id, dtype=torch.long)  # (P, W)
        attention = torch.zeros((len(prefill_ctx), width), dtype=torch.long)  # (P, W)
        for b, ids in enumerate(prefill_ctx):
            input_ids[b, width - len(ids):] = torch.tensor(ids)
            attention[b, width - len(ids):] = 1
        input_ids, attention = input_ids.to(device), attention.to(device)
        positions = (attention.cumsum(-1) - 1).clamp(min=0)  # (P, W)
        if weights is not None and self.share_decode and self.share_prefill:
            decoder = _SharedDecoder(weights)
        elif weights is not None:
            decoder = _BareDecoder(weights)
        else:
            decoder = _HFDecoder(self.model, self.preallocate_cache)
        logits = decoder.prefill(input_ids, attention, positions, expand, max_new)  # (B, V)
        next_pos = positions[expand, -1] + 1  # (B,)

        # --- decode
        eos = torch.tensor(self.eos_ids(), device=device)
        key_t = torch.tensor(keys, dtype=torch.long, device=device)  # (B,) random-stream key per row
        out_tokens = torch.full((n_rows, max_new), tok.pad_token_id, dtype=torch.long, device=device)  # (B, T)
        out_logp = torch.zeros((n_rows, max_new), device=device)  # (B, T)
        lengths, reasons, cuts = [max_new] * n_rows, ["length"] * n_rows, {}
        checker = _StopChecker(tok, params.stop, params.include_stop_str, n_rows) if params.stop else None
        active = torch.arange(n_rows, device=device)  # (A,) batch row of each slot still in the KV cache
        done = torch.zeros(n_rows, dtype=torch.bool, device=device)  # (A,) finished, not yet dropped
        for t in range(max_new):
            u = None if params.greedy else row_uniforms(seed, key_t[active], t)
            tokens, logprobs = pick_tokens(logits, params, None, u)  # (A,), (A,)
            out_tokens[active, t], out_logp[active, t] = tokens, logprobs
            hit_eos = torch.isin(tokens, eos) & ~done  # (A,)
            for b in active[hit_eos].tolist():
                lengths[b], reasons[b] = t + 1, "eos"  # EOS is kept: RL must credit stopping
            done |= hit_eos
            if checker is not None:
                live = (~done).nonzero().flatten()
                stopped = checker.step(active[live].tolist(), tokens[live].tolist())
                for b, (n, cut) in stopped.items():
                    lengths[b], reasons[b], cuts[b] = n, "stop", cut
                if stopped:
                    done[live[[b in stopped for b in active[live].tolist()]]] = True
            n_done = int(done.sum())
            if n_done == len(active) or t == max_new - 1:
                break
            fraction = 0.0 if decoder.free_drops else self.drop_fraction
            if self.drop_finished and n_done and n_done >= fraction * len(active):
                keep = compact_order(done)  # (A',)
                decoder.keep(keep)
                active, tokens, next_pos, done = active[keep], tokens[keep], next_pos[keep], done[keep]
            logits = decoder.step(tokens, next_pos)  # (A, V)
            next_pos = next_pos + 1

        all_tokens, all_logp = out_tokens.tolist(), out_logp.tolist()
        results = []
        for b in range(n_rows):
            ids = all_tokens[b][: lengths[b]]
            text = tok.decode(ids, skip_special_tokens=True)
            if b in cuts:
                text = text[: cuts[b]]
            results.append((ids, all_logp[b][: lengths[b]], reasons[b], text))
        return results
