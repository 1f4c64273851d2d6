"""LoRA adapters through peft, for every trainer (sft, selftrain, dpo, grpo, prm, distill).

One config (`LoRAConfig`, the `lora:` block of each command) and three helpers:

- `apply_lora(model, cfg, adapter_dir)`: wrap a loaded model with fresh adapters, or with the
  trainable adapter saved in `adapter_dir` (a checkpoint of a LoRA run);
- `load_trainable(model_cfg, lora_cfg, checkpoint)`: what every trainer loads. A full-weight
  run's checkpoint is a model directory and is loaded as one; a LoRA run's checkpoint is an
  adapter over the configured base model (`model.path`), loaded on top of it;
- `merged(model)`: the plain Hugging Face model to save as a run's `final/` (LoRA weights
  merged into the base weights, W + (alpha / r) B A): every `final/` directory loads with a
  plain `AutoModelForCausalLM.from_pretrained`, no peft needed. Checkpoints keep the adapter
  (small, and resumable exactly).

References of a LoRA run (DPO's reference, GRPO's KL reference) are the policy with its
adapters switched off (`with model.disable_adapter():`), never a copy of the model.

peft does the adapter maths; this file only chooses what to load and save.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class LoRAConfig:
    r: int = 0
    """adapter rank; 0 trains all weights (no LoRA)"""
    alpha: float = 16.0
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])

    def __post_init__(self):
        if self.r < 0 or self.alpha <= 0 or not 0 <= self.dropout < 1:
            raise ValueError("lora needs r >= 0, alpha > 0 and 0 <= dropout < 1")
        if self.r > 0 and not self.target_modules:
            raise ValueError("lora.target_modules must name at least one module when lora.r > 0")


def apply_lora(model, cfg: LoRAConfig, adapter_dir: str | Path | None = None, task_type: str | None = "CAUSAL_LM"):
    """Wrap `model` with fresh LoRA adapters, or with the trainable adapter saved in `adapter_dir`.

    `task_type=None` wraps a bare backbone (the reward model's `AutoModel`), "CAUSAL_LM" a causal LM.
    """
    from peft import LoraConfig, PeftModel, get_peft_model

    if adapter_dir is not None:
        return PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=True)
    return get_peft_model(model, LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                                            target_modules=list(cfg.target_modules), task_type=task_type))


def is_lora(model) -> bool:
    """True for a peft-wrapped model (adapters to merge before saving a plain model)."""
    return hasattr(model, "disable_adapter") and hasattr(model, "merge_and_unload")


def load_trainable(model_cfg, lora_cfg: LoRAConfig, checkpoint: str | Path | None = None):
    """(model, tokenizer) to train: the base model (or a full-weight checkpoint), with adapters if `lora_cfg.r`."""
    from reasonloop.models.policy import load_model

    use_lora = lora_cfg.r > 0
    model, tokenizer = load_model(model_cfg if use_lora else model_cfg.with_path(checkpoint), for_training=True)
    if use_lora:
        model = apply_lora(model, lora_cfg, adapter_dir=checkpoint)
    return model, tokenizer


def merged(model):
    """The plain HF model behind `model`: adapters merged into the base weights (the peft wrapper is
    consumed), or `model` itself when it has no adapters."""
    return model.merge_and_unload() if is_lora(model) else model


# --- LoRA on the bare forwards (`models/llama.py`) ----------------------------------------------


def unwrap(model):
    """The Hugging Face model inside a peft wrapper (the model itself when there is none)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) and is_lora(model) else model


def is_lora_layer(module) -> bool:
    return hasattr(module, "base_layer") and hasattr(module, "lora_A") and hasattr(module, "lora_B")


def lora_layer_reason(module) -> str | None:
    """Why the bare forward cannot reproduce this peft LoRA layer, or None when it can: one active plain LoRA
    adapter (no DoRA or other variant, no dropout while training) over a plain nn.Linear."""
    from torch import nn

    if type(module.base_layer) is not nn.Linear:
        return f"its base layer is a {type(module.base_layer).__name__}, not a plain nn.Linear"
    if module.disable_adapters or module.merged:
        return None  # the base weight alone is (or already holds) the layer
    active = [a for a in module.active_adapters if a in module.lora_A]
    if len(active) > 1:
        return f"{len(active)} active adapters"
    for name in active:
        if getattr(module, "use_dora", {}).get(name) or getattr(module, "lora_variant", {}).get(name) is not None:
            return "a LoRA variant (DoRA, ...)"
        dropout = module.lora_dropout[name]
        if module.training and isinstance(dropout, nn.Dropout) and dropout.p > 0:
            return "LoRA dropout while training"
    return None


def lora_linear(module, merge: bool) -> tuple:
    """A peft LoRA layer as the bare forward's linear: (weight, bias) when the adapter is off or `merge`
    (W + scaling B A, for the no-grad decode), else (weight, bias, A (r, in), B (out, r), scaling) for
    `llama.linear`, whose low-rank matmuls carry gradients to A and B."""
    base = module.base_layer
    active = [a for a in module.active_adapters if a in module.lora_A]
    if module.disable_adapters or module.merged or not active:
        return base.weight, base.bias
    name = active[0]
    a, b, scaling = module.lora_A[name].weight, module.lora_B[name].weight, module.scaling[name]
    if merge:
        return base.weight + scaling * (b @ a).to(base.weight.dtype), base.bias
    return base.weight, base.bias, a, b, scaling
