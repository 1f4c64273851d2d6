"""Token log-probabilities of completions under a model: what every trainer's loss reads.

- `token_logprobs`: teacher forcing over padded rows through the model's own forward
  (SFT's padded and packed-row batches, DPO);
- `completion_logprobs`: completions given their contexts, aligned to the completion, through
  the forward `models/forward.training_path` chooses: the packed trie (`models/packed.py`) or
  the HF modules with each distinct context's KV cache shared by its rows (Prefix Grouper).
"""

from __future__ import annotations

from typing import Literal

import torch

from reasonloop.models.forward import training_path
from reasonloop.models.packed import packed_completion_logits


def collate(
    pairs: list[tuple[list[int], list[int]]], pad_id: int, max_length: int | None = None
) -> dict[str, torch.Tensor]:
    """Right-pad (context, completion) id pairs for teacher forcing.

    Returns input_ids (B, T), attention_mask (B, T) and loss_mask (B, T-1), where
    loss_mask[b, t] is 1 iff token t+1 is a completion token (the loss is on completions only).
    Sequences longer than `max_length` are cut from the right.
    """
    seqs = [(c + x)[:max_length] if max_length else c + x for c, x in pairs]
    width = max(len(s) for s in seqs)
    input_ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(seqs), width), dtype=torch.long)
    loss_mask = torch.zeros((len(seqs), width - 1), dtype=torch.float32)
    for b, ((context, _), seq) in enumerate(zip(pairs, seqs)):
        input_ids[b, : len(seq)] = torch.tensor(seq)
        attention[b, : len(seq)] = 1
        loss_mask[b, len(context) - 1 : len(seq) - 1] = 1.0  # positions predicting completion tokens
    return {"input_ids": input_ids, "attention_mask": attention, "loss_mask": loss_mask}


def token_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, temperature: float = 1.0,
                   position_ids: torch.Tensor | None = None):
    """Log-probability of each next token: (B, T-1), entry t is log p(input_ids[:, t+1] | prefix).

    `attention_mask` (B, T), or a (B, 1, T, T) boolean mask with `position_ids` (B, T) for rows
    that pack several examples (`sft.collate_packed`). Returns (logprobs, logits) so callers can
    also compute entropy without a second pass.
    """
    extra = {} if position_ids is None else {"position_ids": position_ids}
    logits = model(input_ids=input_ids, attention_mask=attention_mask, **extra).logits[:, :-1, :].float()  # (B, T-1, V)
    if temperature != 1.0:
        logits = logits / temperature
    targets = input_ids[:, 1:]  # (B, T-1)
    # logsumexp + gather avoids materialising a second (B, T, V) tensor for log_softmax
    logprobs = logits.gather(-1, targets[..., None]).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    return logprobs, logits


def pad_completions(values: list[list[float]], pad: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad per-completion lists to (R, Tc) with a float mask (R, Tc) of the real entries."""
    width = max((len(v) for v in values), default=0)
    out = torch.full((len(values), width), pad, dtype=torch.float32)
    mask = torch.zeros((len(values), width), dtype=torch.float32)
    for r, v in enumerate(values):
        out[r, : len(v)] = torch.tensor(v, dtype=torch.float32)
        mask[r, : len(v)] = 1.0
    return out, mask


def completion_logprobs(
    model,
    contexts: list[list[int]],
    completions: list[list[int]],
    pad_id: int,
    temperature: float = 1.0,
    share_prefix: bool = True,
    forward: Literal["auto", "packed", "hf"] = "auto",
    stats: dict | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs of each completion's tokens given its context, aligned to the completion.

    Returns (logprobs (R, Tc), logits (R, Tc, V)): entry [r, t] is about token t of
    completion r (pad with `pad_completions` for the mask). Differentiable.

    With `share_prefix` each *distinct* context runs through the model once and its KV cache
    (which carries gradients) is reused by every row that continues it, as in Prefix Grouper
    (Liu et al. 2025, arXiv:2506.05433): GRPO's G samples of a prompt pay for the prompt's
    tokens once instead of G times, in the forward and in the backward. Exactly the same
    maths as one teacher-forced pass per row (tested to 1e-5, values and gradients); it
    needs a model that takes `past_key_values` and `position_ids` (every HF decoder does).
    Without it: one right-padded teacher-forced pass over context + completion per row.

    `forward`: "packed" runs `models/packed.py` (no padding in the linear layers; the families of
    `models/llama.py`), "hf" the model's own forward, "auto" packed where supported
    (`models/forward.training_path`). `stats` (packed path): see `packed_completion_hidden`.
    """
    longest = max(len(c) + len(x) for c, x in zip(contexts, completions)) - 1  # input tokens of a row
    if training_path(model, forward, length=longest) == "packed":
        logits = packed_completion_logits(model, contexts, completions, share_prefix, stats).float()  # (R, Tc, V)
        if temperature != 1.0:
            logits = logits / temperature
        targets = torch.nn.utils.rnn.pad_sequence([torch.tensor(x) for x in completions],
                                                  batch_first=True).to(logits.device)  # (R, Tc)
        return logits.gather(-1, targets[..., None]).squeeze(-1) - torch.logsumexp(logits, dim=-1), logits
    if share_prefix and getattr(model, "is_gradient_checkpointing", False) and model.training \
            and torch.is_grad_enabled():
        share_prefix = False  # HF's checkpointed layers hand back no KV cache: one pass per row, same values
    if not share_prefix:
        batch = collate(list(zip(contexts, completions)), pad_id)
        logprobs, logits = token_logprobs(model, batch["input_ids"], batch["attention_mask"], temperature)
        starts = [len(c) - 1 for c in contexts]  # position predicting the first completion token
        width = max(len(x) for x in completions)
        index = torch.tensor([[min(s + t, logprobs.shape[1] - 1) for t in range(width)] for s in starts])  # (R, Tc)
        return logprobs.gather(1, index), logits.gather(1, index[..., None].expand(-1, -1, logits.shape[-1]))
    from transformers.cache_utils import DynamicCache

    device = next(model.parameters()).device
    distinct: dict[tuple[int, ...], int] = {}
    row_context = torch.tensor([distinct.setdefault(tuple(c), len(distinct)) for c in contexts], device=device)  # (R,)
    unique = list(distinct)
    ctx_len = torch.tensor([len(c) for c in unique], device=device)  # (U,)
    width_c = int(ctx_len.max())
    ctx_ids = torch.full((len(unique), width_c), pad_id, dtype=torch.long, device=device)  # (U, Lc), right-padded
    ctx_mask = torch.zeros((len(unique), width_c), dtype=torch.long, device=device)
    for u, c in enumerate(unique):
        ctx_ids[u, : len(c)] = torch.tensor(c, device=device)
        ctx_mask[u, : len(c)] = 1
    positions_c = torch.arange(width_c, device=device)[None].expand(len(unique), -1)  # (U, Lc)
    prefix = model(input_ids=ctx_ids, attention_mask=ctx_mask, position_ids=positions_c, use_cache=True)
    # logits at each context's last real token predict its completions' first token
    first_logits = prefix.logits[torch.arange(len(unique), device=device), ctx_len - 1]  # (U, V)

    # the rows' cache: each distinct context's keys/values, gathered per row (gradients flow back)
    cache = DynamicCache()
    for layer_idx, layer in enumerate(prefix.past_key_values.layers):
        cache.update(layer.keys.index_select(0, row_context), layer.values.index_select(0, row_context), layer_idx)

    width = max(len(x) for x in completions)
    comp_ids = torch.full((len(completions), width), pad_id, dtype=torch.long, device=device)  # (R, Tc)
    comp_mask = torch.zeros((len(completions), width), dtype=torch.long, device=device)
    for r, x in enumerate(completions):
        comp_ids[r, : len(x)] = torch.tensor(x, device=device)
        comp_mask[r, : len(x)] = 1
    rest_logits = None
    if width > 1:  # the last completion token predicts nothing we need
        mask = torch.cat([ctx_mask.index_select(0, row_context), comp_mask[:, : width - 1]], dim=1)  # (R, Lc+Tc-1)
        positions = ctx_len.index_select(0, row_context)[:, None] + torch.arange(width - 1, device=device)  # (R, Tc-1)
        rest_logits = model(input_ids=comp_ids[:, : width - 1], attention_mask=mask, position_ids=positions,
                            past_key_values=cache, use_cache=True).logits  # (R, Tc-1, V)
    logits = first_logits.index_select(0, row_context)[:, None]  # (R, 1, V)
    if rest_logits is not None:
        logits = torch.cat([logits, rest_logits], dim=1)  # (R, Tc, V)
    logits = logits.float()
    if temperature != 1.0:
        logits = logits / temperature
    logprobs = logits.gather(-1, comp_ids[..., None]).squeeze(-1) - torch.logsumexp(logits, dim=-1)  # (R, Tc)
    return logprobs, logits
