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
    """float32 on CPU: bf16 matmul is ~100x slower on CPUs without bf16 hardware"""
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
    """(model, tokenizer) on the configured device and dtype."""
    import torch
    from transformers import AutoModelForCausalLM

    _check_local(config.path)
    device = resolve_device(config.device)
    model = AutoModelForCausalLM.from_pretrained(
        str(config.path), dtype=getattr(torch, config.dtype), local_files_only=True
    ).to(device)
    model.train(for_training)
    if not for_training:
        model.requires_grad_(False)
    return model, load_tokenizer(config.path)


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
