"""The built-in torch sampling engine for any Hugging Face causal LM (CPU or CUDA).

Batched sampling with a KV cache: prompts (times `samples_per_prompt`) are sorted by
length, packed into batches under a token budget, left-padded, prefilled once, then
decoded token by token. Temperature, top-k, top-p, stop strings, EOS, per-token logprobs.
See `rollout.sampler` for the contract.

Written by hand rather than calling `model.generate`: we need the sampling-time logprob of
every drawn token, stop strings checked per row, and control over batching; `generate`
returns scores only through a slow, memory-hungry `output_scores` path.
"""

from __future__ import annotations

import torch

from reasonloop.models.policy import ModelConfig, encode_prompt, format_prompt, load_model
from reasonloop.rollout.sampler import SamplingParams
from reasonloop.types import Sample, split_steps


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
        cum = sorted_logits.softmax(-1).cumsum(-1)
        # drop a token when the mass *before* it already reaches top_p (keeps at least one)
        drop_sorted = (cum - sorted_logits.softmax(-1)) >= top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def pick_tokens(
    logits: torch.Tensor, params: SamplingParams, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Choose the next token per row; returns (tokens (B,), logprobs (B,)) — see module contract."""
    logits = logits.float()
    if params.greedy:
        logp = torch.log_softmax(logits, dim=-1)  # (B, V)
        tokens = logits.argmax(dim=-1)
    else:
        logp = torch.log_softmax(logits / params.temperature, dim=-1)
        filtered = process_logits(logits, params.temperature, params.top_k, params.top_p)
        tokens = torch.multinomial(filtered.softmax(-1), 1, generator=generator).squeeze(-1)
    return tokens, logp.gather(-1, tokens[:, None]).squeeze(-1)


class TorchEngine:
    """`Sampler` over an in-process HF model."""

    def __init__(
        self,
        model,
        tokenizer,
        model_id: str = "",
        max_batch_size: int = 256,
        max_batch_tokens: int = 1 << 17,
        use_chat_template: bool = True,
        system_prompt: str = "",
    ):
        self.model, self.tokenizer, self.model_id = model, tokenizer, model_id
        self.max_batch_size, self.max_batch_tokens = max_batch_size, max_batch_tokens
        self.use_chat_template, self.system_prompt = use_chat_template, system_prompt

    @classmethod
    def from_config(cls, config: ModelConfig, **kwargs) -> "TorchEngine":
        model, tokenizer = load_model(config)
        return cls(model, tokenizer, model_id=config.path, use_chat_template=config.use_chat_template,
                   system_prompt=config.system_prompt, **kwargs)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def encode_context(self, prompt: str, prefix: str = "") -> list[int]:
        text = format_prompt(self.tokenizer, prompt, self.use_chat_template, self.system_prompt)
        ids = encode_prompt(self.tokenizer, text)
        if prefix:
            ids += self.tokenizer(prefix, add_special_tokens=False)["input_ids"]
        return ids

    @torch.no_grad()
    def generate(
        self,
        prompts: list[str],
        samples_per_prompt: int = 1,
        params: SamplingParams | None = None,
        prefixes: list[str] | None = None,
    ) -> list[list[Sample]]:
        params = params or SamplingParams()
        prefixes = prefixes or [""] * len(prompts)
        if len(prefixes) != len(prompts):
            raise ValueError(f"got {len(prefixes)} prefixes for {len(prompts)} prompts")
        contexts = [self.encode_context(p, x) for p, x in zip(prompts, prefixes)]
        rows = [(i, j) for i in range(len(prompts)) for j in range(samples_per_prompt)]
        rows.sort(key=lambda r: -len(contexts[r[0]]))  # similar lengths share a batch: less padding
        generator = None
        if params.seed is not None:
            generator = torch.Generator(device=self.device).manual_seed(params.seed)

        results: dict[tuple[int, int], Sample] = {}
        for batch in self._batches(rows, contexts, params.max_new_tokens):
            outs = self._generate_batch([contexts[i] for i, _ in batch], params, generator)
            for (i, j), (ids, lps, reason, text) in zip(batch, outs):
                results[(i, j)] = Sample(
                    problem_id="", prompt=prompts[i], text=text, token_ids=ids, logprobs=lps,
                    finish_reason=reason, steps=split_steps(prefixes[i] + text, params.step_separator),
                    model_id=self.model_id, meta={"prefix": prefixes[i]} if prefixes[i] else {},
                )
        return [[results[(i, j)] for j in range(samples_per_prompt)] for i in range(len(prompts))]

    def _batches(self, rows, contexts, max_new_tokens):
        batch: list[tuple[int, int]] = []
        for row in rows:
            longest = max([len(contexts[row[0]])] + [len(contexts[i]) for i, _ in batch])
            if batch and (
                len(batch) >= self.max_batch_size
                or (len(batch) + 1) * (longest + max_new_tokens) > self.max_batch_tokens
            ):
                yield batch
                batch = []
            batch.append(row)
        if batch:
            yield batch

    def _generate_batch(self, contexts: list[list[int]], params: SamplingParams, generator):
        from transformers import DynamicCache

        tok, device = self.tokenizer, self.device
        batch_size, width = len(contexts), max(len(c) for c in contexts)
        input_ids = torch.full((batch_size, width), tok.pad_token_id, dtype=torch.long)
        attention = torch.zeros((batch_size, width), dtype=torch.long)
        for b, ids in enumerate(contexts):  # left padding: every row's last token is at -1
            input_ids[b, width - len(ids):] = torch.tensor(ids)
            attention[b, width - len(ids):] = 1
        input_ids, attention = input_ids.to(device), attention.to(device)
        positions = (attention.cumsum(-1) - 1).clamp(min=0)  # (B, W)
        cache = DynamicCache()
        out = self.model(input_ids=input_ids, attention_mask=attention, position_ids=positions,
                         past_key_values=cache, use_cache=True, logits_to_keep=1)
        logits = out.logits[:, -1, :]  # (B, V)
        next_pos = positions[:, -1] + 1  # (B,)

        token_cols, logprob_cols = [], []
        finished = torch.zeros(batch_size, dtype=torch.bool, device=device)
        reasons = ["length"] * batch_size
        stop_cut: dict[int, int] = {}  # row -> char offset where its text ends
        for _ in range(params.max_new_tokens):
            tokens, logprobs = pick_tokens(logits, params, generator)
            tokens = tokens.masked_fill(finished, tok.pad_token_id)
            token_cols.append(tokens)
            logprob_cols.append(logprobs)
            hit_eos = (tokens == tok.eos_token_id) & ~finished
            for b in hit_eos.nonzero().flatten().tolist():
                reasons[b] = "eos"
            finished |= hit_eos
            if params.stop:
                for b in (~finished).nonzero().flatten().tolist():
                    text = tok.decode([int(c[b]) for c in token_cols], skip_special_tokens=True)
                    cut = _stop_offset(text, params.stop, params.include_stop_str)
                    if cut is not None:
                        stop_cut[b], reasons[b] = cut, "stop"
                        finished[b] = True
            if bool(finished.all()):
                break
            attention = torch.cat([attention, torch.ones((batch_size, 1), dtype=attention.dtype, device=device)], 1)
            out = self.model(input_ids=tokens[:, None], attention_mask=attention, position_ids=next_pos[:, None],
                             past_key_values=cache, use_cache=True)
            logits = out.logits[:, -1, :]
            next_pos = next_pos + 1

        all_tokens = torch.stack(token_cols, 1).tolist()  # (B, T)
        all_logprobs = torch.stack(logprob_cols, 1).tolist()
        results = []
        for b in range(batch_size):
            n = len(all_tokens[b])
            if reasons[b] == "eos":
                n = all_tokens[b].index(tok.eos_token_id) + 1  # EOS is kept: RL must credit stopping
            elif reasons[b] == "stop":
                n = _first_token_reaching(tok, all_tokens[b], stop_cut[b], params)
            ids = all_tokens[b][:n]
            text = tok.decode(ids, skip_special_tokens=True)
            if b in stop_cut:
                text = text[: stop_cut[b]]
            results.append((ids, all_logprobs[b][:n], reasons[b], text))
        return results


def _stop_offset(text: str, stops: list[str], include: bool) -> int | None:
    """Char offset where the text ends because of the earliest stop string, or None."""
    best = None
    for s in stops:
        k = text.find(s)
        if k >= 0 and (best is None or k < best[0]):
            best = (k, len(s))
    if best is None:
        return None
    return best[0] + best[1] if include else best[0]


def _first_token_reaching(tok, ids: list[int], cut: int, params: SamplingParams) -> int:
    """Number of tokens whose decoded text covers the stop string (the row stopped there)."""
    need = cut if params.include_stop_str else cut + 1
    for n in range(1, len(ids) + 1):
        if len(tok.decode(ids[:n], skip_special_tokens=True)) >= need:
            return n
    return len(ids)
