"""Load any Hugging Face causal LM and its tokenizer from a local directory; format prompts.

`ModelConfig` is the nested config every command uses to name its model. Loading never
touches the network (`local_files_only=True`): a path that is not a local directory is an
error that says so.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

DTYPES = ("float32", "bfloat16", "float16")


@dataclass
class ModelConfig:
    path: str = "runs/quickstart/base"
    """local directory with a HF causal LM and tokenizer (config.json, *.safetensors, tokenizer files)"""
    device: str = "auto"
    """"auto" (cuda if available, else cpu), "cpu", "cuda", "cuda:1", ..."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """inference loads (sampling, eval, frozen references); training weights follow `precision`"""
    precision: Literal["fp32", "mixed_bf16", "pure_bf16"] = "fp32"
    """training numerics (`models/precision.py`): fp32; mixed_bf16 (float32 master weights and AdamW state,
    bf16 autocast where the device has native bf16); pure_bf16 (bf16 weights and AdamW state, no master copy)"""
    gradient_checkpointing: bool = False
    """training: recompute each decoder layer's activations in the backward instead of storing them"""
    use_chat_template: bool = True
    """wrap prompts in the tokenizer's chat template when it has one"""
    system_prompt: str = ""

    def with_path(self, path: str | Path | None) -> ModelConfig:
        """The same settings for another checkpoint (None: unchanged), e.g. to resume."""
        return self if path is None else dataclasses.replace(self, path=str(path))


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_tokenizer(path: str | Path):
    from transformers import AutoTokenizer

    _check_local(path)
    tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    if tok.pad_token is None:  # many HF checkpoints ship without one; EOS is the usual stand-in
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def load_model(config: ModelConfig, for_training: bool = False):
    """(model, tokenizer) on the configured device: `dtype` for inference, `precision` for training
    (which also turns on gradient checkpointing when asked)."""
    import torch
    from transformers import AutoModelForCausalLM

    from reasonloop.models.precision import set_precision, weights_dtype

    _check_local(config.path)
    if for_training and config.dtype != "float32" and config.precision != "pure_bf16":
        raise ValueError(f"model.dtype={config.dtype} for training: set model.precision=mixed_bf16 (float32 master "
                         "weights, bf16 maths) or pure_bf16 (bf16 weights and optimizer state) instead")
    device = resolve_device(config.device)
    dtype = weights_dtype(config.precision) if for_training else getattr(torch, config.dtype)
    model = AutoModelForCausalLM.from_pretrained(str(config.path), dtype=dtype, local_files_only=True).to(device)
    model.train(for_training)
    if for_training:
        set_precision(model, config.precision)
        if config.gradient_checkpointing:
            enable_gradient_checkpointing(model)
    else:
        model.requires_grad_(False)
    return model, load_tokenizer(config.path)


def enable_gradient_checkpointing(model) -> None:
    """Per-layer activation recomputation in the backward (Hugging Face's own, non-reentrant, so it
    works with frozen embeddings under LoRA); the packed trainer forward reads the same flag."""
    enable = getattr(model, "activation_checkpointing_enable", None)  # transformers >= 5.x's name
    if enable is not None:
        enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    # HF also hooks the embeddings so their output requires grad: reentrant checkpointing needs that, the
    # non-reentrant kind does not, and the bare forwards refuse hooked models, so the hook goes
    if getattr(model, "_require_grads_hook", None) is not None:
        model.disable_input_require_grads()


def format_prompt(tokenizer, prompt: str, use_chat_template: bool = True, system_prompt: str = "") -> str:
    """The text the model is conditioned on: the chat template when the tokenizer has one."""
    if use_chat_template and getattr(tokenizer, "chat_template", None):
        messages = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + [
            {"role": "user", "content": prompt}
        ]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return (system_prompt + "\n" if system_prompt else "") + prompt


def encode_prompt(tokenizer, text: str) -> list[int]:
    """Token ids of an already formatted prompt, with BOS when the tokenizer adds one.

    Chat templates usually contain the BOS text already, so special tokens are only added
    for raw prompts.
    """
    has_template = bool(getattr(tokenizer, "chat_template", None))
    ids = tokenizer(text, add_special_tokens=not has_template)["input_ids"]
    return list(ids)


def encode_context(tokenizer, prompt: str, prefix: str = "", use_chat_template: bool = True,
                   system_prompt: str = "") -> list[int]:
    """Token ids the model continues from: the formatted prompt, then the prefix's tokens.

    The one encoding shared by every sampler, trainer and reward model, so the tokens a
    sample was drawn from are exactly the tokens it is trained and scored on.
    """
    ids = encode_prompt(tokenizer, format_prompt(tokenizer, prompt, use_chat_template, system_prompt))
    if prefix:
        ids += tokenizer(prefix, add_special_tokens=False)["input_ids"]
    return ids


def _check_local(path: str | Path) -> None:
    p = Path(path)
    if not p.is_dir():
        raise FileNotFoundError(
            f"model path {p} is not a local directory (reasonloop never downloads weights; "
            f"run `reasonloop init-model {p}` for a tiny model, or download a checkpoint yourself)"
        )
    if not (p / "config.json").exists():
        raise FileNotFoundError(f"{p}/config.json not found: not a Hugging Face model directory")
