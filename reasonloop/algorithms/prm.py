"""Train a process reward model (or an outcome / value model) on stepwise labels; use it as an RL reward.

    reasonloop label model.path=runs/quickstart/base method=binary_search output=runs/labels/bs.jsonl
    reasonloop prm model.path=runs/quickstart/base data=runs/labels/bs.jsonl eval_data=runs/labels/gt.jsonl

Model: `reasonloop.models.reward_model.RewardModel`, any HF backbone with a scalar head read
at the last token of each step. Loss: binary cross-entropy on the step logits
(`step_bce_loss`), with targets chosen by `kind` and `targets`:

- `prm` + `hard`: Math-Shepherd HE / OmegaPRM / PRM800K labels, 0 or 1 per step;
- `prm` + `soft`: the Monte-Carlo value itself (Math-Shepherd SE) as a probability target,
  BCE with soft targets (the cross-entropy to a Bernoulli(value)); TRL's PRMTrainer and
  OpenR only train on hard labels (openreasoner/openr#57);
- `prm` + `values`: ReST-MCTS* inferred values (the paper regresses them with MSE; we use
  BCE with the value as a soft target, which has the same minimiser);
- `orm`: the outcome at the last step only (TRL's `train_on_last_step_only`);
- `value`: the outcome at every step (OVM, Yu et al. 2023, arXiv:2311.09724).

RL: `process_advantages` (DeepSeekMath's process supervision, arXiv:2402.03300 §4.1.3:
normalise every step reward by the group's mean and std over all steps, the advantage of a
token is the sum of the normalised rewards of its step and every later step) and
`posterior_gated_rewards` (Posterior-GRPO, arXiv:2508.05170: the process reward only counts
for rollouts whose outcome is correct) are pure functions; `token_step_index` maps
completion tokens to steps. `reasonloop.models.reward_model.prm_reward(dir)` is the reward
callable.

Options shared with the other trainers: `precision` (`models/precision.py`), `gradient_checkpointing`,
`micro_batch_size` / `micro_batch_tokens` (gradient accumulation: each micro-batch's summed BCE is
divided by the whole batch's labelled-step count, so the update equals the full batch's; the head is
scalar, so a micro-batch's memory is its activations, never (tokens x vocabulary) logits), `lora` (adapters on the backbone, the head trained in full; checkpoints hold adapter + head, the
final model is merged), `keep_last` checkpoint rotation.

Deviations: no special step token (the separator's own last token is read, as in
TRL); the eval threshold for first-error F1 is a config value (default 0.5), not tuned on
the eval set (ProcessBench tuned it per PRM, QwenLM/ProcessBench#3).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from reasonloop.algorithms.common import OptimConfig, make_optimizer, make_scheduler, masked_mean
from reasonloop.algorithms.ranks import Ranks, rank_micro_batches
from reasonloop.algorithms.sft import data_order, micro_batches
from reasonloop.config import ConfigError, dump_config
from reasonloop.models.lora import LoRAConfig, apply_lora, merged
from reasonloop.models.policy import enable_gradient_checkpointing
from reasonloop.models.precision import Precision, autocast
from reasonloop.models.reward_model import HEAD_FILE, RewardKind, RewardModel
from reasonloop.store.checkpoint import load_trainer_state, save_checkpoint, save_model
from reasonloop.store.runs import RunDir
from reasonloop.store.trackers import LogConfig
from reasonloop.types import split_steps
from reasonloop.utils import console, progress, seed_everything


@dataclass
class PRMConfig:
    backbone: str = "runs/quickstart/base"
    """HF checkpoint directory whose base model gets the scalar head"""
    data: str = "runs/labels/steps.jsonl"
    """stepwise JSONL (`reasonloop label` output, or TRL prompt/completions/labels rows)"""
    eval_data: str = ""
    """stepwise JSONL with `true_first_error` (e.g. `reasonloop label method=ground_truth`): F1 and AUC"""
    kind: RewardKind = "prm"
    targets: Literal["hard", "soft", "values"] = "hard"
    """prm only: hard labels, soft Monte-Carlo values, or ReST-MCTS* values"""
    step_separator: str = "\n"
    use_chat_template: bool = True
    epochs: float = 3.0
    batch_size: int = 32
    """rows per optimizer step (global)"""
    micro_batch_size: int = 8
    """rows per forward/backward (per device); gradients accumulate up to batch_size"""
    micro_batch_tokens: int = 0
    """> 0: a micro-batch also stops before rows x longest row exceeds this many tokens (a longer row runs
    alone); 0: rows only"""
    max_length: int = 2048
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=5e-6, warmup_steps=10))
    threshold: float = 0.5
    """a step is predicted bad when its score is below this (first-error F1)"""
    run_name: str = "prm"
    log: LogConfig = field(default_factory=LogConfig)
    """trackers (jsonl always; tensorboard, wandb, mlflow) and whether rollouts are kept"""
    output_dir: str = "runs"
    save_every: int = 0
    """checkpoint every N optimizer steps (0: only the final model)"""
    keep_last: int = 2
    """checkpoints kept (the newest, always including the latest); 0 keeps all"""
    resume: bool = False
    seed: int = 0
    device: str = "auto"
    precision: Precision = "fp32"
    """fp32, mixed_bf16 (float32 master weights, bf16 autocast) or pure_bf16 (`models/precision.py`)"""
    gradient_checkpointing: bool = False
    lora: LoRAConfig = field(default_factory=LoRAConfig)

    def __post_init__(self):
        if self.epochs <= 0 or self.batch_size < 1 or self.micro_batch_size < 1 or self.keep_last < 0:
            raise ValueError("epochs must be > 0, batch_size >= 1, micro_batch_size >= 1 and keep_last >= 0")
        if self.micro_batch_tokens < 0:
            raise ValueError(f"micro_batch_tokens must be >= 0 (0: size micro-batches by rows), got "
                             f"{self.micro_batch_tokens}")
        if self.kind != "prm" and self.targets != "hard":
            raise ValueError(f"targets={self.targets!r} only applies to kind=prm (orm/value learn the outcome)")
        if not 0 < self.threshold < 1:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")


# ---------------------------------------------------------------------------------------
# Pure maths


def step_bce_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy over the steps where `mask` is 1. All (B, S); targets in [0, 1]."""
    per_step = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none")  # (B, S)
    return masked_mean(per_step, mask)


def step_targets(row: dict[str, Any], kind: RewardKind, targets: str) -> tuple[list[float], list[float]]:
    """(targets, mask) over a row's steps for each kind of model."""
    n = len(row["completions"])
    outcome = float(row["outcome"]) if row.get("outcome") is not None else float(row["labels"][-1])
    if kind == "orm":
        return [0.0] * (n - 1) + [outcome], [0.0] * (n - 1) + [1.0]
    if kind == "value":
        return [outcome] * n, [1.0] * n
    if targets == "soft":
        if row.get("soft_labels") is None:
            raise ValueError(f"row {row.get('problem_id', '?')} has no soft_labels (targets=soft needs Monte-Carlo rows)")
        return [float(x) for x in row["soft_labels"]], [1.0] * n
    if targets == "values":
        if row.get("values") is None:
            raise ValueError(f"row {row.get('problem_id', '?')} has no values (targets=values needs `label` output)")
        return [float(x) for x in row["values"]], [1.0] * n
    return [float(x) for x in row["labels"]], [1.0] * n


def process_advantages(step_rewards: Sequence[Sequence[float]], eps: float = 1e-6) -> list[list[float]]:
    """DeepSeekMath process supervision for one group: normalise all step rewards of the group by
    their mean and (population) std, then a step's advantage = sum of normalised rewards from it to the end.

    >>> [[round(a, 4) for a in s] for s in process_advantages([[1.0, 0.0], [0.0]])]
    [[0.7071, -0.7071], [-0.7071]]
    """
    flat = torch.tensor([r for s in step_rewards for r in s], dtype=torch.float64)  # (total steps,)
    if flat.numel() == 0:
        return [[] for _ in step_rewards]
    mean, std = flat.mean(), flat.std(unbiased=False)
    out = []
    for s in step_rewards:
        normed = (torch.tensor(list(s), dtype=torch.float64) - mean) / (std + eps)  # (S,)
        # reverse cumulative sum: advantage of step j = sum_{j' >= j} normed[j']
        out.append(normed.flip(0).cumsum(0).flip(0).tolist())
    return out


def token_step_index(token_texts: Sequence[str], separator: str = "\n") -> list[int]:
    """Step index (as in `split_steps`) of each completion token: a token belongs to the step
    being written when it starts, so a separator belongs to the step it closes; tokens after
    the last step (EOS) belong to the last step.

    >>> token_step_index(["1", "+", "1", "\\n", "2", "\\n", ""])   # "" = EOS decoded without specials
    [0, 0, 0, 0, 1, 1, 1]
    """
    out, before = [], ""
    for tok in token_texts:
        cut = before.rfind(separator)
        out.append(len(split_steps(before[:cut], separator)) if cut >= 0 else 0)  # complete steps so far
        before += tok
    last = max(len(split_steps(before, separator)) - 1, 0)
    return [min(i, last) for i in out]


def expand_to_tokens(step_values: Sequence[float], token_steps: Sequence[int]) -> list[float]:
    """Per-token values from per-step values (`token_step_index` gives the mapping)."""
    if not step_values:
        return [0.0] * len(token_steps)
    return [step_values[min(s, len(step_values) - 1)] for s in token_steps]


def posterior_gated_rewards(outcome: torch.Tensor, process: torch.Tensor, weight: float = 1.0) -> torch.Tensor:
    """Posterior-GRPO: r = outcome + weight * process * [outcome == 1]. outcome, process: (G,).

    Only correct rollouts are ranked by their process reward, so a wrong answer cannot earn
    reward for plausible-looking steps (the reward hack Posterior-GRPO removes).

    >>> posterior_gated_rewards(torch.tensor([1., 0., 1.]), torch.tensor([.5, .9, .25]), 0.5).tolist()
    [1.25, 0.0, 1.125]
    """
    return outcome + weight * process * (outcome == 1).to(process.dtype)


# ---------------------------------------------------------------------------------------
# Training


def evaluate_model(model: RewardModel, rows: list[dict[str, Any]], threshold: float) -> dict[str, float]:
    """First-error F1 and step AUC of the model's step scores against `true_first_error`."""
    from reasonloop.evaluate.process import evaluate_step_scores

    rows = [r for r in rows if "true_first_error" in r and not r.get("augment")]
    scores = model.score_batch([r["prompt"] for r in rows], [r["completions"] for r in rows])
    return evaluate_step_scores(scores, [r["true_first_error"] for r in rows], threshold)


def accumulate_batch(model: RewardModel, encoded: list[tuple[list[int], list[int]]],
                     targets: list[tuple[list[float], list[float]]], cfg: PRMConfig, ranks: Ranks | None) -> float:
    """Forward and backward of one optimizer step's rows in micro-batches (under torchrun, this rank's share
    of them); the step's loss.

    The loss is the mean BCE over every labelled step of the global batch: each micro-batch's summed
    BCE is divided by that count before its backward, so the accumulated gradient (summed over the
    ranks) is the full batch's (`step_bce_loss` on one batch; tested). Under torchrun every rank runs
    as many forwards as the busiest one, with weight-0 repeats (`algorithms.ranks.rank_micro_batches`).
    """
    count = sum(sum(mask[: len(ends)]) for (_, ends), (_, mask) in zip(encoded, targets))
    denominator = max(count, 1.0)  # masked_mean's clamp(min=1)

    def cut(rows: list[int]) -> list[list[int]]:
        rows = sorted(rows, key=lambda i: len(encoded[i][0]))  # similar lengths per micro-batch
        groups = micro_batches([len(encoded[i][0]) for i in rows], cfg.micro_batch_size, cfg.micro_batch_tokens)
        return [[rows[g] for g in group] for group in groups]

    total = 0.0
    for rows, weight in rank_micro_batches(list(range(len(encoded))), cut, ranks):
        batch = {k: v.to(model.device) for k, v in model.collate([encoded[i] for i in rows]).items()}
        width = batch["step_mask"].shape[1]
        target = torch.tensor([targets[i][0] + [0.0] * (width - len(targets[i][0])) for i in rows])  # (b, S)
        mask = torch.tensor([targets[i][1] + [0.0] * (width - len(targets[i][1])) for i in rows])  # (b, S)
        with autocast(model):
            logits = model(**batch)  # (b, S)
            weights = mask.to(model.device) * batch["step_mask"]  # (b, S)
            per_step = torch.nn.functional.binary_cross_entropy_with_logits(logits, target.to(model.device),
                                                                            reduction="none")  # (b, S)
            loss = (per_step * weights).sum() * (weight / denominator)
            loss.backward()
        total += loss.item()
    return ranks.sum(total) if ranks is not None else total


def load_reward_model(cfg: PRMConfig, ckpt: Path | None) -> RewardModel:
    """The model to train: a fresh head on `cfg.backbone`, or the checkpoint being resumed. A full-weight
    checkpoint is a reward model directory; a LoRA one holds the backbone's adapter and the head."""
    if ckpt is not None and cfg.lora.r == 0:
        model = RewardModel.from_pretrained(ckpt, device=cfg.device, precision=cfg.precision)
    else:
        model = RewardModel.from_backbone(cfg.backbone, cfg.kind, device=cfg.device, precision=cfg.precision,
                                          step_separator=cfg.step_separator, use_chat_template=cfg.use_chat_template,
                                          max_length=cfg.max_length)
    if cfg.gradient_checkpointing:
        enable_gradient_checkpointing(model.backbone)
    if cfg.lora.r > 0:
        from safetensors.torch import load_file

        model.backbone = apply_lora(model.backbone, cfg.lora, adapter_dir=ckpt, task_type=None)
        if ckpt is not None:
            model.head.load_state_dict(load_file(str(ckpt / HEAD_FILE)))
    return model


def main(cfg: PRMConfig, ranks: Ranks | None = None) -> dict[str, Any]:
    """With `ranks` (torchrun): each rank trains its share of every batch, FSDP-sharded (`algorithms.ranks`)."""
    from reasonloop.algorithms.step_rows import read_step_rows

    if ranks is not None and (cfg.lora.r > 0 or cfg.batch_size < ranks.world):
        raise ConfigError(f"prm under torchrun needs lora.r=0 and batch_size >= {ranks.world} ranks")
    root = Path(cfg.output_dir) / cfg.run_name
    run = (ranks.open_run(root, dump_config(cfg), cfg.resume, log=cfg.log) if ranks is not None
           else RunDir.create(root, dump_config(cfg), resume=cfg.resume, log=cfg.log))
    seed_everything(cfg.seed)
    rows = read_step_rows(cfg.data)
    eval_rows = read_step_rows(cfg.eval_data) if cfg.eval_data else []
    if not rows:
        raise ValueError(f"{cfg.data}: no rows to train on")

    # --- model (fresh head, or the last checkpoint when resuming) ---
    ckpt = run.latest_checkpoint() if cfg.resume else None
    model = load_reward_model(cfg, ckpt if ranks is None else None)  # ranks: a fresh model, then `ranks.load`
    if ranks is not None:
        model = ranks.wrap(model)
    encoded = [model.encode(r["prompt"], r["completions"]) for r in rows]
    targets = [step_targets(r, cfg.kind, cfg.targets) for r in rows]
    total = max(1, math.ceil(len(rows) * cfg.epochs / cfg.batch_size))
    order = data_order(len(rows), total, cfg.batch_size, cfg.seed)
    optimizer = make_optimizer(model.parameters(), cfg.optim)
    scheduler = make_scheduler(optimizer, cfg.optim, total)
    start = 0
    if ckpt is not None:
        start = (ranks.load(ckpt, model, optimizer, scheduler) if ranks is not None
                 else load_trainer_state(ckpt, optimizer, scheduler))["step"]
        if ranks is None or ranks.is_main:
            run.truncate_metrics(lambda r: r.get("step", 0) <= start)
        console.print(f"prm: resuming {run.root} from step {start}")

    # --- loop ---
    model.train()
    losses, t0 = [], time.perf_counter()
    with progress() as bar:
        task = bar.add_task(f"prm ({cfg.kind}, {cfg.targets})", total=total, completed=start, info="")
        for step in range(start, total):
            idx = order[step * cfg.batch_size: (step + 1) * cfg.batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = accumulate_batch(model, [encoded[i] for i in idx], [targets[i] for i in idx], cfg, ranks)
            if ranks is not None:
                grad_norm = ranks.clip_grad_norm(model.parameters(), cfg.optim.grad_clip) if cfg.optim.grad_clip > 0 else 0.0
            else:
                grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip).item() \
                    if cfg.optim.grad_clip > 0 else 0.0
            optimizer.step()
            scheduler.step()
            losses.append(loss)
            bar.update(task, advance=1, info=f"loss {loss:.3f}")
            if ((step + 1) % 10 == 0 or step + 1 == total) and (ranks is None or ranks.is_main):
                run.log({"step": step + 1, "loss": loss, "grad_norm": grad_norm, "lr": scheduler.get_last_lr()[0]})
            if cfg.save_every and (step + 1) % cfg.save_every == 0 and step + 1 < total:
                if ranks is not None:
                    path = ranks.save(run.checkpoint_path(step + 1), model, model.tokenizer, optimizer, scheduler,
                                      {"step": step + 1})
                else:
                    path = save_checkpoint(run.checkpoint_path(step + 1), model, None, optimizer, scheduler,
                                           extra={"step": step + 1})
                if ranks is None or ranks.is_main:
                    run.mark_latest(path, cfg.keep_last)

    # --- save and evaluate ---
    if ranks is not None:  # the sharded weights gathered into a plain reward model on the main rank
        full = ranks.full_state_dict(model)
        if not ranks.is_main:
            return {"steps": total - start, "rank": ranks.rank}
        model = load_reward_model(cfg, None)
        model.load_state_dict(full)
    model.backbone = merged(model.backbone)  # LoRA: a plain backbone, so the final model loads without peft
    final = save_model(run.root / "final", model)
    summary: dict[str, Any] = {
        "steps": total - start, "rows": len(rows), "loss_first": losses[0] if losses else None,
        "loss_last": sum(losses[-10:]) / len(losses[-10:]) if losses else None,
        "train_seconds": time.perf_counter() - t0, "model": str(final),
    }
    if eval_rows:
        summary["eval"] = evaluate_model(model, eval_rows, cfg.threshold)
    run.write_json("summary.json", summary)
    console.print(f"prm: {summary}")
    return summary
