"""Maths and plumbing shared by every training algorithm: pure, small, unit-tested.

- `masked_mean`, `sft_loss`, `lr_factor`, `make_optimizer`, `make_scheduler`;
- `encode_pairs`: text pairs -> token ids exactly as the sampler builds its contexts.

Loops are *not* shared here (each algorithm file keeps its own readable loop); only the
maths and the boilerplate every loop would otherwise copy. Forwards and token log-probs are
the model's business: `models/logprobs.py`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from reasonloop.models.policy import encode_context


@dataclass
class OptimConfig:
    lr: float = 1e-5
    """full fine-tuning of a 0.5-7B model; each command sets its own (the tiny quickstart models use ~1e-3)"""
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.95
    warmup_steps: int = 0
    schedule: Literal["constant", "cosine", "linear"] = "cosine"
    min_lr_ratio: float = 0.1
    """final LR as a fraction of `lr` for cosine/linear decay"""
    grad_clip: float = 1.0
    """max global grad norm; 0 disables clipping"""

    def __post_init__(self):
        if self.lr <= 0 or not 0 <= self.min_lr_ratio <= 1 or self.warmup_steps < 0:
            raise ValueError("need lr > 0, 0 <= min_lr_ratio <= 1, warmup_steps >= 0")


def lr_factor(step: int, total_steps: int, warmup_steps: int, schedule: str, min_lr_ratio: float) -> float:
    """Multiplier on the base LR at optimizer step `step` (0-based): linear warmup, then decay."""
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant" or total_steps <= warmup_steps:
        return 1.0
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    if schedule == "linear":
        return 1.0 - (1.0 - min_lr_ratio) * progress
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_optimizer(params, cfg: OptimConfig) -> torch.optim.AdamW:
    params = [p for p in params if p.requires_grad]
    # fused/foreach AdamW is the fast path on CPU and GPU alike for small models
    return torch.optim.AdamW(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay)


def make_scheduler(optimizer, cfg: OptimConfig, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, total_steps, cfg.warmup_steps, cfg.schedule, cfg.min_lr_ratio)
    )


def encode_pairs(
    tokenizer, pairs: list[tuple[str, str]], use_chat_template: bool = True, system_prompt: str = "",
    add_eos: bool = True,
) -> list[tuple[list[int], list[int]]]:
    """(prompt, completion) texts -> (context ids, completion ids [+ EOS]), as the sampler encodes them."""
    out = []
    for prompt, completion in pairs:
        context = encode_context(tokenizer, prompt, "", use_chat_template, system_prompt)
        completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
        out.append((context, list(completion_ids) + ([tokenizer.eos_token_id] if add_eos else [])))
    return out


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of `values` where `mask` is 1 (over everything, or along `dim`); 0 where the mask is empty."""
    if dim is None:
        return (values * mask).sum() / mask.sum().clamp(min=1)
    return (values * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def sft_loss(logprobs: torch.Tensor, loss_mask: torch.Tensor) -> torch.Tensor:
    """Token-level negative log-likelihood over completion tokens. logprobs, loss_mask: (B, T-1)."""
    return -masked_mean(logprobs, loss_mask)
