"""`Sampler` over vLLM (optional extra `pip install 'reasonloop[vllm]'`, CUDA only).

    engine = VLLMEngine(ModelConfig(path="runs/sft/final", device="cuda"))
    groups = engine.generate(prompts, samples_per_prompt=8, params=SamplingParams(temperature=1.0))
    ...  # a training step on `policy`
    engine.load_weights(policy)          # or a state dict {name: tensor}; HF parameter names

Same contract as `TorchEngine` (`rollout.sampler`): prompts are formatted and tokenized by
reasonloop (the same `encode_context`), so both engines see identical token ids, and vLLM
gets `prompt_token_ids`. Prefix sharing across a prompt's samples is vLLM's prefix cache.

Differences to know:
- logprobs come from vLLM's `logprobs_mode` (default here "processed_logprobs": after
  temperature and top-k/top-p). With top-k/top-p off this is exactly the contract
  (log softmax(logits / T)); with them on, it is the log-prob under the truncated
  distribution. Use "raw_logprobs" for temperature-1 semantics. RL code that needs exact
  importance ratios should recompute logprobs with the training model anyway (the two
  engines' kernels differ).
- seeds: request i gets `params.seed + prompt_offset + i` (vLLM's per-request seed); reproducible within
  vLLM, but a different random stream from `TorchEngine`.
- `load_weights` reaches the model inside vLLM's worker: in-process when vLLM runs its
  engine in-process (`VLLM_ENABLE_V1_MULTIPROCESSING=0`, which this module sets if unset,
  before importing vLLM), else through `LLM.collective_rpc`. It then clears the prefix
  cache, whose KV entries were computed with the old weights.

Not run on a GPU yet: tested with a fake `vllm` module (tests/rollout/test_vllm_backend.py).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from reasonloop.models.policy import ModelConfig, encode_context, load_tokenizer, resolve
from reasonloop.rollout.sampler import SamplingParams, request_defaults
from reasonloop.types import Sample, split_steps


def _import_vllm():
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # keep the model reachable in-process
    try:
        import vllm
    except ImportError as e:
        raise ImportError("the vLLM backend needs vLLM and a CUDA GPU: pip install 'reasonloop[vllm]'") from e
    return vllm


class VLLMEngine:
    """`Sampler` over a `vllm.LLM`; see the module docstring."""

    def __init__(
        self,
        config: ModelConfig,
        model_id: str = "",
        gpu_memory_utilization: float = 0.5,
        logprobs_mode: str = "processed_logprobs",
        enable_prefix_caching: bool = True,
        **llm_kwargs: Any,
    ):
        vllm = _import_vllm()
        self._vllm_params = vllm.SamplingParams
        self.config, self.model_id = config, model_id or config.path
        self.tokenizer = load_tokenizer(config.path, config.chat_template)
        source = resolve(config.path)  # a local directory, or a Hub id at a revision (vLLM reads the HF cache)
        self.llm = vllm.LLM(
            model=source.name, tokenizer=source.name, revision=source.revision, tokenizer_revision=source.revision,
            dtype=config.dtype,
            gpu_memory_utilization=gpu_memory_utilization, enable_prefix_caching=enable_prefix_caching,
            logprobs_mode=logprobs_mode, seed=0, **llm_kwargs,
        )

    def encode_context(self, prompt: str, prefix: str = "") -> list[int]:
        return encode_context(self.tokenizer, prompt, prefix, self.config.use_chat_template, self.config.system_prompt)

    def generate(
        self,
        prompts: list[str],
        samples_per_prompt: int = 1,
        params: SamplingParams | None = None,
        prefixes: list[str] | None = None,
        prompt_offset: int = 0,
    ) -> list[list[Sample]]:
        """`prompt_offset`: index of `prompts[0]` in the caller's whole list (seeds continue from it)."""
        params, prefixes = request_defaults(prompts, params, prefixes)
        requests = [{"prompt_token_ids": self.encode_context(p, x)} for p, x in zip(prompts, prefixes)]
        vparams = [self._vllm_params(
            n=samples_per_prompt,
            temperature=params.temperature,
            top_p=params.top_p,
            top_k=params.top_k if params.top_k > 0 else -1,
            max_tokens=params.max_new_tokens,
            stop=list(params.stop) or None,
            include_stop_str_in_output=params.include_stop_str,
            seed=None if params.seed is None else params.seed + prompt_offset + i,
            logprobs=0,  # the sampled token's logprob only
        ) for i in range(len(prompts))]
        outputs = self.llm.generate(requests, vparams, use_tqdm=False)
        return [
            [self._to_sample(c, prompt, prefix, params) for c in out.outputs]
            for out, prompt, prefix in zip(outputs, prompts, prefixes)
        ]

    def _to_sample(self, c, prompt: str, prefix: str, params: SamplingParams) -> Sample:
        ids = list(c.token_ids)
        # c.logprobs[t]: {token_id: Logprob}; with logprobs=0 it holds the sampled token
        logprobs = [float(step[t].logprob) for t, step in zip(ids, c.logprobs or [])]
        if c.finish_reason == "length":
            reason = "length"
        elif isinstance(c.stop_reason, str):
            reason = "stop"
        else:
            reason = "eos"  # EOS (stop_reason None) or a stop token id
        return Sample(
            problem_id="", prompt=prompt, text=c.text, token_ids=ids, logprobs=logprobs, finish_reason=reason,
            steps=split_steps(prefix + c.text, params.step_separator), model_id=self.model_id,
            meta={"prefix": prefix} if prefix else {},
        )

    def load_weights(self, weights) -> None:
        """Copy new weights into vLLM: an `nn.Module` or a state dict with HF parameter names."""
        state: Mapping = weights.state_dict() if hasattr(weights, "state_dict") else weights
        items = [(name, tensor.detach()) for name, tensor in state.items()]
        model = self._inner_model()
        if model is not None:
            model.load_weights(weights=items)
        else:  # engine in another process: run the load inside each worker
            self.llm.collective_rpc(_load_into_worker, args=(items,))
        self.llm.reset_prefix_cache()  # cached KV blocks were computed with the old weights

    def _inner_model(self):
        """vLLM's nn.Module when the engine runs in this process, else None."""
        executor = getattr(getattr(self.llm, "llm_engine", None), "model_executor", None)
        worker = getattr(executor, "driver_worker", None)
        for candidate in (worker, getattr(worker, "worker", None)):
            runner = getattr(candidate, "model_runner", None)
            if runner is not None and hasattr(runner, "model"):
                return runner.model
        return None


def _load_into_worker(worker, items) -> None:
    """Runs inside a vLLM worker (`collective_rpc` passes the worker first)."""
    worker.model_runner.model.load_weights(weights=items)
