"""One place that turns a command's config into a `Sampler`: `sampler.kind=torch|vllm|openai`.

    sampler = make_sampler(cfg.sampler, cfg.model)                         # eval, sample, search
    sampler = make_sampler(cfg.sampler, cfg.model, policy=model, tokenizer=tok)  # the weights being trained
    ...  # a training step on `model`
    sync_weights(sampler, model)                                           # vLLM copies them; torch shares them

- `torch`: the in-process `TorchEngine` (CPU or CUDA); over `policy` when given, so it
  always samples the current weights.
- `vllm`: `VLLMEngine` (optional extra, CUDA), loaded from `model.path`; with `policy`, the
  policy's weights are copied in at once and again at every `sync_weights`.
- `openai`: any OpenAI-compatible server (vLLM, SGLang, llama.cpp, a hosted API) at
  `sampler.base_url`, serving `sampler.model_name` (default: `model.path`). Endpoint "chat"
  lets the server apply its chat template (with `model.system_prompt`); "completions" sends
  text formatted here with the model's tokenizer (its chat template, or `model.chat_template`),
  or the raw prompt when `model.use_chat_template=false`. It cannot take new weights, so
  commands that train the policy they sample refuse it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

from reasonloop.config import ConfigError
from reasonloop.models.policy import ModelConfig
from reasonloop.rollout.sampler import Sampler


@dataclass
class SamplerConfig:
    kind: Literal["torch", "vllm", "openai"] = "torch"
    """torch: in-process engine; vllm: vLLM on a CUDA GPU (pip install 'reasonloop[vllm]'); openai: an
    OpenAI-compatible server at base_url"""
    max_batch_size: int = 512
    """torch: most rows decoded together"""
    max_batch_tokens: int = 1 << 17
    """torch: rows x (longest context + max_new_tokens) per batch; bounds the KV cache"""
    decode: Literal["auto", "fast", "hf"] = "auto"
    """torch: auto = the bare Llama-family forward when the model allows it, else the HF modules"""
    gpu_memory_utilization: float = 0.5
    """vllm: share of GPU memory vLLM may take (weights + KV cache); leave room for training"""
    max_model_len: int = 0
    """vllm: longest prompt + completion in tokens (0: the model's maximum)"""
    base_url: str = ""
    """openai: the API root up to the version, e.g. http://127.0.0.1:8000/v1"""
    model_name: str = ""
    """openai: the served model's name (default: model.path)"""
    endpoint: Literal["chat", "completions"] = "chat"
    """openai: chat = /chat/completions (the server's chat template); completions = /completions (text
    formatted here with the model's tokenizer)"""
    api_key_env: str = "OPENAI_API_KEY"
    """openai: environment variable holding the API key (unset: no key, as local servers expect)"""
    max_concurrency: int = 8
    """openai: requests in flight at once"""
    timeout: float = 120.0
    """openai: seconds per request before it is retried"""
    max_retries: int = 4
    """openai: retries on connection errors, timeouts, 408/409/429 and 5xx"""
    use_n: bool = True
    """openai: all samples of a prompt in one request (`n`); false for servers that ignore `n` (llama.cpp)"""

    def __post_init__(self):
        if self.kind == "openai" and not self.base_url:
            raise ValueError("sampler.kind=openai needs sampler.base_url (e.g. http://127.0.0.1:8000/v1)")
        if self.max_batch_size < 1 or self.max_batch_tokens < 1 or self.max_concurrency < 1:
            raise ValueError("sampler.max_batch_size, max_batch_tokens and max_concurrency must be >= 1")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError(f"sampler.gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization}")


def make_sampler(cfg: SamplerConfig, model: ModelConfig, policy=None, tokenizer=None) -> Sampler:
    """The `Sampler` `cfg` names, for the model `model` names (or for the in-process `policy`)."""
    if policy is not None and tokenizer is None:
        raise ValueError("make_sampler: a policy needs its tokenizer")
    if cfg.kind == "torch":
        from reasonloop.rollout.engine import TorchEngine

        options = {"max_batch_size": cfg.max_batch_size, "max_batch_tokens": cfg.max_batch_tokens, "decode": cfg.decode}
        if policy is None:
            return TorchEngine.from_config(model, **options)
        return TorchEngine(policy, tokenizer, model_id=model.path, use_chat_template=model.use_chat_template,
                           system_prompt=model.system_prompt, **options)
    if cfg.kind == "vllm":
        return _vllm(cfg, model, policy)
    if policy is not None:
        raise ConfigError("sampler.kind=openai samples from a server and cannot take the weights this command "
                          "trains; use sampler.kind=torch or vllm")
    return _openai(cfg, model)


def sync_weights(sampler: Sampler, policy) -> None:
    """Make `sampler` sample from `policy`'s current weights (after a training step).

    A `TorchEngine` over `policy` already does (it shares the module); an engine with its own
    copy (vLLM) gets the weights copied in, LoRA adapters merged (`plain_weights`).
    """
    if getattr(sampler, "model", None) is policy:
        return
    if not hasattr(sampler, "load_weights"):
        raise TypeError(f"{type(sampler).__name__} cannot take new weights")
    sampler.load_weights(plain_weights(policy))


def plain_weights(policy) -> dict:
    """`policy`'s weights under the Hugging Face names an inference engine knows, LoRA adapters merged in.

    A peft model's own names (`base_model.model....q_proj.base_layer.weight`, `lora_A`) mean nothing
    to vLLM; its adapters are merged, the base weights copied, and the merge undone, so the policy
    keeps training as it was (its base weights bit for bit).
    """
    from reasonloop.models.lora import is_lora

    if not is_lora(policy):
        return policy.state_dict()
    import torch

    with torch.no_grad():
        # unmerging subtracts the delta again, which is not the exact inverse in floating point (in bf16 a
        # round trip moves a weight by up to half an ulp): the base weights are put back bit for bit
        saved = {name: p.detach().clone() for name, p in policy.named_parameters() if ".base_layer." in name}
        policy.merge_adapter()
        try:
            return {name.replace(".base_layer", ""): tensor.detach().clone()
                    for name, tensor in policy.get_base_model().state_dict().items() if "lora_" not in name}
        finally:
            policy.unmerge_adapter()
            params = dict(policy.named_parameters())
            for name, value in saved.items():
                params[name].copy_(value)


def _vllm(cfg: SamplerConfig, model: ModelConfig, policy):
    from reasonloop.rollout.vllm_backend import VLLMEngine

    extra = {"max_model_len": cfg.max_model_len} if cfg.max_model_len else {}
    try:
        engine = VLLMEngine(model, gpu_memory_utilization=cfg.gpu_memory_utilization, **extra)
    except ImportError as e:
        raise ConfigError(f"sampler.kind=vllm: {e}") from e
    if policy is not None:  # the policy may differ from model.path already (a resumed checkpoint, adapters)
        engine.load_weights(plain_weights(policy))
    return engine


def _openai(cfg: SamplerConfig, model: ModelConfig):
    from reasonloop.rollout.openai_backend import OpenAISampler

    prompt_format = None
    if cfg.endpoint == "chat":
        if model.chat_template or not model.use_chat_template:
            raise ConfigError("sampler.endpoint=chat uses the server's chat template; for model.chat_template or "
                              "model.use_chat_template=false use sampler.endpoint=completions")
    elif model.use_chat_template:
        from reasonloop.models.policy import format_prompt, load_tokenizer

        tokenizer = load_tokenizer(model.path, model.chat_template)

        def prompt_format(prompt: str) -> str:
            return format_prompt(tokenizer, prompt, True, model.system_prompt)
    elif model.system_prompt:
        def prompt_format(prompt: str) -> str:
            return model.system_prompt + "\n" + prompt  # as format_prompt does for raw prompts

    name = cfg.model_name or model.path
    return OpenAISampler(cfg.base_url, model=name, endpoint=cfg.endpoint, api_key=os.environ.get(cfg.api_key_env),
                         max_concurrency=cfg.max_concurrency, timeout=cfg.timeout, max_retries=cfg.max_retries,
                         system_prompt=model.system_prompt if cfg.endpoint == "chat" else "",
                         use_n=cfg.use_n, prompt_format=prompt_format, model_id=name)
