"""KV-cache inference over the layer maths of `models/llama.py`: prefill and decode for
`TorchEngine`'s sampling loop.

Why hand-written: see `models/llama.py`. Here: a preallocated KV cache written in place
(`StaticKVCache`), rows dropped by moving only the rows that change slot
(`keep_rows_in_place`), a grouped-query decode attention that never repeats K/V, and
`decode_step`, the decode loop's form of `forward` for one token per row: 2-D activations,
the mask as an additive bias with the scale folded into one `add`. Both run every layer
through `llama.decoder_layer`; they differ only in their attention. Measurements of each
choice: `docs/rollout.md`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from reasonloop.models.llama import LlamaWeights, decoder_layer, final_norm, lm_head, rope

# ---------------------------------------------------------------------------------------
# KV cache: one preallocated buffer per layer, rows aligned by cache column


class StaticKVCache:
    """K and V buffers (B, H_kv, capacity, D) per layer; columns [0, length) are filled.

    All rows share the column index of a step (prompts are left-padded), so a step writes
    one column for every row; which columns a row may attend to is the caller's key mask.

    Dropping finished rows (`keep`) moves a few rows inside the same buffers instead of
    copying the cache into new ones (`keep_rows_in_place`).
    """

    def __init__(self, k: list[torch.Tensor], v: list[torch.Tensor]):
        self.k, self.v, self.length = k, v, 0

    @classmethod
    def empty(cls, w: LlamaWeights, batch: int, capacity: int, like: torch.Tensor) -> StaticKVCache:
        shape = (batch, w.kv_heads, capacity, w.head_dim)
        return cls([like.new_empty(shape) for _ in w.layers], [like.new_empty(shape) for _ in w.layers])

    @property
    def capacity(self) -> int:
        return self.k[0].shape[2]

    def expand(self, rows: torch.Tensor) -> StaticKVCache:
        """A new cache whose row b is this cache's row `rows[b]` (e.g. a prompt's prefill per sample)."""
        shape = (len(rows),) + self.k[0].shape[1:]
        out = StaticKVCache([t.new_empty(shape) for t in self.k], [t.new_empty(shape) for t in self.v])
        for dst, src in zip(out.k + out.v, self.k + self.v):
            if self.length == self.capacity:
                torch.index_select(src, 0, rows, out=dst)  # (no temporary: fresh memory is slow to touch)
            else:  # only the filled columns (the prompt's, typically a third of the capacity)
                dst[:, :, : self.length] = src[:, :, : self.length].index_select(0, rows)
        out.length = self.length
        return out

    def keep(self, rows: torch.Tensor) -> None:
        """Keep only rows `rows` (new row b = old row rows[b]), in place; see `keep_rows_in_place`."""
        for i in range(len(self.k)):
            self.k[i] = keep_rows_in_place(self.k[i], rows, self.length)
            self.v[i] = keep_rows_in_place(self.v[i], rows, self.length)


def keep_rows_in_place(buf: torch.Tensor, rows: torch.Tensor, length: int) -> torch.Tensor:
    """buf (B, H, C, D) -> a view (len(rows), H, C, D) of it whose row b is old row rows[b].

    Only rows that move are copied (their first `length` columns), through a temporary,
    so sources are read before anything is written. With the order `compact_order` gives
    (live rows stay where they are, the last live rows fill the holes) that is at most
    the number of dropped rows, instead of the whole cache (copying the whole cache into
    fresh memory at every drop cost more than the decode steps it saved).
    """
    n = len(rows)
    moved = (rows != torch.arange(n, device=rows.device)).nonzero().flatten()  # (M,)
    if len(moved):
        buf[moved, :, :length] = buf[rows[moved], :, :length]
    return buf[:n]


# ---------------------------------------------------------------------------------------
# Attention against the cache

def decode_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor,
                     scale: float) -> torch.Tensor:
    """One query per row against the cache, grouped-query without repeating K/V.

    q (B, H, D); k, v (B, H_kv, L, D); bias (B, 1, 1, L) from `key_bias`. Returns (B, H, D).
    Query head h reads K/V head h // (H / H_kv), as HF's `repeat_kv` does.
    """
    b, h, d = q.shape
    groups = h // k.shape[1]
    scores = torch.add(bias, torch.matmul(q.view(b, k.shape[1], groups, d), k.transpose(-1, -2)),
                       alpha=scale)  # (B, H_kv, G, L)
    # softmax in fp32 (the bias is fp32 anyway), probabilities back in the model's dtype, as HF does
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(v.dtype)
    return torch.matmul(probs, v).view(b, h, d)


def prefill_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor,
                      start: int, scale: float) -> torch.Tensor:
    """S queries at cache columns [start, start + S) against columns [0, start + S).

    q (B, H, S, D); k, v (B, H_kv, L, D); key_mask (B, L) bool. A query sees the valid keys
    up to its own column, and always itself: a left-padding query has no valid key, and
    letting it see itself keeps its (unused) output finite, so no NaN reaches the cache.
    """
    s, length = q.shape[2], k.shape[2]
    cols = torch.arange(length, device=q.device)
    own = torch.arange(start, start + s, device=q.device)[:, None]  # (S, 1)
    mask = (key_mask[:, None, :] & (cols <= own)) | (cols == own)  # (B, S, L)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None], scale=scale,
                                          enable_gqa=k.shape[1] != q.shape[1])


def key_bias(key_mask: torch.Tensor) -> torch.Tensor:
    """key_mask (B, L) bool -> additive attention bias (B, L): 0 where allowed, -inf elsewhere."""
    return torch.zeros(key_mask.shape, dtype=torch.float32, device=key_mask.device).masked_fill_(~key_mask,
                                                                                               float("-inf"))


# ---------------------------------------------------------------------------------------
# Prefill (any number of tokens per row) and the decode step (one token per row)

def forward(w: LlamaWeights, cache: StaticKVCache, input_ids: torch.Tensor, positions: torch.Tensor,
            key_mask: torch.Tensor, last_only: bool = False) -> torch.Tensor:
    """Logits of `input_ids` (B, S) at `positions` (B, S), appending their K/V to `cache`.

    key_mask (B, >= cache.length + S) bool: which cache columns each row may attend to
    (False for left padding). Returns (B, S, V), or (B, 1, V) with `last_only`.
    """
    s = input_ids.shape[1]
    start, end = cache.length, cache.length + s
    if end > cache.capacity:
        raise RuntimeError(f"KV cache capacity {cache.capacity} exceeded")
    key_mask = key_mask[:, :end]
    scale = 1.0 / math.sqrt(w.head_dim)
    x = F.embedding(input_ids, w.embed)  # (B, S, E)
    cos, sin = rope(w, positions, x.dtype)  # (B, S, 1, D)
    for i, layer in enumerate(w.layers):

        def attend(q, k, v, i=i):  # (B, S, H, D), (B, S, H_kv, D) x2
            cache.k[i][:, :, start:end] = k.transpose(1, 2)
            cache.v[i][:, :, start:end] = v.transpose(1, 2)
            keys, values = cache.k[i][:, :, :end], cache.v[i][:, :, :end]  # (B, H_kv, L, D)
            if s == 1:
                out = decode_attention(q[:, 0], keys, values, key_bias(key_mask)[:, None, None], scale)[:, None]
            else:
                out = prefill_attention(q.transpose(1, 2), keys, values, key_mask, start, scale).transpose(1, 2)
            return out  # (B, S, H, D)

        x = decoder_layer(w, layer, x, cos, sin, attend)
    cache.length = end
    if last_only:
        x = x[:, -1:]
    return lm_head(w, final_norm(w, x))  # (B, S or 1, V)


def decode_step(w: LlamaWeights, cache: StaticKVCache, tokens: torch.Tensor, positions: torch.Tensor,
                bias: torch.Tensor) -> torch.Tensor:
    """Logits (B, V) of one new token per row: `tokens`, `positions` (B,); bias (B, >= length+1) from `key_bias`.

    The same maths as `forward(..., s=1)` (tested), written for the decode loop, where at
    this project's sizes per-op overhead is about half the step: 2-D activations and the
    additive bias built once per call, not once per layer.
    """
    start, end = cache.length, cache.length + 1
    if end > cache.capacity:
        raise RuntimeError(f"KV cache capacity {cache.capacity} exceeded")
    scale = 1.0 / math.sqrt(w.head_dim)
    bias = bias[:, None, None, :end]  # (B, 1, 1, L)
    x = F.embedding(tokens, w.embed)  # (B, E)
    cos, sin = rope(w, positions, x.dtype)  # (B, 1, D)
    for i, layer in enumerate(w.layers):

        def attend(q, k, v, i=i):  # (B, H, D), (B, H_kv, D) x2
            cache.k[i][:, :, start] = k
            cache.v[i][:, :, start] = v
            return decode_attention(q, cache.k[i][:, :, :end], cache.v[i][:, :, :end], bias, scale)

        x = decoder_layer(w, layer, x, cos, sin, attend)
    cache.length = end
    return lm_head(w, final_norm(w, x))  # (B, V)
