"""DPO on verified preference pairs, optionally with an SFT term (RPO) and iterated.

A pair is (prompt, chosen = a verified-correct rationale, rejected = an incorrect one) for the
same problem, built from samples: either a samples JSONL (`data=`) or, by default, fresh
samples of the current model on the task (on-policy pairs, as in iterative RPO).

Papers:
- DPO (Rafailov et al. 2023, arXiv:2305.18290): L = -log sigmoid(beta * [(log pi(y_w) - log
  ref(y_w)) - (log pi(y_l) - log ref(y_l))]), sequence log-probabilities summed over tokens,
  ref = the frozen starting policy. Paper: beta = 0.1.
- Iterative RPO (Pang et al. 2024, arXiv:2404.19733): add alpha * NLL(y_w) / |y_w| (length
  normalised) to the DPO loss and iterate: sample k, pair correct/incorrect, train from
  the latest model with the latest model as reference. Paper: alpha = 1, beta = 0.1,
  k = 30 samples, up to 4 iterations. Ours: `sft_weight` = alpha (0 = plain DPO),
  `iterations`, `samples_per_prompt`.

Deviations: fresh problems each iteration (procedural tasks; a dataset task is walked by epochs
with a seeded shuffle, `TaskSpec.round_problems`); pairs are drawn at random
among distinct correct x distinct incorrect rationales (`pairs_per_problem`); reference
log-probabilities are computed once per iteration before training (the reference is frozen,
so this is exact and halves the forward passes).

The reference is the policy itself at the start of the iteration: its log-probabilities are
taken before the first update, so no second model (and no copy of the weights) is ever held.
With LoRA (`lora.r > 0`) the same holds: the adapters at the iteration's start are the
reference (in the first iteration, with B = 0, that is exactly the adapter-disabled base).

Resume: like `selftrain`, an iteration's samples are saved before training and its phase is
recorded; a killed run resumes in the same iteration without resampling.

Under `torchrun --nproc-per-node N` (`ranks`, `algorithms.ranks`) dpo trains a fixed set of pairs
(`data=`, eval_problems=0: the training-only form; sampling between updates stays one process):
FSDP2-sharded model, each rank runs its share of every global batch's pairs (and of the reference
pass), weighted by the global pair count, so the update is the one-process update. `final/` is
gathered on the main rank; there are no mid-iteration checkpoints (as in one process, a killed
iteration is redone).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from reasonloop.algorithms.common import OptimConfig, make_optimizer, make_scheduler
from reasonloop.algorithms.ranks import Ranks, rank_micro_batches
from reasonloop.algorithms.sft import TrainConfig, data_order, encode_examples, micro_batches
from reasonloop.config import ConfigError, dump_config
from reasonloop.evaluate.accuracy import held_out_accuracy
from reasonloop.models.logprobs import collate, token_logprobs
from reasonloop.models.lora import LoRAConfig, load_trainable, merged
from reasonloop.models.policy import ModelConfig
from reasonloop.models.precision import autocast
from reasonloop.rollout.factory import SamplerConfig, make_sampler, sync_weights
from reasonloop.rollout.groups import sample_and_verify
from reasonloop.rollout.sampler import SamplingParams
from reasonloop.store.checkpoint import save_model
from reasonloop.store.jsonl import read_jsonl, write_jsonl
from reasonloop.store.runs import RunDir
from reasonloop.store.trackers import LogConfig
from reasonloop.tasks.spec import TaskSpec
from reasonloop.types import Sample
from reasonloop.utils import console, progress, seed_everything


@dataclass
class DPOConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    """how the policy samples its pairs and is evaluated: torch, or vllm (its weights copied after each iteration)"""
    task: TaskSpec = field(default_factory=TaskSpec)
    data: str = ""
    """samples JSONL to pair (one round, no sampling); empty: sample the model on the task"""
    iterations: int = 1
    problems_per_iteration: int = 256
    samples_per_prompt: int = 4
    sampling: SamplingParams = field(default_factory=lambda: SamplingParams(temperature=1.0, max_new_tokens=1024))
    pairs_per_problem: int = 2
    beta: float = 0.1
    sft_weight: float = 0.0
    """alpha of RPO: weight of the length-normalised NLL of the chosen rationale (0: plain DPO)"""
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=2, batch_size=16, micro_batch_size=2,
                                                                   optim=OptimConfig(lr=5e-7)))
    """micro_batch_size counts pairs (each runs chosen and rejected); lr 5e-7: DPO on a 0.5-7B model"""
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    keep_last: int = 2
    """iteration checkpoints kept (the newest, always including the latest); 0 keeps all"""
    eval_problems: int = 200
    eval_max_new_tokens: int = 1024
    run_name: str = "dpo"
    log: LogConfig = field(default_factory=LogConfig)
    """trackers (jsonl always; tensorboard, wandb, mlflow) and whether rollouts are kept"""
    output_dir: str = "runs"
    seed: int = 0
    resume: bool = False

    def __post_init__(self):
        if self.beta <= 0 or self.sft_weight < 0:
            raise ValueError(f"need beta > 0 and sft_weight >= 0 (got beta={self.beta}, sft_weight={self.sft_weight})")
        if self.iterations < 1 or self.problems_per_iteration < 1 or self.samples_per_prompt < 2:
            raise ValueError("need iterations >= 1, problems_per_iteration >= 1 and samples_per_prompt >= 2")
        if self.pairs_per_problem < 1 or self.keep_last < 0:
            raise ValueError("pairs_per_problem must be >= 1 and keep_last >= 0")
        if self.data and self.iterations != 1:
            raise ValueError("data= gives one fixed set of pairs: use iterations=1")
        if self.train.packing:
            raise ValueError("dpo does not pack sequences (pairs are compared row by row); set train.packing=false")


# --- the maths: pure functions ----------------------------------------------------------


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, *, beta: float, sft_weight: float = 0.0,
             chosen_nll: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """DPO (+ RPO's NLL term) on sequence log-probabilities, all (B,).

    `chosen_nll` (B,) is the per-token NLL of the chosen rationale under the policy; it is
    required when `sft_weight > 0`.
    """
    chosen_reward = beta * (policy_chosen - ref_chosen)  # (B,) implicit rewards
    rejected_reward = beta * (policy_rejected - ref_rejected)  # (B,)
    margin = chosen_reward - rejected_reward  # (B,)
    loss = -F.logsigmoid(margin).mean()
    metrics = {"dpo_loss": loss.item(), "reward_accuracy": (margin > 0).float().mean().item(),
               "reward_margin": margin.mean().item(), "chosen_reward": chosen_reward.mean().item(),
               "rejected_reward": rejected_reward.mean().item()}
    if sft_weight > 0:
        if chosen_nll is None:
            raise ValueError("sft_weight > 0 needs chosen_nll")
        loss = loss + sft_weight * chosen_nll.mean()
        metrics["chosen_nll"] = chosen_nll.mean().item()
    return loss, metrics


def make_pairs(samples: list[Sample], pairs_per_problem: int, seed: int) -> list[tuple[str, str, str]]:
    """(prompt, chosen, rejected): distinct correct x distinct incorrect rationales of the same
    problem, `pairs_per_problem` drawn at random (without replacement) per problem."""
    by_problem: dict[str, tuple[str, dict[str, None], dict[str, None]]] = {}
    for s in samples:  # dicts keep first-seen order, so the pairing is reproducible
        prompt, good, bad = by_problem.setdefault(s.problem_id, (s.prompt, {}, {}))
        (good if s.correct else bad).setdefault(s.text.strip(), None)
    rng, pairs = random.Random(seed), []
    for (prompt, good, bad) in by_problem.values():
        combos = [(g, b) for g in good for b in bad]
        for g, b in rng.sample(combos, min(pairs_per_problem, len(combos))):
            pairs.append((prompt, g, b))
    return pairs


def sequence_logprobs(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of completion-token log-probs (B,), number of completion tokens (B,))."""
    logprobs, _ = token_logprobs(model, batch["input_ids"], batch["attention_mask"])  # (B, T-1)
    return (logprobs * batch["loss_mask"]).sum(-1), batch["loss_mask"].sum(-1)


# --- training on a fixed set of pairs ----------------------------------------------------


def train_pairs(model, tokenizer, pairs: list[tuple[str, str, str]], cfg: DPOConfig,
                description: str = "dpo", ranks: Ranks | None = None) -> dict:
    """Optimise the DPO(/RPO) loss on `pairs` in place, against `model` as it is now; returns summary metrics.

    With `ranks` every rank gets all `pairs` and trains its share of each global batch (module docstring)."""
    mc = cfg.model
    chosen = encode_examples(tokenizer, [(p, c) for p, c, _ in pairs], use_chat_template=mc.use_chat_template,
                             system_prompt=mc.system_prompt)
    rejected = encode_examples(tokenizer, [(p, r) for p, _, r in pairs], use_chat_template=mc.use_chat_template,
                               system_prompt=mc.system_prompt)
    device = next(model.parameters()).device
    pad, max_len = tokenizer.pad_token_id, cfg.train.max_length

    def batch_of(idx: list[int]) -> dict[str, torch.Tensor]:  # chosen rows first, then rejected rows
        return {k: v.to(device) for k, v in collate([chosen[i] for i in idx] + [rejected[i] for i in idx], pad,
                                                     max_len).items()}

    def micro(idx: list[int]) -> list[list[int]]:
        """Pairs per forward: `micro_batch_size` pairs, and (`micro_batch_tokens`) 2 rows x the longest of them."""
        width = [min(max_len, max(sum(map(len, chosen[i])), sum(map(len, rejected[i])))) for i in idx]
        return [[idx[j] for j in group]
                for group in micro_batches(width, cfg.train.micro_batch_size, -(-cfg.train.micro_batch_tokens // 2))]

    # the reference is the model before this call's first update: its log-probabilities, once
    ref_logps = torch.zeros(len(pairs), 2)
    model.eval()
    with torch.no_grad(), autocast(model):
        for idx, weight in rank_micro_batches(list(range(len(pairs))), micro, ranks):
            logp, _ = sequence_logprobs(model, batch_of(idx))  # (2b,)
            if weight:
                ref_logps[idx] = torch.stack([logp[: len(idx)], logp[len(idx):]], -1).float().cpu()
    if ranks is not None:  # each rank filled its share of the pairs
        ref_logps = ranks.sum_tensor(ref_logps)
    total = cfg.train.total_steps(len(pairs))
    order = data_order(len(pairs), total, cfg.train.batch_size, cfg.train.seed)
    optimizer = make_optimizer(model.parameters(), cfg.train.optim)
    scheduler = make_scheduler(optimizer, cfg.train.optim, total)
    model.train()
    history, start = [], time.perf_counter()
    with progress() as bar:
        task = bar.add_task(description, total=total, info="")
        for step in range(total):
            step_idx = order[step * cfg.train.batch_size : (step + 1) * cfg.train.batch_size]
            optimizer.zero_grad(set_to_none=True)
            step_metrics: dict[str, float] = {}
            for idx, weight in rank_micro_batches(step_idx, micro, ranks):
                share = weight * len(idx) / len(step_idx)  # mean over the pairs of the whole (global) step
                b = len(idx)
                with autocast(model):
                    logp, ntok = sequence_logprobs(model, batch_of(idx))  # (2b,), (2b,)
                    ref = ref_logps[idx].to(device)  # (b, 2)
                    loss, metrics = dpo_loss(logp[:b], logp[b:], ref[:, 0], ref[:, 1], beta=cfg.beta,
                                             sft_weight=cfg.sft_weight, chosen_nll=-logp[:b] / ntok[:b].clamp(min=1))
                    (loss * share).backward()
                for k, v in metrics.items():
                    step_metrics[k] = step_metrics.get(k, 0.0) + v * share
            if ranks is not None:  # the ranks' shares sum to the step's means; their gradients are summed by FSDP
                step_metrics = {k: ranks.sum(v) for k, v in step_metrics.items()}
                if cfg.train.optim.grad_clip > 0:
                    ranks.clip_grad_norm(model.parameters(), cfg.train.optim.grad_clip)
            elif cfg.train.optim.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.optim.grad_clip)
            optimizer.step()
            scheduler.step()
            history.append(step_metrics)
            bar.update(task, advance=1, info=f"loss {step_metrics['dpo_loss']:.3f}")
    model.eval()
    last = history[-min(10, len(history)):]
    return {"steps": total, "train_seconds": time.perf_counter() - start,
            **{f"train/{k}": sum(h[k] for h in last) / len(last) for k in last[0]}}


# --- the loop ------------------------------------------------------------------------------


def main(cfg: DPOConfig, ranks: Ranks | None = None) -> dict:
    if ranks is not None:
        return main_ranks(cfg, ranks)
    run = RunDir.create(Path(cfg.output_dir) / cfg.run_name, dump_config(cfg), resume=cfg.resume, log=cfg.log)
    state = (run.load_state() if cfg.resume else None) or {"iteration": 0, "phase": "start"}
    seed_everything(cfg.seed)
    start_path = run.latest_checkpoint() if state["iteration"] > 0 else None
    model, tokenizer = load_trainable(cfg.model, cfg.lora, start_path)
    sampler = make_sampler(cfg.sampler, cfg.model, policy=model, tokenizer=tokenizer)
    eval_task = cfg.task.build(split="test", size=cfg.eval_problems, seed=cfg.seed) if cfg.eval_problems else None

    def evaluate() -> dict:
        return held_out_accuracy(sampler, eval_task, cfg.eval_max_new_tokens)

    history = [r for r in run.read_metrics() if r.get("iteration", 10**9) <= state["iteration"]]
    if state["iteration"] == 0 and state["phase"] == "start":
        history = [{"iteration": 0, **evaluate()}]
        run.log(history[0])

    for it in range(state["iteration"] + 1, cfg.iterations + 1):
        t_iter, seed = time.perf_counter(), cfg.seed * 1000 + it
        samples_path = run.samples_dir / f"iter_{it:03d}.jsonl"
        # --- samples (read, resumed, or drawn from the current policy) ---
        if cfg.data:
            samples = read_jsonl(cfg.data, Sample)
        elif state == {"iteration": it - 1, "phase": "sampled"} and samples_path.exists():
            samples = read_jsonl(samples_path, Sample)
        else:
            # fresh procedural problems each iteration, or the next slice of a dataset (by epochs, shuffled)
            task, problems = cfg.task.round_problems("train", it - 1, cfg.problems_per_iteration, seed=cfg.seed,
                                                     round_seed=seed)
            params = SamplingParams(**{**vars(cfg.sampling), "seed": seed})
            samples = sample_and_verify(sampler, task, problems, cfg.samples_per_prompt, params)
            write_jsonl(samples_path, samples)
            state = {"iteration": it - 1, "phase": "sampled"}
            run.save_state(state)
        pairs = make_pairs(samples, cfg.pairs_per_problem, seed)
        # --- learn: the reference is the model at the start of this iteration ---
        summary = {}
        if pairs:
            summary = train_pairs(model, tokenizer, pairs, cfg, description=f"dpo iter {it}")
            sync_weights(sampler, model)
        else:
            console.print(f"[yellow]iteration {it}: no (correct, incorrect) pair; nothing to learn from[/yellow]")
        metrics = {"iteration": it, "samples": len(samples),
                   "sample_accuracy": sum(s.correct for s in samples) / max(1, len(samples)),
                   "pairs": len(pairs), "tokens_generated": sum(s.num_tokens for s in samples) if not cfg.data else 0,
                   **summary, **evaluate()}
        metrics["time/iteration"] = time.perf_counter() - t_iter
        ckpt = save_model(run.checkpoint_path(it), model, tokenizer)
        run.mark_latest(ckpt, cfg.keep_last)
        run.log(metrics)
        state = {"iteration": it, "phase": "done"}
        run.save_state(state)
        history.append(metrics)
        console.print(f"dpo iter {it}: {len(pairs)} pairs, reward acc {summary.get('train/reward_accuracy', float('nan')):.3f}, "
                      f"eval acc {metrics.get('eval/greedy_accuracy', float('nan')):.3f}")
    save_model(run.root / "final", merged(model), tokenizer)  # LoRA: merged into a plain HF model
    result = {"iterations": history, "final_model": str(run.root / "final")}
    run.write_json("summary.json", result)
    return result


def main_ranks(cfg: DPOConfig, ranks: Ranks) -> dict:
    """`main` as one of several torchrun ranks on a fixed pairs file (module docstring)."""
    if not cfg.data or cfg.eval_problems or cfg.lora.r > 0:
        raise ConfigError("dpo under torchrun trains a fixed set of pairs: it needs data=<samples.jsonl>, "
                          "eval_problems=0 (evaluate final/ with `reasonloop eval`) and lora.r=0; sampling pairs "
                          "between updates runs in one process")
    if cfg.train.batch_size < ranks.world:
        raise ConfigError(f"train.batch_size={cfg.train.batch_size} is smaller than the {ranks.world} ranks")
    run = ranks.open_run(Path(cfg.output_dir) / cfg.run_name, dump_config(cfg), resume=cfg.resume, log=cfg.log)
    seed_everything(cfg.seed)
    model, tokenizer = load_trainable(cfg.model, cfg.lora, None)
    model = ranks.wrap(model)
    samples = read_jsonl(cfg.data, Sample)
    pairs = make_pairs(samples, cfg.pairs_per_problem, cfg.seed * 1000 + 1)  # iteration 1's seed, as in one process
    if not pairs:
        raise ConfigError(f"{cfg.data}: no (correct, incorrect) pair of the same problem; nothing to learn from")
    t_iter = time.perf_counter()
    summary = train_pairs(model, tokenizer, pairs, cfg, description="dpo", ranks=ranks)
    ranks.save_final(run.root / "final", model, tokenizer, cfg.model)
    metrics = {"iteration": 1, "samples": len(samples),
               "sample_accuracy": sum(s.correct for s in samples) / max(1, len(samples)),
               "pairs": len(pairs), "tokens_generated": 0, **summary, "world_size": ranks.world,
               "time/iteration": time.perf_counter() - t_iter}
    result = {"iterations": [{"iteration": 0}, metrics], "final_model": str(run.root / "final")}
    if ranks.is_main:
        run.log({"iteration": 0})
        run.log(metrics)
        run.save_state({"iteration": 1, "phase": "done"})
        run.write_json("summary.json", result)
        console.print(f"dpo: {len(pairs)} pairs, {summary['steps']} steps on {ranks.world} ranks, reward acc "
                      f"{summary['train/reward_accuracy']:.3f}; model in {run.root / 'final'}")
    return result
