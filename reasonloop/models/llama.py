"""The Llama-family layer maths, once: what the bare decode, the prefill and the packed
training forward all run.

Why hand-written: at the sizes this project trains on CPU (0.1-20 M parameters) the Hugging
Face module stack spends much of a step in Python and small-tensor glue (module calls, mask
building, `Cache` bookkeeping, per-layer rotary recomputation), and its padded training pass
runs every linear layer over padding. The callers (`models/decode.py`: KV-cache prefill and
decode; `models/packed.py`: the padding-free trie forward) need plain tensor ops over layouts
HF does not offer; they differ only in how attention reads keys, so this file holds
everything else, token-major (any leading shape, features last):

- `LlamaWeights.from_model`: views of the HF module's own parameters (no copies), so a model
  trained in place between two calls is always seen and gradients land in
  `model.parameters()`. With `fuse=True`, q|k|v and gate|up are concatenated copies
  (`torch.cat`), rebuilt on every call;
- `rope`: cos and sin of the model's rotary buffer for any positions, once for all layers;
- `decoder_layer`: RMSNorm, q/k/v (+ per-head q/k RMSNorm for Qwen3), rotary, the caller's
  attention, output projection, RMSNorm and the SwiGLU MLP, with both residuals.

Supported (`unsupported_reason` checks the config and the modules; the forward-path choice in
`models/forward.py` sends everything else to the HF modules): the families in `FAMILIES`
with RMSNorm, rotary embeddings whose frequencies do not depend on the sequence length
(`ROPE_TYPES`, with HF's attention scaling of cos/sin), SwiGLU (`hidden_act="silu"`),
optional grouped-query attention, optional biases on any projection, tied or untied
`lm_head`. A sliding window is accepted: it changes nothing while every sequence fits in it,
and the forward-path choice sends longer sequences to the HF modules (`window_reason`). Modules
must be the plain classes: a quantised linear layer, or any registered forward hook, would be
skipped by reading `.weight` directly, so those models fall back too. peft LoRA layers are read
(`models/lora.py`: one active plain adapter over an nn.Linear, no dropout while training): the
decode uses merged weights W + scaling B A, the packed training forward runs the adapter as two
extra low-rank matmuls (`linear`), so gradients reach lora_A and lora_B; adapters switched off
(`disable_adapter()`) are seen as off.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from reasonloop.models.lora import is_lora_layer, lora_layer_reason, lora_linear, unwrap

FAMILIES = {
    "llama": ("LlamaForCausalLM", "LlamaRMSNorm"),  # Llama 2/3.x (3.x: the "llama3" rotary type)
    "mistral": ("MistralForCausalLM", "MistralRMSNorm"),  # sliding window: see `window`
    "qwen2": ("Qwen2ForCausalLM", "Qwen2RMSNorm"),  # Qwen2 / Qwen2.5: q/k/v biases
    "qwen3": ("Qwen3ForCausalLM", "Qwen3RMSNorm"),  # per-head RMSNorm of q and k
}
"""model_type -> (model class, RMSNorm class) whose maths this file reproduces"""

ROPE_TYPES = ("default", "linear", "llama3", "yarn")
"""rotary types whose frequencies are fixed at load time (the model's `rotary_emb.inv_freq` and
`attention_scaling` are all there is); "dynamic" and "longrope" change them with the sequence length"""


def _rope_type(cfg) -> str:
    rope = getattr(cfg, "rope_parameters", None) or getattr(cfg, "rope_scaling", None) or {}
    return rope.get("rope_type", rope.get("type", "default"))


def window(cfg) -> int | None:
    """The sliding-window length of any layer that uses one, or None (full attention everywhere)."""
    size = getattr(cfg, "sliding_window", None)
    types = getattr(cfg, "layer_types", None)
    if size is None or (types is not None and all(t == "full_attention" for t in types)):
        return None
    return int(size)


def window_reason(cfg, length: int) -> str | None:
    """Why sequences of up to `length` tokens cannot run as full attention, or None.

    HF's sliding window lets query i see key j iff i - j < window, so while every sequence
    (padding columns included) has at most `window` tokens, the windowed attention is the full one.
    """
    size = window(cfg)
    if size is None or length <= size:
        return None
    return f"sliding-window attention ({size} tokens) over sequences of up to {length} tokens"


def unsupported_reason(model) -> str | None:
    """Why `model` cannot run through this file's maths, or None when it can (sequence lengths
    aside: see `window_reason`)."""
    model = unwrap(model)  # a peft model: its LoRA layers are checked below
    cfg = model.config
    model_type = getattr(cfg, "model_type", None)
    if model_type not in FAMILIES:
        return f"model_type {model_type!r} is not one of {sorted(FAMILIES)}"
    model_class, norm_class = FAMILIES[model_type]
    if type(model).__name__ != model_class:
        return f"model class {type(model).__name__} is not {model_class}"
    if _rope_type(cfg) not in ROPE_TYPES:
        return f"rope type {_rope_type(cfg)!r} is not one of {list(ROPE_TYPES)}"
    if any(t not in ("full_attention", "sliding_attention") for t in getattr(cfg, "layer_types", None) or []):
        return f"layer types {sorted(set(cfg.layer_types))} (only full and sliding attention are reproduced)"
    if getattr(cfg, "hidden_act", None) != "silu":
        return f"hidden_act {getattr(cfg, 'hidden_act', None)!r} is not 'silu'"
    if getattr(model.get_output_embeddings(), "weight", None) is None:
        return "no lm_head weight"
    lora_parts = ()
    for name, module in model.named_modules():
        if is_lora_layer(module):
            reason = lora_layer_reason(module)
            if reason is not None:
                return f"{name}: {reason}"
            lora_parts = (f"{name}.base_layer", f"{name}.lora_A", f"{name}.lora_B", f"{name}.lora_dropout",
                          f"{name}.lora_embedding", f"{name}.lora_magnitude")
            continue
        if name.startswith(lora_parts):  # the adapter's own modules (plain Linears and dropouts), read above
            continue
        if module._forward_hooks or module._forward_pre_hooks:
            return f"forward hooks on {name or 'the model'} (the bare forward would skip them)"
        if (isinstance(module, nn.Linear) or "Linear" in type(module).__name__) and type(module) is not nn.Linear:
            return f"{name} is a {type(module).__name__}, not a plain nn.Linear"  # LoRA, quantised, ...
        if name.endswith(("layernorm", ".norm", "q_norm", "k_norm")) and type(module).__name__ != norm_class:
            return f"{name} is a {type(module).__name__}, not {norm_class}"
    if nn.modules.module._global_forward_hooks or nn.modules.module._global_forward_pre_hooks:
        return "global forward hooks are registered"
    return None


# ---------------------------------------------------------------------------------------
# Weights: references to the HF parameters (plus fused copies, rebuilt per call)

Linear = tuple
"""(weight (out, in), bias (out,) or None), as F.linear takes them; or, for a LoRA layer in training,
(weight, bias, lora_A (r, in), lora_B (out, r), scaling): see `linear`"""


def linear(x: torch.Tensor, lin: Linear) -> torch.Tensor:
    """x (..., in) -> (..., out): F.linear, plus a LoRA adapter's scaling * B (A x) when `lin` carries one."""
    if len(lin) == 2:
        return F.linear(x, *lin)
    weight, bias, lora_a, lora_b, scaling = lin
    return F.linear(x, weight, bias) + scaling * F.linear(F.linear(x, lora_a), lora_b)


@dataclass
class LayerWeights:
    input_norm: torch.Tensor  # (E,)
    qkv: list[Linear]  # [fused q|k|v] or [q, k, v]
    o: Linear
    post_norm: torch.Tensor  # (E,)
    gate_up: list[Linear]  # [fused gate|up] or [gate, up]
    down: Linear
    q_norm: torch.Tensor | None = None  # (D,) per-head RMSNorm of queries (Qwen3)
    k_norm: torch.Tensor | None = None  # (D,) and of keys


@dataclass
class LlamaWeights:
    embed: torch.Tensor  # (V, E)
    layers: list[LayerWeights]
    norm: torch.Tensor  # (E,)
    lm_head: Linear  # (V, E)
    inv_freq: torch.Tensor  # (D/2,) the model's rotary buffer
    rope_scaling: float  # HF's `attention_scaling` of cos and sin (1 but for YaRN-like types)
    heads: int
    kv_heads: int
    head_dim: int
    eps: float

    @classmethod
    def from_model(cls, model, fuse: bool = True) -> LlamaWeights:
        """Views of `model`'s parameters; with `fuse`, q/k/v and gate/up concatenated (copies)."""
        model = unwrap(model)
        cfg, base = model.config, model.model

        def lin(m: nn.Module) -> Linear:  # fused (decode): LoRA merged; unfused (training): low-rank kept
            return lora_linear(m, merge=fuse) if is_lora_layer(m) else (m.weight, m.bias)

        def group(*ms: nn.Module) -> list[Linear]:
            if not fuse:
                return [lin(m) for m in ms]
            parts = [lin(m) for m in ms]
            bias = None if parts[0][1] is None else torch.cat([b for _, b in parts])
            return [(torch.cat([w for w, _ in parts]), bias)]

        def norm_of(attn, name: str) -> torch.Tensor | None:
            return getattr(attn, name).weight if hasattr(attn, name) else None

        layers = [
            LayerWeights(
                input_norm=layer.input_layernorm.weight,
                qkv=group(layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj),
                o=lin(layer.self_attn.o_proj),
                post_norm=layer.post_attention_layernorm.weight,
                gate_up=group(layer.mlp.gate_proj, layer.mlp.up_proj),
                down=lin(layer.mlp.down_proj),
                q_norm=norm_of(layer.self_attn, "q_norm"),
                k_norm=norm_of(layer.self_attn, "k_norm"),
            )
            for layer in base.layers
        ]
        heads = cfg.num_attention_heads
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
        return cls(embed=base.embed_tokens.weight, layers=layers, norm=base.norm.weight,
                   lm_head=lin(model.get_output_embeddings()), inv_freq=base.rotary_emb.inv_freq,
                   rope_scaling=float(getattr(base.rotary_emb, "attention_scaling", 1.0)),
                   heads=heads, kv_heads=cfg.num_key_value_heads, head_dim=head_dim, eps=cfg.rms_norm_eps)


# ---------------------------------------------------------------------------------------
# The maths

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


def rope(w: LlamaWeights, positions: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and signed sin (`positions.shape` + (1, D)) for `apply_rope`: the rotary embedding of
    HF's rotary module (cos, sin times its attention scaling), broadcast over heads, shared by all
    layers. The sin's first half is negated so that rotate_half becomes a roll."""
    freqs = positions[..., None].float() * w.inv_freq.float()  # (..., D/2)
    emb = torch.cat((freqs, freqs), dim=-1)  # (..., D)
    cos, sin = emb.cos() * w.rope_scaling, emb.sin() * w.rope_scaling
    half = sin.shape[-1] // 2
    signed_sin = torch.cat((-sin[..., :half], sin[..., half:]), dim=-1)
    return cos.to(dtype)[..., None, :], signed_sin.to(dtype)[..., None, :]


def apply_rope(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
    """x (..., heads, D) rotated: x * cos + rotate_half(x) * sin, with a roll standing in for
    rotate_half's slice/neg/cat. Bit-equal to HF's (negating before or after the product rounds
    the same); a fused `addcmul` would round differently."""
    return x * cos + x.roll(x.shape[-1] // 2, dims=-1) * signed_sin


Attend = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""(q (..., H, D), k (..., H_kv, D), v (..., H_kv, D)) -> attention output (..., H, D)"""


def attention_inputs(w: LlamaWeights, layer: LayerWeights, x: torch.Tensor, cos: torch.Tensor,
                     sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x (..., E) -> q (..., H, D), k (..., H_kv, D) (normed per head where the model does, rotated)
    and v (..., H_kv, D)."""
    lead, heads, kv_heads, d = x.shape[:-1], w.heads, w.kv_heads, w.head_dim
    h = rms_norm_fused(x, layer.input_norm, w.eps)
    if len(layer.qkv) == 1:
        qkv = linear(h, layer.qkv[0])  # (..., (H + 2 H_kv) D)
        v = qkv[..., (heads + kv_heads) * d:].view(*lead, kv_heads, d)
        if layer.q_norm is None:  # rotate q and k in one go
            qk = apply_rope(qkv[..., : (heads + kv_heads) * d].view(*lead, heads + kv_heads, d), cos, sin)
            return qk[..., :heads, :], qk[..., heads:, :], v
        q, k = qkv[..., : heads * d], qkv[..., heads * d: (heads + kv_heads) * d]
    else:
        q, k, v = (linear(h, lin) for lin in layer.qkv)
        v = v.view(*lead, kv_heads, d)
    q, k = q.view(*lead, heads, d), k.view(*lead, kv_heads, d)
    if layer.q_norm is not None:
        q, k = rms_norm_fused(q, layer.q_norm, w.eps), rms_norm_fused(k, layer.k_norm, w.eps)
    return apply_rope(q, cos, sin), apply_rope(k, cos, sin), v


def attention_output_and_mlp(w: LlamaWeights, layer: LayerWeights, x: torch.Tensor, attn: torch.Tensor):
    """The rest of a layer: x (..., E) + o(attn (..., H * D)), then + SwiGLU MLP of its RMSNorm."""
    x = x + linear(attn, layer.o)
    h = rms_norm_fused(x, layer.post_norm, w.eps)
    if len(layer.gate_up) == 1:
        gate, up = linear(h, layer.gate_up[0]).chunk(2, dim=-1)  # (..., I) x2
    else:
        gate, up = (linear(h, lin) for lin in layer.gate_up)
    return x + linear(F.silu(gate) * up, layer.down)


def decoder_layer(w: LlamaWeights, layer: LayerWeights, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                  attend: Attend) -> torch.Tensor:
    """One decoder layer over x (..., E) with cos/sin from `rope`; `attend` says which keys each query sees."""
    q, k, v = attention_inputs(w, layer, x, cos, sin)
    attn = attend(q, k, v)  # (..., H, D)
    return attention_output_and_mlp(w, layer, x, attn.reshape(*x.shape[:-1], w.heads * w.head_dim))


def final_norm(w: LlamaWeights, x: torch.Tensor) -> torch.Tensor:
    """The model's last RMSNorm: what `lm_head` reads."""
    return rms_norm_fused(x, w.norm, w.eps)


def lm_head(w: LlamaWeights, hidden: torch.Tensor) -> torch.Tensor:
    """Logits (..., V) of final-normed hidden states (..., E)."""
    return linear(hidden, w.lm_head)
