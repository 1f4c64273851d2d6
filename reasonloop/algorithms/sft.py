"""Supervised fine-tuning on (prompt, completion) pairs, loss on completion tokens only.

`fit()` is the SFT phase that `pretrain`, `selftrain`, `distill` and `dpo` (its RPO term
aside) build on; `main()` is the `reasonloop sft` command. It trains on a JSONL file of
either reasonloop `Sample` records (by default only those whose "correct" reward is 1.0)
or plain rows such as `{"prompt": ..., "completion": ...}` (field names configurable), and
resumes exactly: the data order is a pure function of (seed, step), so a checkpoint needs
only model (or LoRA adapter), optimizer, scheduler, RNG and the step.

Options:
- `train.packing`: concatenate examples into rows of up to `max_length` tokens. Attention
  is block-diagonal and positions restart for every example, so a packed row computes
  exactly the same log-probabilities as its examples one by one (tested); only padding is
  saved. `batch_size` then counts packed rows, not examples.
- gradient accumulation: `batch_size` sequences per optimizer step, `micro_batch_size` per
  forward pass; the loss is the token mean over the whole batch either way.
- LR schedule: `train.optim` (warmup, cosine/linear/constant decay).
- `train.micro_batch_tokens`: size micro-batches by tokens (rows x padded length) instead of rows.
- `lora.r > 0`: train LoRA adapters through peft (`models/lora.py`) instead of all weights;
  checkpoints hold the adapter and the final model is merged into a plain Hugging Face directory.
- `model.precision` (fp32 / mixed_bf16 / pure_bf16, `models/precision.py`) and
  `model.gradient_checkpointing` apply to every trainer built on `fit()`.
- `keep_last`: keep only the newest N checkpoints (the latest one always).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from reasonloop.algorithms.common import OptimConfig, encode_pairs, make_optimizer, make_scheduler, sft_loss
from reasonloop.algorithms.ranks import Ranks, rank_micro_batches
from reasonloop.config import ConfigError, UserError, dump_config
from reasonloop.models.forward import training_path
from reasonloop.models.logprobs import collate, completion_logprobs, pad_completions, token_logprobs
from reasonloop.models.lora import LoRAConfig, load_trainable, merged
from reasonloop.models.policy import ModelConfig
from reasonloop.models.precision import autocast
from reasonloop.store.checkpoint import load_trainer_state, save_checkpoint, save_model
from reasonloop.store.jsonl import RecordError, from_row, iter_jsonl
from reasonloop.store.runs import RunDir
from reasonloop.store.trackers import LogConfig
from reasonloop.tasks.spec import TaskSpec
from reasonloop.types import Sample
from reasonloop.utils import console, progress, seed_everything

Example = tuple[list[int], list[int]] | tuple[list[int], list[int], list[int]]
"""(context ids, completion ids[, completion mask]): one tokenised training pair. The optional mask
(1 = trained, 0 = context only) is a multi-turn trajectory's: the environment's tokens sit inside the
completion but get no loss (`algorithms.trajectory_sft`); without it every completion token is trained."""


def completion_mask(example: Example) -> list[int]:
    """Which completion tokens of `example` carry loss (all of them unless it has a mask).

    >>> completion_mask(([1], [2, 3])), completion_mask(([1], [2, 3, 4], [1, 0, 1]))
    ([1, 1], [1, 0, 1])
    """
    return list(example[2]) if len(example) > 2 else [1] * len(example[1])


def example_length(example: Example) -> int:
    return len(example[0]) + len(example[1])


@dataclass
class TrainConfig:
    """The optimisation settings of one SFT phase."""

    epochs: float = 1.0
    max_steps: int = 0
    """optimizer steps; 0 means derive from `epochs`"""
    batch_size: int = 32
    """sequences (packed rows when packing) per optimizer step (global)"""
    micro_batch_size: int = 4
    """sequences per forward/backward pass (per device); gradients accumulate up to batch_size (the last
    micro-batch of a step may be smaller: the loss is weighted by tokens either way)"""
    micro_batch_tokens: int = 0
    """> 0: a micro-batch also stops before rows x padded length exceeds this many tokens (a row longer
    than the budget runs alone), so long sequences run in smaller micro-batches; 0: rows only"""
    max_length: int = 2048
    packing: bool = False
    """pack several examples per row (block-diagonal attention, exact maths, less padding)"""
    forward: Literal["auto", "packed", "hf"] = "auto"
    """without `packing`: "packed" runs `models/packed.py` (padding-free, shared prefixes once; the
    Llama-family models of `models/llama.py`, no LoRA), "hf" the model's padded forward, "auto" packed
    where supported (`models/forward.training_path`): same loss"""
    optim: OptimConfig = field(default_factory=OptimConfig)
    seed: int = 0

    def __post_init__(self):
        if self.batch_size < 1 or self.micro_batch_size < 1:
            raise ValueError(f"batch_size ({self.batch_size}) and micro_batch_size ({self.micro_batch_size}) must be >= 1")
        if self.epochs <= 0 and self.max_steps <= 0:
            raise ValueError("set epochs > 0 or max_steps > 0")
        if self.max_length < 2:
            raise ValueError(f"max_length must be >= 2, got {self.max_length}")
        if self.micro_batch_tokens < 0:
            raise ValueError(f"micro_batch_tokens must be >= 0 (0: size micro-batches by rows), got {self.micro_batch_tokens}")

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


# --- packing: pure functions -----------------------------------------------------------


def pack_examples(lengths: list[int], max_length: int) -> list[list[int]]:
    """Greedy next-fit packing in the given order: rows of example indices, each row's total
    length <= max_length (an example longer than max_length gets a row of its own).

    >>> pack_examples([3, 4, 2, 6, 1], max_length=7)
    [[0, 1], [2], [3, 4]]
    """
    rows: list[list[int]] = []
    used = max_length + 1  # forces a new row for the first example
    for i, n in enumerate(lengths):
        if used + n > max_length:
            rows.append([])
            used = 0
        rows[-1].append(i)
        used += n
    return rows


def collate_packed(rows: list[list[Example]], pad_id: int, max_length: int | None = None) -> dict[str, torch.Tensor]:
    """Packed rows -> input_ids (B, T), position_ids (B, T), a block-diagonal causal
    attention mask (B, 1, T, T) and loss_mask (B, T-1) on completion tokens only.

    Token j attends to token i iff both belong to the same example and i <= j; positions
    restart at 0 for every example, so each example sees exactly what it would unpacked.
    """
    seqs, segs, poss, targets = [], [], [], []
    for row in rows:
        ids, seg, pos, tgt = [], [], [], []
        for e, example in enumerate(row):
            context, completion = example[0], example[1]
            seq = context + completion
            ids += seq
            seg += [e] * len(seq)
            pos += list(range(len(seq)))
            tgt += [0] * len(context) + completion_mask(example)  # tgt[t] = 1: token t is a trained completion token
        if max_length:
            ids, seg, pos, tgt = ids[:max_length], seg[:max_length], pos[:max_length], tgt[:max_length]
        seqs.append(ids), segs.append(seg), poss.append(pos), targets.append(tgt)
    width = max(len(s) for s in seqs)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    segment = torch.full((len(rows), width), -1, dtype=torch.long)  # padding: segment -1 (attends to padding only)
    position_ids = torch.zeros((len(rows), width), dtype=torch.long)
    target = torch.zeros((len(rows), width), dtype=torch.float32)
    for b, (ids, seg, pos, tgt) in enumerate(zip(seqs, segs, poss, targets)):
        input_ids[b, : len(ids)] = torch.tensor(ids)
        segment[b, : len(ids)] = torch.tensor(seg)
        position_ids[b, : len(ids)] = torch.tensor(pos)
        target[b, : len(ids)] = torch.tensor(tgt)
    causal = torch.tril(torch.ones(width, width, dtype=torch.bool))  # (T, T)
    mask = (segment[:, :, None] == segment[:, None, :]) & causal  # (B, T, T)
    # position t predicts token t+1; it counts only if t+1 is a completion token of the same example
    same = segment[:, 1:] == segment[:, :-1]  # (B, T-1)
    loss_mask = target[:, 1:] * same  # (B, T-1)
    return {"input_ids": input_ids, "position_ids": position_ids, "attention_mask": mask[:, None], "loss_mask": loss_mask}


# --- the SFT phase -----------------------------------------------------------------------


def micro_batches(lengths: list[int], max_rows: int, max_tokens: int = 0) -> list[list[int]]:
    """Consecutive index groups of at most `max_rows` rows and, when `max_tokens` > 0, at most
    `max_tokens` rows x longest length (a row longer than the budget gets a group of its own).

    >>> micro_batches([2, 3, 5, 9], max_rows=3, max_tokens=10)
    [[0, 1], [2], [3]]
    """
    groups: list[list[int]] = []
    width = 0
    for i, n in enumerate(lengths):
        if groups and len(groups[-1]) < max_rows and (not max_tokens or (len(groups[-1]) + 1) * max(width, n) <= max_tokens):
            groups[-1].append(i)
            width = max(width, n)
        else:
            groups.append([i])
            width = n
    return groups


def cut_micro_batches(units: list[list[Example]], cfg: TrainConfig) -> list[list[list[Example]]]:
    """`units` in micro-batches of at most `micro_batch_size` rows and `micro_batch_tokens` tokens."""
    lengths = [min(cfg.max_length, sum(example_length(e) for e in u)) for u in units]
    return [[units[i] for i in group] for group in micro_batches(lengths, cfg.micro_batch_size, cfg.micro_batch_tokens)]


def micro_batch_loss(model, micro: list[list[Example]], cfg: TrainConfig, pad_id: int, device, packed_forward: bool,
                     num_target: int, weight: float = 1.0) -> float:
    """Forward and backward of one micro-batch; its loss is weighted by its share of the batch's target tokens
    (and by `weight`: 0 for the repeats that keep torchrun ranks in step, `algorithms.ranks.rank_micro_batches`)."""
    if cfg.packing:
        t = {k: v.to(device) for k, v in collate_packed(micro, pad_id, cfg.max_length).items()}
        logprobs, _ = token_logprobs(model, t["input_ids"], t["attention_mask"],
                                     position_ids=t["position_ids"])  # (b, T-1)
    elif packed_forward and all(example_length(u[0]) <= cfg.max_length for u in micro):
        # the padding-free trie forward: same loss, no padded positions (no truncation needed)
        logprobs, _ = completion_logprobs(model, [u[0][0] for u in micro], [u[0][1] for u in micro], pad_id,
                                          forward="packed")  # (b, Tc)
        t = {"loss_mask": pad_completions([[float(m) for m in completion_mask(u[0])] for u in micro])[0].to(device)}
    else:
        t = {k: v.to(device) for k, v in collate([u[0][:2] for u in micro], pad_id, cfg.max_length).items()}
        for b, (u,) in enumerate(micro):
            if len(u) > 2:  # a trajectory: environment tokens inside the completion are context only
                start = len(u[0]) - 1  # position t predicts token t+1
                mask = torch.tensor(u[2], dtype=torch.float32)[: t["loss_mask"].shape[1] - start]
                t["loss_mask"][b, start: start + len(mask)] *= mask.to(device)
        logprobs, _ = token_logprobs(model, t["input_ids"], t["attention_mask"])  # (b, T-1)
    # weight each micro-batch by its share of completion tokens: token-mean over the full batch
    loss = sft_loss(logprobs, t["loss_mask"]) * (weight * t["loss_mask"].sum().item() / max(1, num_target))
    loss.backward()
    return loss.item()


def encode_examples(tokenizer, pairs: list[tuple[str, str]], *, use_chat_template: bool = True,
                    system_prompt: str = "", eos: list[bool] | None = None) -> list[Example]:
    """Tokenise pairs as the sampler encodes prompts; EOS ends a completion unless `eos[i]` is False
    (partial solutions must not teach the model to stop after the prefix)."""
    if eos is not None and len(eos) != len(pairs):
        raise ValueError(f"eos has {len(eos)} flags for {len(pairs)} pairs")
    encoded = encode_pairs(tokenizer, pairs, use_chat_template, system_prompt, add_eos=False)
    flags = eos if eos is not None else [True] * len(pairs)
    return [(c, x + [tokenizer.eos_token_id] if flag else x) for (c, x), flag in zip(encoded, flags)]


def training_units(examples: list[Example], cfg: TrainConfig) -> list[list[Example]]:
    """What one batch slot holds: one example, or one packed row of several."""
    if not cfg.packing:
        return [[e] for e in examples]
    rows = pack_examples([example_length(e) for e in examples], cfg.max_length)
    return [[examples[i] for i in row] for row in rows]


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
    eos: list[bool] | None = None,
    ranks: Ranks | None = None,
    examples: list[Example] | None = None,
) -> dict:
    """Train `model` in place on (prompt, completion) text pairs; returns summary metrics.

    `on_step(step, metrics)` runs after every optimizer step (logging, checkpointing).
    Pass `start_step` with a restored optimizer/scheduler to resume exactly. `eos[i]=False`
    trains pair i without an end-of-sequence token (a partial solution). With `ranks` (torchrun)
    each rank trains its share of every global batch (`algorithms.ranks`). `examples` (already
    tokenised, optionally masked: multi-turn trajectories and demonstrations) replace `pairs`.
    """
    if examples is None:
        if not pairs:
            raise ValueError("fit() got no training pairs")
        examples = encode_examples(tokenizer, pairs, use_chat_template=use_chat_template,
                                   system_prompt=system_prompt, eos=eos)
    elif not examples:
        raise ValueError("fit() got no training examples")
    units = training_units(examples, cfg)
    total = cfg.total_steps(len(units))
    order = data_order(len(units), total, cfg.batch_size, cfg.seed)
    optimizer = optimizer or make_optimizer(model.parameters(), cfg.optim)
    scheduler = scheduler or make_scheduler(optimizer, cfg.optim, total)
    device = next(model.parameters()).device
    model.train()
    if ranks is not None:  # the packed forward reads parameters outside the module call; FSDP's are sharded
        if cfg.forward == "packed":
            raise ConfigError("train.forward='packed' is not available under torchrun (FSDP-sharded parameters)")
        packed_forward = False
    else:
        packed_forward = training_path(model, cfg.forward, what="train.forward", length=cfg.max_length) == "packed"
    losses, tokens, start = [], 0, time.perf_counter()
    with progress() as bar:
        task = bar.add_task(description, total=total, completed=start_step, info="")
        for step in range(start_step, total):
            batch = [units[i] for i in order[step * cfg.batch_size : (step + 1) * cfg.batch_size]]
            batch.sort(key=lambda u: sum(example_length(e) for e in u))  # similar lengths per micro-batch
            num_target = sum(sum(completion_mask(e)) for u in batch for e in u)
            optimizer.zero_grad(set_to_none=True)
            step_loss = 0.0
            # ranks: each trains its share, losses still weighted by the global token count (their sum is the mean)
            for micro, weight in rank_micro_batches(batch, lambda units: cut_micro_batches(units, cfg), ranks):
                with autocast(model):
                    step_loss += micro_batch_loss(model, micro, cfg, tokenizer.pad_token_id, device, packed_forward,
                                                  num_target, weight)
            if ranks is not None:
                step_loss = ranks.sum(step_loss)
                grad_norm = ranks.clip_grad_norm(model.parameters(), cfg.optim.grad_clip) if cfg.optim.grad_clip > 0 else 0.0
            else:
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


# --- the `sft` command ------------------------------------------------------------------------


@dataclass
class SFTConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: str = ""
    """JSONL of reasonloop Sample records, of plain rows with `prompt_field` / `completion_field`, or of
    multi-turn demonstrations (rows with `messages`, `envs.demonstrations`: assistant turns trained, the
    rest masked, rendered as the multi-turn sampler renders them)"""
    prompt_field: str = "prompt"
    """field of a plain row holding the prompt (Sample records always use `prompt`)"""
    completion_field: str = "completion"
    """field of a plain row holding the rationale (Sample records always use `text`)"""
    only_correct: bool = True
    """Sample records: train only on those whose "correct" reward is 1.0"""
    from_task: bool = False
    """train on `task`'s reference solutions (GSM8K's worked answers, MATH's solutions, MBPP's code) instead
    of a `data` file"""
    task: TaskSpec = field(default_factory=TaskSpec)
    num_problems: int = 0
    """with `from_task`: how many problems (a seeded sample); 0: every row of a dataset task"""
    train: TrainConfig = field(default_factory=TrainConfig)
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    run_name: str = "sft"
    log: LogConfig = field(default_factory=LogConfig)
    """trackers (jsonl always; tensorboard, wandb, mlflow) and whether rollouts are kept"""
    output_dir: str = "runs"
    save_every: int = 0
    """checkpoint every N optimizer steps (0: only at the end)"""
    keep_last: int = 2
    """checkpoints kept (the newest, always including the latest); 0 keeps all"""
    resume: bool = False

    def __post_init__(self):
        if not self.prompt_field or not self.completion_field:
            raise ValueError("prompt_field and completion_field must be non-empty")
        if self.save_every < 0 or self.keep_last < 0:
            raise ValueError("save_every and keep_last must be >= 0")
        if self.from_task and self.data:
            raise ValueError("give data=<file> or from_task=true, not both")
        if self.from_task and self.num_problems <= 0 and not self.task.is_dataset:
            raise ValueError(f"from_task on the procedural task {self.task.name!r} needs num_problems > 0")
        if self.num_problems < 0:
            raise ValueError(f"num_problems must be >= 0, got {self.num_problems}")


def training_pairs(cfg: SFTConfig) -> list[tuple[str, str]] | None:
    """The (prompt, completion) pairs a run trains on: a task's reference solutions or a data file's rows;
    None for a demonstration file (its conversations are rendered with the tokenizer: `plan_training`)."""
    from reasonloop.envs.demonstrations import is_demonstration_file, load_demonstrations

    if cfg.from_task:
        return task_pairs(cfg.task, cfg.num_problems, cfg.train.seed)
    if is_demonstration_file(cfg.data):
        load_demonstrations(cfg.data)  # bad rows fail before the model loads
        return None
    return load_pairs(cfg.data, cfg.only_correct, cfg.prompt_field, cfg.completion_field)


def plan_training(cfg: SFTConfig, model, tokenizer, pairs: list[tuple[str, str]] | None):
    """(encoded examples, total optimizer steps, optimizer, scheduler) of a run over `pairs`, or over
    the demonstrations of `cfg.data` when `pairs` is None."""
    if pairs is None:
        from reasonloop.algorithms.trajectory_sft import demonstration_examples
        from reasonloop.envs.demonstrations import load_demonstrations

        examples = demonstration_examples(model, tokenizer, load_demonstrations(cfg.data),
                                          cfg.model.use_chat_template, cfg.model.system_prompt)
    else:
        examples = encode_examples(tokenizer, pairs, use_chat_template=cfg.model.use_chat_template,
                                   system_prompt=cfg.model.system_prompt)
    total = cfg.train.total_steps(len(training_units(examples, cfg.train)))
    optimizer = make_optimizer(model.parameters(), cfg.train.optim)
    return examples, total, optimizer, make_scheduler(optimizer, cfg.train.optim, total)


def task_pairs(spec: TaskSpec, num_problems: int, seed: int) -> list[tuple[str, str]]:
    """(prompt, reference solution) of a task's training problems; one error if none has a solution."""
    task = spec.build(split="train", size=num_problems or None, seed=seed)
    pairs = [(p.prompt, p.reference_solution) for p in task if p.reference_solution]
    if not pairs:
        raise ConfigError(f"task {spec.label!r} has no reference solutions to train on (train split)")
    if len(pairs) < len(task):
        console.print(f"sft: {len(task) - len(pairs)} of {len(task)} problems have no reference solution; skipped")
    return pairs


def load_pairs(path: str | Path, only_correct: bool = True, prompt_field: str = "prompt",
               completion_field: str = "completion") -> list[tuple[str, str]]:
    """(prompt, completion) pairs from a JSONL file; errors name the file, line and field."""
    pairs, read = [], 0
    for line, row in iter_jsonl(path):
        read += 1
        where = f"{path}:{line}"
        if row.get("kind") == "sample":
            s = from_row(row, Sample, where=where)
            if s.correct or not only_correct:
                pairs.append((s.prompt, s.text))
            continue
        for key in (prompt_field, completion_field):
            if key not in row:
                raise RecordError(f"{where}: missing field {key!r} (fields: {sorted(row)}; "
                                  "set prompt_field= / completion_field= to map yours)")
            if not isinstance(row[key], str):
                raise RecordError(f"{where}: field {key!r} must be a string, got {type(row[key]).__name__}")
        pairs.append((row[prompt_field], row[completion_field]))
    if not pairs:
        raise UserError(f"{path}: no usable training pairs ({read} rows read, only_correct={only_correct})")
    return pairs


def main(cfg: SFTConfig, ranks: Ranks | None = None) -> dict:
    if not cfg.data and not cfg.from_task:
        raise ConfigError("sft needs data=<file.jsonl> (or from_task=true with task.name=...)")
    if ranks is not None:
        return main_ranks(cfg, ranks)
    seed_everything(cfg.train.seed)
    pairs = training_pairs(cfg)  # bad data fails before anything is written
    run = RunDir.create(Path(cfg.output_dir) / cfg.run_name, dump_config(cfg), resume=cfg.resume, log=cfg.log)
    latest = run.latest_checkpoint() if cfg.resume else None
    model, tokenizer = load_trainable(cfg.model, cfg.lora, latest)
    examples, total, optimizer, scheduler = plan_training(cfg, model, tokenizer, pairs)
    start_step = 0
    if latest is not None:
        start_step = load_trainer_state(latest, optimizer, scheduler)["step"]
        run.truncate_metrics(lambda r: r.get("step", 0) <= start_step)
        console.print(f"resuming {run.root} from step {start_step}")

    def on_step(step: int, metrics: dict) -> None:
        run.log(metrics)
        if step == total or (cfg.save_every and step % cfg.save_every == 0):
            ckpt = save_checkpoint(run.checkpoint_path(step), model, tokenizer, optimizer, scheduler,
                                   extra={"step": step})
            run.mark_latest(ckpt, cfg.keep_last)

    summary = fit(model, tokenizer, pairs or [], cfg.train, on_step=on_step, start_step=start_step,
                  optimizer=optimizer, scheduler=scheduler, examples=examples)
    model = merged(model)  # LoRA merged: the final model is a plain HF directory any tool can load
    save_model(run.root / "final", model, tokenizer)
    summary.update(examples=len(examples), rows=len(training_units(examples, cfg.train)))
    run.write_json("summary.json", summary)
    loss = summary["loss_last"]
    console.print(f"sft: {summary['steps']} steps, final loss {loss if loss is None else round(loss, 4)}; "
                  f"model in {run.root / 'final'}")
    return summary


def main_ranks(cfg: SFTConfig, ranks: Ranks) -> dict:
    """`main` as one of several torchrun ranks: sharded model, distributed checkpoints (`algorithms.ranks`)."""
    seed_everything(cfg.train.seed)
    pairs = training_pairs(cfg)  # bad data fails before anything is written
    run = ranks.open_run(Path(cfg.output_dir) / cfg.run_name, dump_config(cfg), resume=cfg.resume, log=cfg.log)
    latest = run.latest_checkpoint() if cfg.resume else None
    model, tokenizer = load_trainable(cfg.model, cfg.lora, None)
    model = ranks.wrap(model)
    examples, total, optimizer, scheduler = plan_training(cfg, model, tokenizer, pairs)
    start_step = 0
    if latest is not None:
        start_step = ranks.load(latest, model, optimizer, scheduler)["step"]
        if ranks.is_main:
            run.truncate_metrics(lambda r: r.get("step", 0) <= start_step)
            console.print(f"resuming {run.root} from step {start_step} on {ranks.world} ranks")

    def on_step(step: int, metrics: dict) -> None:
        if ranks.is_main:
            run.log(metrics)
        if step == total or (cfg.save_every and step % cfg.save_every == 0):
            ckpt = ranks.save(run.checkpoint_path(step), model, tokenizer, optimizer, scheduler, {"step": step})
            if ranks.is_main:
                run.mark_latest(ckpt, cfg.keep_last)

    summary = fit(model, tokenizer, pairs or [], cfg.train, on_step=on_step, start_step=start_step,
                  optimizer=optimizer, scheduler=scheduler, ranks=ranks, examples=examples)
    ranks.save_final(run.root / "final", model, tokenizer, cfg.model, cfg.lora)  # LoRA: merged
    summary.update(examples=len(examples), rows=len(training_units(examples, cfg.train)), world_size=ranks.world)
    if ranks.is_main:
        run.write_json("summary.json", summary)
        console.print(f"sft: {summary['steps']} steps on {ranks.world} ranks; model in {run.root / 'final'}")
    return summary
