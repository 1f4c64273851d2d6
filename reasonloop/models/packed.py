"""A packed, differentiable Llama-family forward for training on completions (the update
passes of GRPO and SFT), over the layer maths of `models/llama.py`.

Why hand-written: the padded teacher-forced pass through the Hugging Face module stack
runs every linear layer over `rows x longest completion` positions. RL completions have
very different lengths, so much of that is padding, and at this project's CPU sizes the
linear layers are most of the compute. Packing is the standard fix (TRL's `padding_free`,
verl's `use_remove_padding` with flash-attention varlen kernels); neither is available for a
CPU forward with a shared prompt prefix, so this file does it with plain tensor ops:

- the rows' input sequences (context + completion minus its last token) form a trie
  (`build_token_tree`): every distinct prefix is one node, so a prompt shared by a group
  *and* the first tokens its samples have in common are computed once. Each node is one row
  of a flat (N, E) tensor, and all linear layers, norms and rotary embeddings run on it: no
  padding, no repeats;
- only attention is padded: each sequence attends along its own path of nodes, with queries
  only at the nodes it reaches first (a row's "owned" suffix), causally, through
  `scaled_dot_product_attention` with a mask; rows are bucketed by owned length to keep the
  padding small. The gathers between the flat and the padded layouts are differentiable
  index operations, so a shared node's gradient is the sum over the rows that use it;
- the final norm runs only at nodes whose next token is a completion token, and `lm_head`
  is left to the caller (`models/logprobs.py` applies it in chunks).

This generalises Prefix Grouper's shared-prompt pass (arXiv:2506.05433) from the prompt to
every shared prefix, without padding. Same maths as the Hugging Face paths of
`models/logprobs.completion_logprobs` (tested, values and gradients of every parameter, to
float32 rounding). It reads the model's own parameter tensors (`LlamaWeights.from_model`
with `fuse=False`: views, no copies), so gradients land in `model.parameters()` as usual;
the projections stay unfused because a differentiable `torch.cat` of the weights cost more
than it saved (figures in `docs/grpo.md`).

Supported: what `llama.unsupported_reason` accepts, and no attention dropout while training
(`packed_unsupported_reason`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from reasonloop.models.llama import LlamaWeights, decoder_layer, final_norm, rope, unsupported_reason
from reasonloop.models.policy import checkpointing_layers


def packed_unsupported_reason(model) -> str | None:
    """Why `model` cannot use `packed_completion_hidden`, or None when it can."""
    reason = unsupported_reason(model)
    if reason is None and model.training and float(getattr(model.config, "attention_dropout", 0.0) or 0.0) > 0:
        reason = "attention dropout while training"
    return reason


def _gather(flat: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """flat (N, ...) -> (*index.shape, ...) by row index; padding slots must point at a real row.

    Used for attention inputs, where padding slots may hold any finite values: a padded key
    is masked for every real query, and a padded query's output is dropped, so their values
    reach neither the result nor any gradient, so no zero row is appended as `_to_padded`
    does (a copy of `flat` for nothing: `docs/grpo.md`).
    """
    return flat.index_select(0, index.flatten()).view(*index.shape, *flat.shape[1:])


def _to_padded(flat: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """flat (N, ...) -> (*index.shape, ...); index entries equal to N read a zero row (padding)."""
    pad = flat.new_zeros((1,) + flat.shape[1:])
    return torch.cat([flat, pad]).index_select(0, index.flatten()).view(*index.shape, *flat.shape[1:])


@dataclass
class TokenTree:
    """Every row's input sequence (context + completion minus its last token) as a path in a trie.

    A node is one distinct prefix: rows that share their first p tokens share the nodes of
    those p tokens, whose hidden states are then computed once. Nodes are numbered in the
    order rows first reach them, so the nodes a row reaches first (it "owns" them) are a
    contiguous run at the end of its path: `paths[r][owned_start[r]:]`.
    """

    tokens: list[int]  # per node
    depths: list[int]  # per node: its position in the sequence
    paths: list[list[int]]  # per row: node of each input position
    owned_start: list[int]  # per row: the first position whose node this row owns


def build_token_tree(contexts: list[list[int]], completions: list[list[int]], share_prefix: bool = True) -> TokenTree:
    """The trie of `context + completion[:-1]` over rows; without `share_prefix`, one path per row."""
    children: dict[tuple[int, int], int] = {}
    tokens: list[int] = []
    depths: list[int] = []
    paths, owned_start = [], []
    for r, (context, completion) in enumerate(zip(contexts, completions)):
        sequence = context + completion[:-1]
        parent, path, start = (-1 if share_prefix else -2 - r), [], len(sequence)
        for depth, token in enumerate(sequence):
            node = children.get((parent, token))
            if node is None:
                node = children[(parent, token)] = len(tokens)
                tokens.append(token)
                depths.append(depth)
                start = min(start, depth)
            path.append(node)
            parent = node
        paths.append(path)
        owned_start.append(start)
    return TokenTree(tokens, depths, paths, owned_start)


def _attention_buckets(owned: list[int]) -> list[list[int]]:
    """Rows that own nodes, grouped so that padded query lengths stay close: (max/2, max],
    (max/4, max/2], [1, max/4]. Each group is one attention call."""
    rows = [r for r, n in enumerate(owned) if n > 0]
    if not rows:
        return []
    top = max(owned[r] for r in rows)
    bounds = [(top / 2, top), (top / 4, top / 2), (0, top / 4)]
    buckets = [[r for r in rows if low < owned[r] <= high] for low, high in bounds]
    return [b for b in buckets if b]


@dataclass
class PackedHidden:
    """What `lm_head` needs: final-normed hidden states at the nodes that predict completion tokens."""

    hidden: torch.Tensor  # (M, E): each distinct predicting node once
    index: torch.Tensor  # (R, Tc) long: the row of `hidden` predicting completions[r][t]; M past a completion's end

    def padded(self, values: torch.Tensor) -> torch.Tensor:
        """values (M, ...) per node -> (R, Tc, ...) per completion token; zero past a completion's end."""
        return _to_padded(values, self.index)


def packed_completion_hidden(model, contexts: list[list[int]], completions: list[list[int]],
                             share_prefix: bool = True, stats: dict | None = None) -> PackedHidden:
    """The final-normed hidden states predicting each completion token from its context and earlier tokens.

    With `share_prefix`, every prefix shared by several rows (their context, and the first
    tokens their completions have in common) runs once (`build_token_tree`); without, each
    row runs on its own (same values). Differentiable with respect to the model's parameters.
    `stats`, if given, gains "tokens" (input tokens of all rows) and "nodes" (distinct prefixes run).
    """
    if any(len(c) == 0 for c in contexts) or any(len(x) == 0 for x in completions):
        raise ValueError("packed_completion_hidden needs non-empty contexts and completions")
    w = LlamaWeights.from_model(model, fuse=False)
    device = w.embed.device
    tree = build_token_tree(contexts, completions, share_prefix)
    n = len(tree.tokens)
    if stats is not None:
        stats["tokens"] = stats.get("tokens", 0) + sum(len(p) for p in tree.paths)
        stats["nodes"] = stats.get("nodes", 0) + n
    ids = torch.tensor(tree.tokens, dtype=torch.long, device=device)  # (N,)
    positions = torch.tensor(tree.depths, dtype=torch.long, device=device)  # (N,)

    # attention: each bucket of rows queries with the nodes it owns against the keys of its whole path
    layouts = []  # (query node index (B, Sq), key node index (B, Lk), mask (B, 1, Sq, Lk), valid queries (B, Sq))
    order = []  # node of each valid query, in the order the buckets produce them
    for bucket in _attention_buckets([len(p) - s for p, s in zip(tree.paths, tree.owned_start)]):
        width_q = max(len(tree.paths[r]) - tree.owned_start[r] for r in bucket)
        width_k = max(len(tree.paths[r]) for r in bucket)
        query = torch.zeros((len(bucket), width_q), dtype=torch.long)  # padding reads node 0: see `_gather`
        key = torch.zeros((len(bucket), width_k), dtype=torch.long)
        valid = torch.zeros((len(bucket), width_q), dtype=torch.bool)
        depth = torch.zeros((len(bucket), width_q), dtype=torch.long)
        for b, r in enumerate(bucket):
            path, start = tree.paths[r], tree.owned_start[r]
            query[b, : len(path) - start] = torch.tensor(path[start:])
            valid[b, : len(path) - start] = True
            key[b, : len(path)] = torch.tensor(path)
            depth[b] = start + torch.arange(width_q)  # a padding query sees real or finite padding keys
            order += path[start:]
        mask = (torch.arange(width_k)[None, None, :] <= depth[:, :, None])[:, None]  # (B, 1, Sq, Lk) causal
        layouts.append((query.to(device), key.to(device), mask.to(device), valid.to(device)))
    inverse = torch.empty(n, dtype=torch.long)
    inverse[torch.tensor(order, dtype=torch.long)] = torch.arange(n)  # node -> its row in the concatenated output
    inverse = inverse.to(device)

    scale = 1.0 / math.sqrt(w.head_dim)
    gqa = w.heads != w.kv_heads

    def attend(q, k, v):  # (N, H, D), (N, H_kv, D) x2 -> (N, H, D)
        outs = []
        for query, key, mask, valid in layouts:
            out = F.scaled_dot_product_attention(
                _gather(q, query).transpose(1, 2), _gather(k, key).transpose(1, 2), _gather(v, key).transpose(1, 2),
                attn_mask=mask, scale=scale, enable_gqa=gqa)  # (B, H, Sq, D)
            outs.append(out.transpose(1, 2)[valid])  # (owned nodes, H, D)
        return (outs[0] if len(outs) == 1 else torch.cat(outs)).index_select(0, inverse)  # (N, H, D), node order

    x = F.embedding(ids, w.embed)  # (N, E)
    cos, sin = rope(w, positions, x.dtype)  # (N, 1, D)
    # `model.gradient_checkpointing`: keep only each layer's input; the backward recomputes the layer
    checkpointing = checkpointing_layers(model)
    for layer in w.layers:
        if checkpointing:
            x = torch.utils.checkpoint.checkpoint(decoder_layer, w, layer, x, cos, sin, attend, use_reentrant=False)
        else:
            x = decoder_layer(w, layer, x, cos, sin, attend)

    # only nodes whose next token is a completion token (each distinct one once)
    wanted = [path[len(c) - 1:] for path, c in zip(tree.paths, contexts)]  # per row, one node per completion token
    needed = sorted({node for nodes in wanted for node in nodes})
    slot = {node: i for i, node in enumerate(needed)}
    hidden = final_norm(w, x.index_select(0, torch.tensor(needed, device=device)))  # (M, E)
    width = max(len(x) for x in completions)
    out_index = torch.full((len(completions), width), len(needed), dtype=torch.long)  # (R, Tc); padding: M
    for r, nodes in enumerate(wanted):
        out_index[r, : len(nodes)] = torch.tensor([slot[node] for node in nodes])
    return PackedHidden(hidden, out_index.to(device))
