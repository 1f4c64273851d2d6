"""The `Sampler` interface every algorithm, labeler and search strategy generates through.

    groups = sampler.generate(prompts, samples_per_prompt=8, params=SamplingParams(temperature=1.0))
    groups[i][j]      # j-th Sample for prompts[i]

Contract:
- `prompts` are raw problem prompts; the sampler applies the model's prompt format
  (chat template when the tokenizer has one).
- With `prefixes`, generation continues after `prompt + prefixes[i]`; the returned sample's
  `text`, `token_ids` and `logprobs` cover only the new continuation, `meta["prefix"]`
  holds the prefix, and `steps` are the steps of `prefix + text`.
- `logprobs[t]` is log softmax(logits / temperature) of the drawn token (temperature 1 for
  greedy), before top-k/top-p truncation: exactly what a teacher-forced forward pass with
  the same temperature gives, which is what importance ratios in RL need.
- `finish_reason` is "eos", "stop" (a stop string was produced; the text keeps it unless
  `include_stop_str=False`) or "length".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from reasonloop.types import Sample


@dataclass
class SamplingParams:
    temperature: float = 1.0
    """0 means greedy"""
    top_p: float = 1.0
    top_k: int = 0
    """0 disables top-k"""
    max_new_tokens: int = 128
    stop: list[str] = field(default_factory=list)
    include_stop_str: bool = True
    seed: int | None = None
    step_separator: str = "\n"
    """how `Sample.steps` are split from the text"""

    def __post_init__(self):
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0 or self.max_new_tokens < 1:
            raise ValueError("top_k must be >= 0 and max_new_tokens >= 1")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@runtime_checkable
class Sampler(Protocol):
    model_id: str

    def generate(
        self,
        prompts: list[str],
        samples_per_prompt: int = 1,
        params: SamplingParams | None = None,
        prefixes: list[str] | None = None,
    ) -> list[list[Sample]]: ...


def request_defaults(prompts: list[str], params: SamplingParams | None,
                     prefixes: list[str] | None) -> tuple[SamplingParams, list[str]]:
    """The `generate` arguments every backend starts from: default params, one (possibly empty) prefix per prompt."""
    prefixes = prefixes or [""] * len(prompts)
    if len(prefixes) != len(prompts):
        raise ValueError(f"got {len(prefixes)} prefixes for {len(prompts)} prompts")
    return params or SamplingParams(), prefixes
