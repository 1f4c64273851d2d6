"""Supervised fine-tuning on (prompt, completion) pairs, loss on completion tokens only.

`fit()` is the SFT phase that `pretrain` and `selftrain` call; `main()` is the `reasonloop
sft` command, which trains on a samples JSONL (by default only samples whose "correct"
reward is 1.0) and resumes exactly: the data order is a pure function of (seed, step), so
a checkpoint needs only model, optimizer, scheduler, RNG and the step.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from reasonloop.algorithms.common import (
    OptimConfig, collate, encode_pairs, make_optimizer, make_scheduler, sft_loss, token_logprobs,
)
from reasonloop.config import dump_config
from reasonloop.models.policy import ModelConfig, load_model
from reasonloop.store.checkpoint import load_trainer_state, save_checkpoint, save_model
from reasonloop.store.jsonl import read_jsonl
from reasonloop.store.runs import RunDir
from reasonloop.types import Sample
from reasonloop.utils import console, progress, seed_everything


@dataclass
class TrainConfig:
    """The optimisation settings of one SFT phase."""

    epochs: float = 1.0
    max_steps: int = 0
    """optimizer steps; 0 means derive from `epochs`"""
    batch_size: int = 32
    """sequences per optimizer step (global)"""
    micro_batch_size: int = 32
    """sequences per forward/backward pass (per device); gradients accumulate up to batch_size"""
    max_length: int = 512
    optim: OptimConfig = field(default_factory=OptimConfig)
    seed: int = 0

    def __post_init__(self):
        if self.batch_size < 1 or self.micro_batch_size < 1 or self.batch_size % self.micro_batch_size:
            raise ValueError(
                f"batch_size ({self.batch_size}) must be a positive multiple of micro_batch_size ({self.micro_batch_size})"
            )
        if self.epochs <= 0 and self.max_steps <= 0:
            raise ValueError("set epochs > 0 or max_steps > 0")

    def total_steps(self, num_examples: int) -> int:
        return self.max_steps or max(1, math.ceil(num_examples * self.epochs / self.batch_size))


def data_order(num_examples: int, total_steps: int, batch_size: int, seed: int) -> list[int]:
    """Example indices for every step: concatenated seeded permutations (one per epoch)."""
    order: list[int] = []
    epoch = 0
    while len(order) < total_steps * batch_size:
        perm = list(range(num_examples))
        random.Random(seed * 100_003 + epoch).shuffle(perm)
        order += perm
        epoch += 1
    return order[: total_steps * batch_size]


def fit(
    model,
    tokenizer,
    pairs: list[tuple[str, str]],
    cfg: TrainConfig,
    *,
    use_chat_template: bool = True,
    system_prompt: str = "",
    description: str = "sft",
    on_step: Callable[[int, dict], None] | None = None,
    start_step: int = 0,
    optimizer=None,
    scheduler=None,
) -> dict:
    """Train `model` in place on (prompt, completion) text pairs; returns summary metrics.

    `on_step(step, metrics)` runs after every optimizer step (logging, checkpointing).
    Pass `start_step` with a restored optimizer/scheduler to resume exactly.
    """
    if not pairs:
        raise ValueError("fit() got no training pairs")
    encoded = encode_pairs(tokenizer, pairs, use_chat_template, system_prompt)
    total = cfg.total_steps(len(encoded))
    order = data_order(len(encoded), total, cfg.batch_size, cfg.seed)
    optimizer = optimizer or make_optimizer(model.parameters(), cfg.optim)
    scheduler = scheduler or make_scheduler(optimizer, cfg.optim, total)
    device = next(model.parameters()).device
    model.train()
    losses, tokens, start = [], 0, time.perf_counter()
    with progress() as bar:
        task = bar.add_task(description, total=total, completed=start_step, info="")
        for step in range(start_step, total):
            batch = [encoded[i] for i in order[step * cfg.batch_size : (step + 1) * cfg.batch_size]]
            batch.sort(key=lambda p: len(p[0]) + len(p[1]))  # similar lengths per micro-batch: less padding
            num_target = sum(len(c) for _, c in batch)
            optimizer.zero_grad(set_to_none=True)
            step_loss = 0.0
            for m in range(0, len(batch), cfg.micro_batch_size):
                t = collate(batch[m : m + cfg.micro_batch_size], tokenizer.pad_token_id, cfg.max_length)
                t = {k: v.to(device) for k, v in t.items()}
                logprobs, _ = token_logprobs(model, t["input_ids"], t["attention_mask"])  # (b, T-1)
                # weight each micro-batch by its share of completion tokens: token-mean over the full batch
                weight = t["loss_mask"].sum().item() / max(1, num_target)
                loss = sft_loss(logprobs, t["loss_mask"]) * weight
                loss.backward()
                step_loss += loss.item()
            grad_norm = (
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip).item()
                if cfg.optim.grad_clip > 0 else 0.0
            )
            optimizer.step()
            scheduler.step()
            losses.append(step_loss)
            tokens += num_target
            metrics = {"step": step + 1, "loss": step_loss, "grad_norm": grad_norm, "lr": scheduler.get_last_lr()[0]}
            bar.update(task, advance=1, info=f"loss {step_loss:.3f}")
            if on_step is not None:
                on_step(step + 1, metrics)
    model.eval()
    return {
        "steps": total - start_step,
        "loss_first": losses[0] if losses else None,
        "loss_last": float(sum(losses[-10:]) / max(1, len(losses[-10:]))) if losses else None,
        "train_tokens": tokens,
        "train_seconds": time.perf_counter() - start,
    }


@dataclass
class SFTConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: str = ""
    """samples JSONL (reasonloop Sample records)"""
    only_correct: bool = True
    """train only on samples whose "correct" reward is 1.0"""
    train: TrainConfig = field(default_factory=TrainConfig)
    run_name: str = "sft"
    output_dir: str = "runs"
    save_every: int = 0
    """checkpoint every N optimizer steps (0: only at the end)"""
    resume: bool = False


def load_pairs(path: str | Path, only_correct: bool) -> list[tuple[str, str]]:
    samples = read_jsonl(path, Sample)
    kept = [s for s in samples if s.correct or not only_correct]
    if not kept:
        raise ValueError(f"{path}: no usable samples ({len(samples)} read, only_correct={only_correct})")
    return [(s.prompt, s.text) for s in kept]


def main(cfg: SFTConfig) -> dict:
    if not cfg.data:
        raise ValueError("sft needs data=<samples.jsonl>")
    run = RunDir.create(Path(cfg.output_dir) / cfg.run_name, dump_config(cfg), resume=cfg.resume)
    seed_everything(cfg.train.seed)
    pairs = load_pairs(cfg.data, cfg.only_correct)
    model_cfg, start_step, optimizer, scheduler = cfg.model, 0, None, None
    latest = run.latest_checkpoint() if cfg.resume else None
    if latest is not None:
        model_cfg = ModelConfig(**{**vars(cfg.model), "path": str(latest)})
    model, tokenizer = load_model(model_cfg, for_training=True)
    if latest is not None:
        optimizer = make_optimizer(model.parameters(), cfg.train.optim)
        scheduler = make_scheduler(optimizer, cfg.train.optim, cfg.train.total_steps(len(pairs)))
        start_step = load_trainer_state(latest, optimizer, scheduler)["step"]
        run.truncate_metrics(lambda r: r.get("step", 0) <= start_step)
        console.print(f"resuming {run.root} from step {start_step}")
    total = cfg.train.total_steps(len(pairs))
    state = {}

    def on_step(step: int, metrics: dict) -> None:
        run.log(metrics)
        if step == total or (cfg.save_every and step % cfg.save_every == 0):
            ckpt = save_checkpoint(run.checkpoint_path(step), model, tokenizer, state["opt"], state["sched"],
                                   extra={"step": step})
            run.mark_latest(ckpt)

    optimizer = optimizer or make_optimizer(model.parameters(), cfg.train.optim)
    scheduler = scheduler or make_scheduler(optimizer, cfg.train.optim, total)
    state.update(opt=optimizer, sched=scheduler)
    summary = fit(model, tokenizer, pairs, cfg.train, use_chat_template=cfg.model.use_chat_template,
                  system_prompt=cfg.model.system_prompt, on_step=on_step, start_step=start_step,
                  optimizer=optimizer, scheduler=scheduler)
    save_model(run.root / "final", model, tokenizer)
    summary["examples"] = len(pairs)
    run.write_json("summary.json", summary)
    console.print(f"sft: {summary['steps']} steps, final loss {summary['loss_last']:.4f}; model in {run.root / 'final'}")
    return summary
