"""A bare functional forward of Llama-family models for `TorchEngine`'s decode loop.

Why hand-written: at the sizes this project trains on CPU (0.1-20 M parameters) one
decode step of the Hugging Face module stack spends much of its time in Python and
small-tensor glue (module calls, mask building, `Cache` bookkeeping, per-layer rotary
recomputation), not in matmuls. This file does the same maths with plain tensor ops:
rotary cos/sin once per step for all layers, a preallocated KV cache written in place,
and a grouped-query decode attention that never repeats K/V. Measured in one run of
`bench/rollout.py` (same engine, same rows, `decode="fast"` vs `"hf"`, 1 thread): 1.21x
more tokens/s on the 0.87 M quickstart model, 1.11x at 3.4 M, 1.03x at 20 M, where
matmuls dominate; figures in `docs/rollout.md`. The decode loop itself calls `decode_step`,
the same maths with fewer ops per layer (fused RMSNorm, rotary by `roll`, the mask as an
additive bias); with `TorchEngine.generate` running under `torch.inference_mode` (no autograd
bookkeeping per op) the two took one 64x8-sample batch of the quickstart's GRPO from 0.166
to 0.142 s (1 thread), almost all of it from inference mode.

It reads the HF module's own parameter tensors (`LlamaWeights.from_model`, no copies),
so a model trained in place by GRPO between two `generate` calls is always seen.
Optionally (`fuse=True`) q/k/v and gate/up run as one matmul each; those concatenated
weights *are* copies (`torch.cat`), so they are rebuilt on every `from_model` call, which
the engine makes once per `generate` call. Fusing measured no gain on CPU, so the engine
leaves it off by default.

Supported (`unsupported_reason` checks the config and the modules, anything else runs
through the HF path): `LlamaForCausalLM` and `Qwen2ForCausalLM` with RMSNorm, rotary
embeddings of the default type (no scaling), SwiGLU (`hidden_act="silu"`), full attention
in every layer (no sliding window), optional grouped-query attention, optional biases on
any projection (Qwen2's q/k/v bias, Llama's `attention_bias`/`mlp_bias`), tied or untied
`lm_head`. Modules must be the plain classes: a LoRA-wrapped or quantised linear layer,
or any registered forward hook, would be skipped by reading `.weight` directly, so those
models fall back too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

SUPPORTED = {"llama": ("LlamaForCausalLM", "LlamaRMSNorm"), "qwen2": ("Qwen2ForCausalLM", "Qwen2RMSNorm")}
"""model_type -> (model class, RMSNorm class) whose maths this file reproduces"""


def unsupported_reason(model) -> str | None:
    """Why `model` cannot use the bare forward, or None when it can."""
    cfg = model.config
    model_type = getattr(cfg, "model_type", None)
    if model_type not in SUPPORTED:
        return f"model_type {model_type!r} is not one of {sorted(SUPPORTED)}"
    model_class, norm_class = SUPPORTED[model_type]
    if type(model).__name__ != model_class:
        return f"model class {type(model).__name__} is not {model_class}"
    rope = getattr(cfg, "rope_parameters", None) or getattr(cfg, "rope_scaling", None) or {}
    if rope.get("rope_type", rope.get("type", "default")) != "default" or rope.get("factor") not in (None, 1, 1.0):
        return f"rope {rope} is not the default type without scaling"
    if getattr(cfg, "hidden_act", None) != "silu":
        return f"hidden_act {getattr(cfg, 'hidden_act', None)!r} is not 'silu'"
    if getattr(cfg, "sliding_window", None) is not None or any(
            t != "full_attention" for t in getattr(cfg, "layer_types", None) or []):
        return "sliding-window attention"
    if getattr(model.get_output_embeddings(), "weight", None) is None:
        return "no lm_head weight"
    for name, module in model.named_modules():
        if module._forward_hooks or module._forward_pre_hooks:
            return f"forward hooks on {name or 'the model'} (the bare forward would skip them)"
        if (isinstance(module, nn.Linear) or "Linear" in type(module).__name__) and type(module) is not nn.Linear:
            return f"{name} is a {type(module).__name__}, not a plain nn.Linear"  # LoRA, quantised, ...
        if name.endswith(("layernorm", ".norm")) and type(module).__name__ != norm_class:
            return f"{name} is a {type(module).__name__}, not {norm_class}"
    if nn.modules.module._global_forward_hooks or nn.modules.module._global_forward_pre_hooks:
        return "global forward hooks are registered"
    return None


# ---------------------------------------------------------------------------------------
# Weights: references to the HF parameters (plus fused copies, rebuilt per call)

Linear = tuple[torch.Tensor, "torch.Tensor | None"]
"""(weight (out, in), bias (out,) or None), as F.linear takes them"""


@dataclass
class LayerWeights:
    input_norm: torch.Tensor  # (E,)
    qkv: list[Linear]  # [fused q|k|v] or [q, k, v]
    o: Linear
    post_norm: torch.Tensor  # (E,)
    gate_up: list[Linear]  # [fused gate|up] or [gate, up]
    down: Linear


@dataclass
class LlamaWeights:
    embed: torch.Tensor  # (V, E)
    layers: list[LayerWeights]
    norm: torch.Tensor  # (E,)
    lm_head: Linear  # (V, E)
    inv_freq: torch.Tensor  # (D/2,) the model's rotary buffer
    heads: int
    kv_heads: int
    head_dim: int
    eps: float

    @classmethod
    def from_model(cls, model, fuse: bool = True) -> LlamaWeights:
        """Views of `model`'s parameters; with `fuse`, q/k/v and gate/up concatenated (copies)."""
        cfg, base = model.config, model.model

        def lin(m: nn.Linear) -> Linear:
            return m.weight, m.bias

        def group(*ms: nn.Linear) -> list[Linear]:
            if not fuse:
                return [lin(m) for m in ms]
            bias = None if ms[0].bias is None else torch.cat([m.bias for m in ms])
            return [(torch.cat([m.weight for m in ms]), bias)]

        layers = [
            LayerWeights(
                input_norm=layer.input_layernorm.weight,
                qkv=group(layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj),
                o=lin(layer.self_attn.o_proj),
                post_norm=layer.post_attention_layernorm.weight,
                gate_up=group(layer.mlp.gate_proj, layer.mlp.up_proj),
                down=lin(layer.mlp.down_proj),
            )
            for layer in base.layers
        ]
        heads = cfg.num_attention_heads
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
        return cls(embed=base.embed_tokens.weight, layers=layers, norm=base.norm.weight,
                   lm_head=lin(model.get_output_embeddings()), inv_freq=base.rotary_emb.inv_freq,
                   heads=heads, kv_heads=cfg.num_key_value_heads, head_dim=head_dim, eps=cfg.rms_norm_eps)


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
    the number of dropped rows, instead of the whole cache: copying the whole cache into
    fresh memory at every drop cost more than the decode steps it saved (measured).
    """
    n = len(rows)
    moved = (rows != torch.arange(n, device=rows.device)).nonzero().flatten()  # (M,)
    if len(moved):
        buf[moved, :, :length] = buf[rows[moved], :, :length]
    return buf[:n]


# ---------------------------------------------------------------------------------------
# The forward pass

def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """LlamaRMSNorm: normalise in fp32, cast back, then scale."""
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(x.dtype)


def rms_norm_fused(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """`rms_norm` through torch's fused kernel (fewer ops and memory passes) in fp32, where it
    rounds like HF's; other dtypes take `rms_norm`, which normalises in fp32 and casts back first."""
    if x.dtype != torch.float32:
        return rms_norm(x, weight, eps)
    return F.rms_norm(x, (x.shape[-1],), weight, eps)


def rope_cos_sin(positions: torch.Tensor, inv_freq: torch.Tensor, dtype: torch.dtype):
    """Default rotary embedding for `positions` (B, S): cos, sin (B, 1, S, D), shared by all layers."""
    freqs = positions[..., None].float() * inv_freq.float()  # (B, S, D/2)
    emb = torch.cat((freqs, freqs), dim=-1)  # (B, S, D)
    return emb.cos().to(dtype)[:, None], emb.sin().to(dtype)[:, None]


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x (B, H, S, D) rotated: x * cos + rotate_half(x) * sin."""
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


def _project(x: torch.Tensor, parts: list[Linear], sizes: list[int]) -> list[torch.Tensor]:
    if len(parts) == 1:
        return list(F.linear(x, *parts[0]).split(sizes, dim=-1))
    return [F.linear(x, w, b) for w, b in parts]


def decode_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor,
                     scale: float) -> torch.Tensor:
    """One query per row against the cache, grouped-query without repeating K/V.

    q (B, H, 1, D); k, v (B, H_kv, L, D); key_mask (B, L) bool. Returns (B, H, 1, D).
    Query head h reads K/V head h // (H / H_kv), as HF's `repeat_kv` does.
    """
    b, h, _, d = q.shape
    groups = h // k.shape[1]
    qg = q.view(b, k.shape[1], groups, d)  # (B, H_kv, G, D)
    scores = torch.matmul(qg, k.transpose(-1, -2)) * scale  # (B, H_kv, G, L)
    scores = scores.masked_fill(~key_mask[:, None, None, :], float("-inf"))
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
    return torch.matmul(probs, v).view(b, h, 1, d)


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


def forward(w: LlamaWeights, cache: StaticKVCache, input_ids: torch.Tensor, positions: torch.Tensor,
            key_mask: torch.Tensor, last_only: bool = False) -> torch.Tensor:
    """Logits of `input_ids` (B, S) at `positions` (B, S), appending their K/V to `cache`.

    key_mask (B, >= cache.length + S) bool: which cache columns each row may attend to
    (False for left padding). Returns (B, S, V), or (B, 1, V) with `last_only`.
    """
    bsz, s = input_ids.shape
    start, end = cache.length, cache.length + s
    if end > cache.capacity:
        raise RuntimeError(f"KV cache capacity {cache.capacity} exceeded")
    key_mask = key_mask[:, :end]
    heads, kv_heads, d = w.heads, w.kv_heads, w.head_dim
    sizes = [heads * d, kv_heads * d, kv_heads * d]
    scale = 1.0 / math.sqrt(d)
    x = F.embedding(input_ids, w.embed)  # (B, S, E)
    cos, sin = rope_cos_sin(positions, w.inv_freq, x.dtype)  # (B, 1, S, D)
    for i, layer in enumerate(w.layers):
        h = rms_norm(x, layer.input_norm, w.eps)
        q, k, v = _project(h, layer.qkv, sizes)  # (B, S, H*D), (B, S, H_kv*D) x2
        q = apply_rope(q.view(bsz, s, heads, d).transpose(1, 2), cos, sin)  # (B, H, S, D)
        cache.k[i][:, :, start:end] = apply_rope(k.view(bsz, s, kv_heads, d).transpose(1, 2), cos, sin)
        cache.v[i][:, :, start:end] = v.view(bsz, s, kv_heads, d).transpose(1, 2)
        keys, values = cache.k[i][:, :, :end], cache.v[i][:, :, :end]  # (B, H_kv, L, D)
        if s == 1:
            attn = decode_attention(q, keys, values, key_mask, scale)
        else:
            attn = prefill_attention(q, keys, values, key_mask, start, scale)
        x = x + F.linear(attn.transpose(1, 2).reshape(bsz, s, heads * d), *layer.o)  # (B, S, E)
        h = rms_norm(x, layer.post_norm, w.eps)
        gate, up = _project(h, layer.gate_up, [layer.down[0].shape[1]] * 2)  # (B, S, I) x2
        x = x + F.linear(F.silu(gate) * up, *layer.down)
    cache.length = end
    if last_only:
        x = x[:, -1:]
    return F.linear(rms_norm(x, w.norm, w.eps), *w.lm_head)  # (B, S or 1, V)


# ---------------------------------------------------------------------------------------
# The decode step: one new token per row, with as few tensor ops as the maths allows

def rope_signed_sin(cos: torch.Tensor, sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos, sin with its first half negated): then rope(x) = x * cos + x.roll(D/2) * signed_sin."""
    half = sin.shape[-1] // 2
    return cos, torch.cat((-sin[..., :half], sin[..., half:]), dim=-1)


def apply_rope_rolled(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
    """`apply_rope` in 3 ops instead of 5 (roll replaces rotate_half's slice/neg/cat); equal up to rounding."""
    return torch.addcmul(x * cos, x.roll(x.shape[-1] // 2, dims=-1), signed_sin)


def key_bias(key_mask: torch.Tensor) -> torch.Tensor:
    """key_mask (B, L) bool -> additive attention bias (B, L): 0 where allowed, -inf elsewhere."""
    return torch.zeros(key_mask.shape, dtype=torch.float32, device=key_mask.device).masked_fill_(~key_mask,
                                                                                               float("-inf"))


def decode_step(w: LlamaWeights, cache: StaticKVCache, tokens: torch.Tensor, positions: torch.Tensor,
                bias: torch.Tensor) -> torch.Tensor:
    """Logits (B, V) of one new token per row: `tokens`, `positions` (B,); bias (B, >= length+1) from `key_bias`.

    The same maths as `forward(..., s=1)` (tested), written for the decode loop, where at
    this project's sizes per-op overhead is about half the step: 2-D activations, the fused
    RMSNorm kernel, rotary in 3 ops and (with fused projections) once for q and k together,
    the scale and padding mask folded into one `add`.
    """
    bsz = tokens.shape[0]
    start, end = cache.length, cache.length + 1
    if end > cache.capacity:
        raise RuntimeError(f"KV cache capacity {cache.capacity} exceeded")
    heads, kv_heads, d = w.heads, w.kv_heads, w.head_dim
    groups = heads // kv_heads
    scale = 1.0 / math.sqrt(d)
    bias = bias[:, None, None, :end]  # (B, 1, 1, L)
    x = F.embedding(tokens, w.embed)  # (B, E)
    cos, sin = rope_cos_sin(positions[:, None], w.inv_freq, x.dtype)  # (B, 1, 1, D)
    cos, signed_sin = rope_signed_sin(cos[:, 0], sin[:, 0])  # (B, 1, D)
    for i, layer in enumerate(w.layers):
        h = rms_norm_fused(x, layer.input_norm, w.eps)
        if len(layer.qkv) == 1:  # fused: rotate q and k in one go
            qkv = F.linear(h, *layer.qkv[0])  # (B, (H + 2 H_kv) D)
            qk = apply_rope_rolled(qkv[:, : (heads + kv_heads) * d].view(bsz, heads + kv_heads, d), cos, signed_sin)
            q, k = qk[:, :heads], qk[:, heads:]  # (B, H, D), (B, H_kv, D)
            v = qkv[:, (heads + kv_heads) * d:].view(bsz, kv_heads, d)
        else:
            (wq, bq), (wk, bk), (wv, bv) = layer.qkv
            q = apply_rope_rolled(F.linear(h, wq, bq).view(bsz, heads, d), cos, signed_sin)
            k = apply_rope_rolled(F.linear(h, wk, bk).view(bsz, kv_heads, d), cos, signed_sin)
            v = F.linear(h, wv, bv).view(bsz, kv_heads, d)
        cache.k[i][:, :, start] = k
        cache.v[i][:, :, start] = v
        keys, values = cache.k[i][:, :, :end], cache.v[i][:, :, :end]  # (B, H_kv, L, D)
        scores = torch.add(bias, torch.matmul(q.view(bsz, kv_heads, groups, d), keys.transpose(-1, -2)),
                           alpha=scale)  # (B, H_kv, G, L)
        # softmax in fp32 (the bias is fp32 anyway), probabilities back in the model's dtype, as HF does
        probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(values.dtype)
        attn = torch.matmul(probs, values)  # (B, H_kv, G, D)
        x = x + F.linear(attn.view(bsz, heads * d), *layer.o)  # (B, E)
        h = rms_norm_fused(x, layer.post_norm, w.eps)
        if len(layer.gate_up) == 1:
            gate, up = F.linear(h, *layer.gate_up[0]).chunk(2, dim=-1)  # (B, I) x2
        else:
            gate, up = (F.linear(h, wt, b) for wt, b in layer.gate_up)
        x = x + F.linear(F.silu(gate) * up, *layer.down)
    cache.length = end
    return F.linear(rms_norm_fused(x, w.norm, w.eps), *w.lm_head)  # (B, V)
