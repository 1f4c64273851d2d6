"""Load any Hugging Face causal LM and its tokenizer; format prompts.

`ModelConfig` is the nested config every command uses to name its model. `path` is a
local directory or a Hugging Face Hub id (`Qwen/Qwen2.5-0.5B-Instruct`, optionally
`@revision`). Hub models load through `transformers` / `huggingface_hub` like any HF tool:
their cache (`HF_HOME`), `HF_TOKEN` for gated or private models, `HF_HUB_OFFLINE=1` to use
the cache only. A model that cannot be found is a `ModelError`: one line naming the model
and why (offline and not cached, no such repository, gated, no such revision).

Chat models: prompts go through the tokenizer's chat template by default;
`chat_template=FILE.jinja` replaces it (the replacement is saved with any checkpoint
trained from this config), `system_prompt` adds a system message, `use_chat_template=false`
sends the raw prompt.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from reasonloop.config import ConfigError, UserError

DTYPES = ("float32", "bfloat16", "float16")


class ModelError(UserError):
    """A model or tokenizer that cannot be found or loaded; the message names it."""


@dataclass
class ModelConfig:
    path: str = "runs/quickstart/base"
    """local directory (config.json, *.safetensors, tokenizer files) or Hugging Face Hub id, e.g.
    Qwen/Qwen2.5-0.5B-Instruct or Qwen/Qwen2.5-0.5B-Instruct@<branch|tag|commit>"""
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
    """wrap prompts in the chat template when the tokenizer has one (or `chat_template` is set)"""
    chat_template: str = ""
    """a Jinja chat-template file used instead of the tokenizer's own"""
    system_prompt: str = ""
    """system message put before every prompt (chat template only; raw prompts get it as a first line)"""

    def __post_init__(self):
        if not self.path:
            raise ValueError("model.path is empty: give a local model directory or a Hugging Face Hub id")
        if self.chat_template and not self.use_chat_template:
            raise ValueError(f"chat_template={self.chat_template!r} is set but use_chat_template is false")

    def with_path(self, path: str | Path | None) -> ModelConfig:
        """The same settings for another checkpoint (None: unchanged), e.g. to resume."""
        return self if path is None else dataclasses.replace(self, path=str(path))


@dataclass(frozen=True)
class ModelSource:
    """Where a model path points: a local directory, or a Hub repository at a revision."""

    name: str
    """the directory, or the repository id"""
    revision: str | None = None
    local: bool = True


def locate(path: str | Path) -> ModelSource:
    """Tell a local directory from a Hub id (no I/O beyond `is_dir`, no network).

    An existing directory always wins; otherwise `org/name[@revision]` is a Hub id, and
    anything else (a path with more than one `/`, a missing `./dir`) a missing directory.
    """
    text = str(path)
    if Path(text).expanduser().is_dir():
        return ModelSource(str(Path(text).expanduser()))
    name, _, revision = text.partition("@") if "@" in text else (text, "", "")
    if _is_repo_id(name):
        return ModelSource(name, revision or None, local=False)
    raise ModelError(f"model {text!r}: no such directory (and not a Hugging Face Hub id like org/name)")


def _is_repo_id(name: str) -> bool:
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        return False
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def resolve(path: str | Path) -> ModelSource:
    """`locate`, then check the model is there: its config.json (fetched into the HF cache for a Hub id)."""
    source = locate(path)
    if source.local:
        if not (Path(source.name) / "config.json").exists():
            raise ModelError(f"model {source.name!r}: config.json not found, not a Hugging Face model directory")
        return source
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    what = f"model {str(path)!r}"
    try:
        hf_hub_download(source.name, "config.json", revision=source.revision)
    except LocalEntryNotFoundError:
        if constants.is_offline_mode():
            raise ModelError(f"{what}: not a local directory, and not in the Hugging Face cache "
                             f"({constants.HF_HUB_CACHE}) while HF_HUB_OFFLINE is set; download it once "
                             f"without HF_HUB_OFFLINE (or `hf download {source.name}`)") from None
        raise ModelError(f"{what}: not a local directory, not in the Hugging Face cache, and the Hub "
                         f"({constants.ENDPOINT}) could not be reached") from None
    except GatedRepoError:
        raise ModelError(f"{what}: gated on the Hugging Face Hub; accept its terms on huggingface.co "
                         f"and set HF_TOKEN") from None
    except RepositoryNotFoundError:
        raise ModelError(f"{what}: not a local directory, and no such model on the Hugging Face Hub "
                         f"(a private one needs HF_TOKEN)") from None
    except RevisionNotFoundError:
        raise ModelError(f"{what}: the Hub repository {source.name} has no revision {source.revision!r}") from None
    except EntryNotFoundError:
        raise ModelError(f"{what}: the Hub repository has no config.json, not a transformers model") from None
    except HfHubHTTPError as e:
        raise ModelError(f"{what}: the Hugging Face Hub answered {str(e).splitlines()[0]}") from None
    return source


def from_pretrained(auto_class, path: str | Path, **kwargs):
    """`auto_class.from_pretrained` on a resolved local directory or Hub id (+ revision)."""
    source = resolve(path)
    try:
        return auto_class.from_pretrained(source.name, revision=source.revision, **kwargs)
    except OSError as e:  # weights or tokenizer files missing, unreachable, or unreadable
        raise ModelError(f"model {str(path)!r}: {str(e).splitlines()[0]}") from e


def resolve_device(device: str) -> str:
    """"auto" -> cuda when there is a GPU, else cpu; a named CUDA device must exist (a one-line error otherwise)."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        index = int(device.partition(":")[2] or 0) if device.partition(":")[2].isdigit() else None
        if not torch.cuda.is_available():
            raise ModelError(f"device {device!r}: this torch ({torch.__version__}) sees no CUDA GPU; "
                             f"use model.device=cpu (or auto)")
        if index is not None and index >= torch.cuda.device_count():
            raise ModelError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    return device


def load_tokenizer(path: str | Path, chat_template: str = ""):
    """The model's tokenizer, left-padded, with a pad token, and `chat_template` (a file) if given."""
    from transformers import AutoTokenizer

    tok = from_pretrained(AutoTokenizer, path)
    if chat_template:
        template = Path(chat_template).expanduser()
        if not template.is_file():
            raise ModelError(f"model.chat_template: file {chat_template!r} does not exist")
        tok.chat_template = template.read_text(encoding="utf-8")
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

    if for_training and config.dtype != "float32" and config.precision != "pure_bf16":
        raise ConfigError(f"model.dtype={config.dtype} for training: set model.precision=mixed_bf16 (float32 master "
                         "weights, bf16 maths) or pure_bf16 (bf16 weights and optimizer state) instead")
    tokenizer = load_tokenizer(config.path, config.chat_template)  # first: the cheaper one to get wrong
    device = resolve_device(config.device)
    dtype = weights_dtype(config.precision) if for_training else getattr(torch, config.dtype)
    model = from_pretrained(AutoModelForCausalLM, config.path, dtype=dtype).to(device)
    model.train(for_training)
    if for_training:
        set_precision(model, config.precision)
        if config.gradient_checkpointing:
            enable_gradient_checkpointing(model)
    else:
        model.requires_grad_(False)
    return model, tokenizer


def checkpointing_layers(model) -> bool:
    """True while `model` (peft-wrapped or not) recomputes its layers in the backward: gradient checkpointing
    is on, the model is training and gradients are being recorded."""
    import torch

    flag = getattr(model, "is_activation_checkpointing", None)  # transformers >= 5.x's name
    if flag is None:
        flag = getattr(model, "is_gradient_checkpointing", False)
    return bool(flag) and model.training and torch.is_grad_enabled()


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
