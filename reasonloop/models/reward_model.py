"""Reward models on any Hugging Face backbone: a scalar head read at the end of every step.

    rm = RewardModel.from_backbone("runs/quickstart/base", kind="prm")   # fresh head on an LM
    rm = RewardModel.from_pretrained("runs/prm/final")                    # a trained one
    rm.score_steps(problem, ["37 + 5 = 42", "42 - 8 = 34", "Answer: 34"])  # -> [p1, p2, p3]

The input is the policy's prompt format (`format_prompt`) followed by the steps, each
followed by the step separator; the steps are tokenized one by one (as TRL's PRMTrainer
does) so a step boundary is always a token boundary, and the head reads the hidden state
of the last token of each `step + separator`. `sigmoid(head)` is the step score.

One class serves three models, which differ only in their training targets (`prm.py`):
- `prm`: a label per step (hard or soft Monte-Carlo values);
- `orm`: the outcome, read at the last step only;
- `value`: the outcome at every step (OVM, Yu et al. 2023), or soft prefix values (TVM).

A trained model is a directory: the backbone's `save_pretrained` files (config.json,
model.safetensors), the tokenizer, `reward_head.safetensors` and `reward_model.json`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch

from reasonloop.models.policy import encode_context, from_pretrained, load_tokenizer, resolve_device
from reasonloop.models.precision import set_precision, weights_dtype
from reasonloop.types import Problem, split_steps
from reasonloop.verify.aggregate import aggregate as aggregate_steps
from reasonloop.verify.aggregate import check_aggregation

RewardKind = Literal["prm", "orm", "value"]
HEAD_FILE, CONFIG_FILE = "reward_head.safetensors", "reward_model.json"


@dataclass
class RewardModelSpec:
    """What is saved next to the weights: how the model reads its input."""

    kind: RewardKind = "prm"
    step_separator: str = "\n"
    use_chat_template: bool = True
    system_prompt: str = ""
    max_length: int = 1024


class RewardModel(torch.nn.Module):
    def __init__(self, backbone, tokenizer, spec: RewardModelSpec):
        super().__init__()
        self.backbone, self.tokenizer, self.spec = backbone, tokenizer, spec
        self.head = torch.nn.Linear(backbone.config.hidden_size, 1)
        torch.nn.init.zeros_(self.head.weight)  # start at score 0.5 everywhere: no arbitrary initial ranking
        torch.nn.init.zeros_(self.head.bias)

    # --- construction and persistence ---
    @classmethod
    def from_backbone(cls, path: str | Path, kind: RewardKind = "prm", device: str = "auto",
                      precision: str = "fp32", **spec_kwargs) -> RewardModel:
        """A fresh scalar head on the base model (no LM head) of any HF checkpoint (directory or Hub id), its
        weights (head included) in `precision`'s dtype (`models/precision.py`: float32 unless pure_bf16)."""
        from transformers import AutoModel

        dtype = weights_dtype(precision)
        backbone = from_pretrained(AutoModel, path, dtype=dtype)
        model = cls(backbone, load_tokenizer(path), RewardModelSpec(kind=kind, **spec_kwargs)).to(dtype)
        set_precision(model, precision)
        return model.to(resolve_device(device))

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "auto", precision: str = "fp32") -> RewardModel:
        from safetensors.torch import load_file

        path = Path(path)
        if not (path / CONFIG_FILE).exists():
            raise FileNotFoundError(f"{path}/{CONFIG_FILE} not found: not a reward model directory "
                                    f"(train one with `reasonloop prm`)")
        spec = RewardModelSpec(**json.loads((path / CONFIG_FILE).read_text()))
        model = cls.from_backbone(path, spec.kind, device="cpu", precision=precision, **{k: v for k, v in asdict(spec).items()
                                                                  if k != "kind"})
        model.head.load_state_dict(load_file(str(path / HEAD_FILE)))
        return model.to(resolve_device(device))

    def save_pretrained(self, path: str | Path, **kwargs) -> Path:
        """Write backbone, tokenizer, head and spec into `path` (callers make it atomic: `store.save_model`)."""
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.backbone.save_pretrained(path, **kwargs)
        self.tokenizer.save_pretrained(path)
        save_file({k: v.contiguous() for k, v in self.head.state_dict().items()}, str(path / HEAD_FILE))
        (path / CONFIG_FILE).write_text(json.dumps(asdict(self.spec), indent=2) + "\n")
        return path

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    # --- encoding ---
    def encode(self, prompt: str, steps: Sequence[str]) -> tuple[list[int], list[int]]:
        """(token ids, index of the last token of each step + separator)."""
        s = self.spec
        ids = encode_context(self.tokenizer, prompt, "", s.use_chat_template, s.system_prompt)
        ends = []
        for step in steps:
            ids = ids + self.tokenizer(step + s.step_separator, add_special_tokens=False)["input_ids"]
            ends.append(len(ids) - 1)
        if ends and ends[-1] >= s.max_length:  # cut from the left: the steps matter more than the prompt's start
            cut = ends[-1] + 1 - s.max_length
            ids, ends = ids[cut:], [e - cut for e in ends]
            if ends[0] < 0:
                raise ValueError(f"a solution of {len(steps)} steps does not fit max_length={s.max_length}")
        return ids, ends

    def collate(self, encoded: Sequence[tuple[list[int], list[int]]]) -> dict[str, torch.Tensor]:
        """Right-pad encoded rows: input_ids/attention_mask (B, T), step_index/step_mask (B, S)."""
        width = max(len(ids) for ids, _ in encoded)
        steps = max(len(ends) for _, ends in encoded)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((len(encoded), width), pad, dtype=torch.long)
        attention = torch.zeros((len(encoded), width), dtype=torch.long)
        step_index = torch.zeros((len(encoded), steps), dtype=torch.long)
        step_mask = torch.zeros((len(encoded), steps), dtype=torch.float32)
        for b, (ids, ends) in enumerate(encoded):
            input_ids[b, : len(ids)] = torch.tensor(ids)
            attention[b, : len(ids)] = 1
            step_index[b, : len(ends)] = torch.tensor(ends)
            step_mask[b, : len(ends)] = 1.0
        return {"input_ids": input_ids, "attention_mask": attention, "step_index": step_index, "step_mask": step_mask}

    # --- scoring ---
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, step_index: torch.Tensor,
                **_) -> torch.Tensor:
        """Step logits (B, S) read at `step_index`; padded step slots hold garbage (mask them)."""
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, T, H)
        at_steps = hidden.gather(1, step_index[..., None].expand(-1, -1, hidden.shape[-1]))  # (B, S, H)
        return self.head(at_steps).squeeze(-1).float()  # (B, S), float32 whatever the weights' dtype

    @torch.no_grad()
    def score_batch(self, prompts: Sequence[str], steps: Sequence[Sequence[str]],
                    batch_size: int = 32) -> list[list[float]]:
        """P(step good) for every step of every (prompt, steps) pair."""
        was_training = self.training
        self.eval()
        out: list[list[float]] = []
        try:
            for i in range(0, len(prompts), batch_size):
                encoded = [self.encode(p, s) for p, s in zip(prompts[i:i + batch_size], steps[i:i + batch_size])]
                if not any(ends for _, ends in encoded):
                    out += [[] for _ in encoded]
                    continue
                t = {k: v.to(self.device) for k, v in self.collate(encoded).items()}
                probs = torch.sigmoid(self(**t)).cpu()  # (b, S)
                out += [probs[b, : len(ends)].tolist() for b, (_, ends) in enumerate(encoded)]
        finally:
            self.train(was_training)
        return out

    def score_steps(self, problem: Problem | str, steps: Sequence[str]) -> list[float]:
        """One score in (0, 1) per step: the model's P(this step is good) given the problem and earlier steps."""
        prompt = problem.prompt if isinstance(problem, Problem) else problem
        return self.score_batch([prompt], [list(steps)])[0] if steps else []


# ---------------------------------------------------------------------------------------
# Aggregation and the reward callable for RL / best-of-N

def prm_reward(model_dir: str | Path, aggregate: str = "min", device: str = "cpu") -> Callable[[Problem, str], float]:
    """A reward callable `(problem, completion) -> float` scoring the completion with a trained reward model.

    The model is loaded once, when the callable is built; the completion is split into steps
    with the model's own separator.
    """
    model = RewardModel.from_pretrained(model_dir, device=device)
    check_aggregation(aggregate)

    def reward(problem: Problem, completion: str) -> float:
        return aggregate_steps(model.score_steps(problem, split_steps(completion, model.spec.step_separator)),
                                aggregate)

    reward.__name__ = f"prm_{aggregate}"
    reward.model = model  # exposed so callers can batch with `score_batch`
    return reward
