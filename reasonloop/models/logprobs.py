"""Token log-probabilities (and entropies) of completions under a model: what every trainer's loss reads.

- `token_logprobs`: teacher forcing over padded rows (SFT's padded and packed-row batches, DPO);
- `completion_logprobs`: completions given their contexts, aligned to the completion, through
  the forward `models/forward.training_path` chooses: the packed trie (`models/packed.py`) or
  the HF modules with each distinct context's KV cache shared by its rows (Prefix Grouper).

Without the vocabulary wall: both take the model's final hidden states, not its logits, and
apply `lm_head` in chunks of rows (`head_logprobs`, a custom autograd Function): the forward
keeps per row only its log-sum-exp, and the backward recomputes a chunk's logits from the saved
hidden states. Peak memory is O(chunk x V) instead of the O(rows x T x V) float32 logits (and
their softmax in the backward) of `model(...).logits`; values and gradients equal the unchunked
computation (tested). Written by hand because neither torch nor transformers offers a chunked,
differentiable log-softmax-gather with entropy for a CPU (Liger's fused linear cross-entropy is
Triton-only and returns a loss, not per-token log-probs). Models whose head is not a plain
`lm_head(hidden)` (`hidden_head`) go through `model(...).logits` and only the log-softmax is
chunked.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from reasonloop.models.forward import training_path
from reasonloop.models.llama import FAMILIES
from reasonloop.models.packed import packed_completion_hidden
from reasonloop.models.policy import checkpointing_layers

CHUNK_ELEMENTS = 1 << 23
"""logits per chunk (rows x V): 32 MB of float32; at V = 151,936, 55 rows"""

PLAIN_HEAD = (*FAMILIES, "gpt2")
"""model types whose logits are exactly `lm_head(decoder(...).last_hidden_state)` (no soft-capping or
scaling after the head), checked against `model(...).logits` in the tests"""


def chunk_rows(vocab: int, chunk: int | None = None) -> int:
    """Rows per chunk: `chunk` if given, else as many as `CHUNK_ELEMENTS` logits hold."""
    return chunk or max(1, CHUNK_ELEMENTS // vocab)


class _HeadLogprobs(torch.autograd.Function):
    """(log p(target_k | node_k), entropy of each node) for logits = linear(hidden, weight, bias) / T,
    in chunks of nodes; see `head_logprobs`."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, nodes, targets, temperature, chunk, with_entropy):
        m = hidden.shape[0]
        lse = hidden.new_empty(m, dtype=torch.float32)
        entropy = hidden.new_zeros(m, dtype=torch.float32)
        target_logit = hidden.new_empty(len(nodes), dtype=torch.float32)
        order = torch.argsort(nodes, stable=True)  # pairs sorted by node: each chunk's pairs are one slice
        bounds = torch.searchsorted(nodes[order], torch.arange(0, m + chunk, chunk, device=nodes.device))
        for c, start in enumerate(range(0, m, chunk)):
            z = F.linear(hidden[start: start + chunk], weight, bias).float()  # (c, V)
            if temperature != 1.0:
                z = z / temperature
            lse[start: start + chunk] = torch.logsumexp(z, dim=-1)
            if with_entropy:
                p = torch.softmax(z, dim=-1)
                entropy[start: start + chunk] = lse[start: start + chunk] - (p * z).sum(-1)
            pairs = order[bounds[c]: bounds[c + 1]]
            target_logit[pairs] = z[nodes[pairs] - start, targets[pairs]]
        ctx.save_for_backward(hidden, weight, bias, nodes, targets, lse, entropy, order, bounds)
        ctx.temperature, ctx.chunk = temperature, chunk
        device = hidden.device.type  # the backward recomputes under the forward's autocast (mixed precision)
        ctx.autocast = (device, torch.get_autocast_dtype(device), torch.is_autocast_enabled(device))
        ctx.set_materialize_grads(False)  # an unused output's gradient stays None: no work for it
        if not with_entropy:
            ctx.mark_non_differentiable(entropy)
        return target_logit - lse[nodes], entropy

    @staticmethod
    def backward(ctx, grad_logprobs, grad_entropy):
        hidden, weight, bias, nodes, targets, lse, entropy, order, bounds = ctx.saved_tensors
        temperature, chunk = ctx.temperature, ctx.chunk
        need_h, need_w, need_b = ctx.needs_input_grad[:3]  # (hidden, weight, bias)
        grad_h = torch.zeros_like(hidden) if need_h else None
        grad_w = torch.zeros_like(weight) if need_w else None
        grad_b = torch.zeros_like(bias) if need_b and bias is not None else None
        if grad_logprobs is None:
            grad_logprobs = lse.new_zeros(len(nodes))
        # per node: the sum of its pairs' gradients (d logprob / d z = onehot(target) - p)
        node_grad = lse.new_zeros(len(lse)).index_add_(0, nodes, grad_logprobs.float())
        device, dtype, enabled = ctx.autocast
        with torch.autocast(device, dtype=dtype, enabled=enabled):
            _head_backward(hidden, weight, bias, nodes, targets, lse, entropy, order, bounds, temperature, chunk,
                           grad_logprobs, grad_entropy, node_grad, grad_h, grad_w, grad_b)
        return grad_h, grad_w, grad_b, None, None, None, None, None


def _head_backward(hidden, weight, bias, nodes, targets, lse, entropy, order, bounds, temperature, chunk,
                   grad_logprobs, grad_entropy, node_grad, grad_h, grad_w, grad_b) -> None:
    """`_HeadLogprobs.backward` chunk by chunk: recompute the logits, accumulate the gradients in place."""
    for c, start in enumerate(range(0, len(lse), chunk)):
        h = hidden[start: start + chunk]
        z = F.linear(h, weight, bias).float()
        if temperature != 1.0:
            z = z / temperature
        log_p = z - lse[start: start + chunk, None]
        p = log_p.exp()
        dz = p * -node_grad[start: start + chunk, None]  # (c, V)
        pairs = order[bounds[c]: bounds[c + 1]]
        dz.index_put_((nodes[pairs] - start, targets[pairs]), grad_logprobs[pairs].float(), accumulate=True)
        if grad_entropy is not None:  # dH/dz_j = -p_j (log p_j + H)
            dz -= grad_entropy[start: start + chunk, None].float() * p * (log_p + entropy[start: start + chunk, None])
        if temperature != 1.0:
            dz = dz / temperature
        dz = dz.to(hidden.dtype)
        if grad_h is not None:
            grad_h[start: start + chunk] = dz @ weight
        if grad_w is not None:
            grad_w += dz.t() @ h
        if grad_b is not None:
            grad_b += dz.sum(0)


def head_logprobs(hidden: torch.Tensor, head: nn.Linear, nodes: torch.Tensor, targets: torch.Tensor,
                  temperature: float = 1.0, chunk: int | None = None,
                  with_entropy: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs of `targets` (K,) under the logits of `hidden[nodes]` (hidden (M, E), nodes (K,)),
    and each node's entropy (M,) (zeros unless `with_entropy`), for logits = head(hidden) / T.

    Several targets may read one node (the packed trie's shared prefixes). Differentiable in
    `hidden`, `head.weight` and `head.bias`; `chunk` nodes at a time (default: `CHUNK_ELEMENTS` / V).
    """
    weight, bias = head.weight, head.bias
    return _HeadLogprobs.apply(hidden, weight, bias, nodes, targets, float(temperature),
                               chunk_rows(weight.shape[0], chunk), with_entropy)


def logits_logprobs(logits: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0,
                    chunk: int | None = None, with_entropy: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The same from logits (N, V) a model has already built (heads `hidden_head` does not know):
    the float32 copy, log-softmax and entropy run per chunk of rows, so they add O(chunk x V)."""
    rows = chunk_rows(logits.shape[-1], chunk)
    logprobs, entropy = [], []
    for start in range(0, len(logits), rows):
        z = logits[start: start + rows].float()
        if temperature != 1.0:
            z = z / temperature
        lse = torch.logsumexp(z, dim=-1)
        logprobs.append(z.gather(-1, targets[start: start + rows, None]).squeeze(-1) - lse)
        if with_entropy:
            entropy.append(lse - (torch.softmax(z, dim=-1) * z).sum(-1))
    logprobs = torch.cat(logprobs) if logprobs else logits.new_zeros(0)
    return logprobs, (torch.cat(entropy) if with_entropy and entropy else torch.zeros_like(logprobs))


def hidden_head(model) -> tuple[nn.Module, nn.Linear] | None:
    """(decoder, lm_head) when `model(...).logits` is exactly `lm_head(decoder(...).last_hidden_state)`
    and nothing (a hook, a LoRA-wrapped head) would be skipped by calling them directly; else None."""
    if getattr(getattr(model, "config", None), "model_type", None) not in PLAIN_HEAD:
        return None
    head = model.get_output_embeddings()
    if type(head) is not nn.Linear:
        return None
    wrappers = [model, getattr(model, "base_model", model), getattr(getattr(model, "base_model", model), "model", model)]
    if any(m._forward_hooks or m._forward_pre_hooks for m in [*wrappers, head]):
        return None
    if nn.modules.module._global_forward_hooks or nn.modules.module._global_forward_pre_hooks:
        return None
    return model.get_decoder(), head


def _forward(model, with_entropy: bool, temperature: float, chunk: int | None, inputs: dict,
             positions: torch.Tensor, targets: torch.Tensor):
    """Log-probs (K,) (and entropies (K,)) of `targets` predicted at `positions` (K, 2) = (row, column)
    of a forward over `inputs`; returns them and the forward's KV cache (when `use_cache`)."""
    parts = hidden_head(model)
    if parts is not None:
        decoder, head = parts
        out = decoder(**inputs)
        hidden = out.last_hidden_state[positions[:, 0], positions[:, 1]]  # (K, E)
        nodes = torch.arange(len(hidden), device=hidden.device)
        logprobs, entropy = head_logprobs(hidden, head, nodes, targets, temperature, chunk, with_entropy)
    else:
        out = model(**inputs)
        logprobs, entropy = logits_logprobs(out.logits[positions[:, 0], positions[:, 1]], targets, temperature,
                                            chunk, with_entropy)
    return logprobs, entropy, getattr(out, "past_key_values", None)


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
                   position_ids: torch.Tensor | None = None, with_entropy: bool = False,
                   chunk: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probability of each next token: (B, T-1), entry t is log p(input_ids[:, t+1] | prefix),
    and its entropy (B, T-1) (zeros unless `with_entropy`), in chunks of `chunk` positions.

    `attention_mask` (B, T), or a (B, 1, T, T) boolean mask with `position_ids` (B, T) for rows
    that pack several examples (`sft.collate_packed`).
    """
    inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
    if position_ids is not None:
        inputs["position_ids"] = position_ids
    b, t = input_ids.shape
    rows = torch.arange(b, device=input_ids.device).repeat_interleave(t - 1)
    cols = torch.arange(t - 1, device=input_ids.device).repeat(b)
    logprobs, entropy, _ = _forward(model, with_entropy, temperature, chunk, inputs, torch.stack([rows, cols], 1),
                                    input_ids[:, 1:].reshape(-1))
    return logprobs.view(b, t - 1), entropy.view(b, t - 1)


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
    with_entropy: bool = False,
    chunk: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs of each completion's tokens given its context, aligned to the completion.

    Returns (logprobs (R, Tc), entropy (R, Tc)): entry [r, t] is about token t of completion r
    (0 past its end; pad with `pad_completions` for the mask); the entropy (nats, of the
    distribution at temperature T that token was drawn from) is zeros unless `with_entropy`.
    Differentiable. The head runs in chunks of `chunk` positions (see the module docstring).

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
    width = max(len(x) for x in completions)
    device = next(model.parameters()).device
    # every (row, t) pair with a token, and that token
    pair_row = torch.tensor([r for r, x in enumerate(completions) for _ in x], device=device)  # (K,)
    pair_t = torch.tensor([t for x in completions for t in range(len(x))], device=device)  # (K,)
    targets = torch.tensor([tok for x in completions for tok in x], device=device)  # (K,)

    def padded(values: torch.Tensor) -> torch.Tensor:  # (K,) -> (R, Tc), zeros past each completion
        out = values.new_zeros((len(completions), width))
        return out.index_put((pair_row, pair_t), values)

    longest = max(len(c) + len(x) for c, x in zip(contexts, completions)) - 1  # input tokens of a row
    if training_path(model, forward, length=longest) == "packed":
        packed = packed_completion_hidden(model, contexts, completions, share_prefix, stats)
        nodes = packed.index[pair_row, pair_t]  # (K,) the node predicting each token
        logprobs, entropy = head_logprobs(packed.hidden, model.get_output_embeddings(), nodes, targets,
                                          temperature, chunk, with_entropy)
        return padded(logprobs), packed.padded(entropy)
    if share_prefix and checkpointing_layers(model):
        share_prefix = False  # HF's checkpointed layers hand back no KV cache: one pass per row, same values
    if not share_prefix:
        batch = {k: v.to(device) for k, v in collate(list(zip(contexts, completions)), pad_id).items()}
        starts = torch.tensor([len(c) - 1 for c in contexts], device=device)  # position predicting token 0
        positions = torch.stack([pair_row, starts[pair_row] + pair_t], 1)  # (K, 2)
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        logprobs, entropy, _ = _forward(model, with_entropy, temperature, chunk, inputs, positions, targets)
        return padded(logprobs), padded(entropy)
    return _shared_prefix_logprobs(model, contexts, completions, pad_id, temperature, with_entropy, chunk,
                                   (pair_row, pair_t, targets), padded)


def _shared_prefix_logprobs(model, contexts, completions, pad_id, temperature, with_entropy, chunk, pairs,
                            padded) -> tuple[torch.Tensor, torch.Tensor]:
    """`completion_logprobs` through the HF modules, each distinct context's KV cache shared by its rows."""
    from transformers.cache_utils import DynamicCache

    pair_row, pair_t, targets = pairs
    device = targets.device
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
    # the first completion token of row r is predicted at its context's last real token
    first = pair_t == 0
    first_pos = torch.stack([row_context[pair_row[first]], ctx_len[row_context[pair_row[first]]] - 1], 1)
    lp_first, ent_first, prefix_cache = _forward(
        model, with_entropy, temperature, chunk,
        {"input_ids": ctx_ids, "attention_mask": ctx_mask, "position_ids": positions_c, "use_cache": True},
        first_pos, targets[first])
    logprobs = torch.zeros(len(targets), device=device, dtype=lp_first.dtype).index_put((first.nonzero()[:, 0],),
                                                                                        lp_first)
    entropy = torch.zeros_like(logprobs).index_put((first.nonzero()[:, 0],), ent_first)
    width = max(len(x) for x in completions)
    if width > 1:  # the last completion token predicts nothing we need
        # the rows' cache: each distinct context's keys/values, gathered per row (gradients flow back)
        cache = DynamicCache()
        for layer_idx, layer in enumerate(prefix_cache.layers):
            cache.update(layer.keys.index_select(0, row_context), layer.values.index_select(0, row_context), layer_idx)
        comp_ids = torch.full((len(completions), width), pad_id, dtype=torch.long, device=device)  # (R, Tc)
        comp_mask = torch.zeros((len(completions), width), dtype=torch.long, device=device)
        for r, x in enumerate(completions):
            comp_ids[r, : len(x)] = torch.tensor(x, device=device)
            comp_mask[r, : len(x)] = 1
        mask = torch.cat([ctx_mask.index_select(0, row_context), comp_mask[:, : width - 1]], dim=1)  # (R, Lc+Tc-1)
        positions = ctx_len.index_select(0, row_context)[:, None] + torch.arange(width - 1, device=device)  # (R, Tc-1)
        rest = ~first  # token t >= 1 of row r is predicted at column t - 1 of the rest pass
        lp_rest, ent_rest, _ = _forward(
            model, with_entropy, temperature, chunk,
            {"input_ids": comp_ids[:, : width - 1], "attention_mask": mask, "position_ids": positions,
             "past_key_values": cache, "use_cache": True},
            torch.stack([pair_row[rest], pair_t[rest] - 1], 1), targets[rest])
        index = rest.nonzero()[:, 0]
        logprobs = logprobs.index_put((index,), lp_rest)
        entropy = entropy.index_put((index,), ent_rest)
    return padded(logprobs), padded(entropy)
