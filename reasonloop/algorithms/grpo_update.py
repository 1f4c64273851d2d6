"""GRPO's update: typed rows from the sampled groups, their tensors, log-probs, and the clipped
policy-gradient steps (the maths is in `rl_maths.py` and `offpolicy.py`; the loop and the papers are in
`grpo.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from reasonloop.algorithms.grpo_batches import (
    Rollouts,
)
from reasonloop.algorithms.offpolicy import correction_metrics, correction_weights
from reasonloop.algorithms.rl_maths import (
    CLIPS,
    KL_ESTIMATORS,
    aggregate_loss,
)
from reasonloop.algorithms.sft import micro_batches
from reasonloop.models.logprobs import completion_logprobs, pad_completions

# ---------------------------------------------------------------------------------------
# The batch the update trains on: one typed row per sample, then tensors


@dataclass
class TrainRow:
    """One sample as the update sees it: token ids, the sampler's logprobs (pi_old), reward, advantage."""

    arm: int
    context: list[int]
    """prompt tokens the completion is trained under"""
    sample_context: list[int]
    """prompt tokens it was sampled under (Guide's hinted prompt; else `context`)"""
    completion: list[int]
    old_logprobs: list[float]
    reward: float
    masked: bool = False
    """no loss at all (DAPO's overlong filtering)"""
    advantage: float = 0.0
    token_advantages: list[float] | None = None
    """per-token advantages (process supervision, `process_mode="step"`); None: `advantage` on every token"""
    token_mask: list[int] | None = None
    """1 on completion tokens the policy drew, 0 on tokens an environment inserted (no loss); None: all 1"""
    turns: list[tuple[int, int]] | None = None
    """(start, end) of each assistant turn in `completion`, and their rewards (multi-turn rows only)"""
    turn_rewards: list[float] | None = None
    correction: list[float] | None = None
    """per-token off-policy weights (`offpolicy.py`, old_logprobs=recompute); None: 1"""


@dataclass
class TrainTensors:
    """A micro-batch of rows as (B, Tc) tensors aligned to completion tokens."""

    old_logprobs: torch.Tensor
    loss_mask: torch.Tensor
    """1 on real completion tokens"""
    train_mask: torch.Tensor
    """`loss_mask` with masked rows zeroed"""
    advantages: torch.Tensor
    """(B, 1) sequence advantages, or (B, Tc) when any row has per-token ones"""
    correction: torch.Tensor | None = None
    """(B, Tc) off-policy weights on the loss, or None"""


def make_batch(rows: list[TrainRow], device) -> TrainTensors:
    """The rows' sampler logprobs, masks and advantages as tensors; a row without per-token advantages
    gets its sequence advantage on every token when others have them."""
    old_logprobs, loss_mask = pad_completions([r.old_logprobs for r in rows])  # (B, Tc)
    if any(r.token_advantages is not None for r in rows):
        advantages, _ = pad_completions([r.token_advantages if r.token_advantages is not None
                                         else [r.advantage] * len(r.completion) for r in rows])  # (B, Tc)
    else:
        advantages = torch.tensor([r.advantage for r in rows])[:, None]  # (B, 1)
    if any(r.token_mask is not None for r in rows):  # environment tokens: in the context, never trained
        drawn, _ = pad_completions([[float(m) for m in r.token_mask] if r.token_mask is not None
                                    else [1.0] * len(r.completion) for r in rows])  # (B, Tc)
        loss_mask = loss_mask * drawn
    train_mask = loss_mask * torch.tensor([0.0 if r.masked else 1.0 for r in rows])[:, None]  # (B, Tc)
    correction = None
    if any(r.correction is not None for r in rows):
        correction = pad_completions([r.correction or [1.0] * len(r.completion) for r in rows])[0].to(device)
    return TrainTensors(old_logprobs.to(device), loss_mask.to(device), train_mask.to(device), advantages.to(device),
                        correction)


def rows_from_rollouts(rollouts: Rollouts, encode, overlong_filter: bool) -> list[TrainRow]:
    """One `TrainRow` per sample of the kept groups, groups contiguous (the advantage maths relies on it)."""
    rows = []
    for arm, g in zip(rollouts.arms, rollouts.groups):
        context = None if all("loss_mask" in s.meta for s in g.samples) else encode(g.problem.prompt)
        for s in g.samples:
            hint = s.meta.get("hint_prompt")
            if "loss_mask" in s.meta and not s.token_ids:  # a seat whose game ended before it moved (self-play):
                own = list(s.meta["prompt_ids"])  # nothing drawn, so no loss: one masked context token stands in
                rows.append(TrainRow(arm=arm, context=own[:-1], sample_context=own[:-1], completion=own[-1:],
                                     old_logprobs=[0.0], reward=s.rewards["total"], masked=True, token_mask=[0],
                                     turns=[], turn_rewards=[]))
                continue
            if "loss_mask" in s.meta:  # a multi-turn trajectory: its own prompt ids, never re-tokenized
                own = list(s.meta["prompt_ids"])
                rows.append(TrainRow(arm=arm, context=own, sample_context=own, completion=list(s.token_ids),
                                     old_logprobs=list(s.logprobs), reward=s.rewards["total"],
                                     masked=overlong_filter and s.finish_reason == "length",
                                     token_mask=list(s.meta["loss_mask"]),
                                     turns=[tuple(t) for t in s.meta["turns"]],
                                     turn_rewards=list(s.meta["turn_rewards"])))
                continue
            rows.append(TrainRow(arm=arm, context=context,
                                 sample_context=encode(hint) if hint else context,
                                 completion=list(s.token_ids), old_logprobs=list(s.logprobs),
                                 reward=s.rewards["total"], masked=overlong_filter and s.finish_reason == "length"))
    return rows


# ---------------------------------------------------------------------------------------
# Model loading (policy, optional LoRA, optional frozen reference) and log-probs


def policy_logprobs(cfg, model, rows: list[TrainRow], pad_id: int, sampled_context: bool = False,
                    stats: dict | None = None, with_entropy: bool = False):
    """(logprobs (B, Tc), entropy (B, Tc), zeros unless `with_entropy`) of the rows' completion tokens."""
    contexts = [r.sample_context if sampled_context else r.context for r in rows]
    return completion_logprobs(model, contexts, [r.completion for r in rows], pad_id,
                               cfg.sampling.temperature, cfg.share_prefix, cfg.train_forward, stats, with_entropy)


def reference_logprobs(cfg, model, ref_model, rows: list[TrainRow], pad_id: int) -> torch.Tensor:
    """Log-probs (B, Tc) of the completion tokens under the frozen reference (base weights)."""
    with torch.no_grad():
        if ref_model is None:  # LoRA: the base model is the policy with its adapters switched off
            with model.disable_adapter():
                return policy_logprobs(cfg, model, rows, pad_id)[0]
        return policy_logprobs(cfg, ref_model, rows, pad_id)[0]


def recompute_old_logprobs(cfg, model, rows: list[TrainRow], pad_id, device, versions: list[int] | None = None,
                           trainer_version: int = 0) -> dict[str, float]:
    """pi_old by a no-grad teacher-forced pass over each row's *sampling* context (hint included); the
    sampler's log-probs (mu) become each row's off-policy `correction` (`offpolicy.py`). Returns its
    diagnostics: mismatch KL, clipped share, staleness of the samples' policy `versions`."""
    mu = [list(r.old_logprobs) for r in rows]
    with torch.no_grad():
        for m in range(0, len(rows), cfg.micro_batch_size):
            chunk = rows[m: m + cfg.micro_batch_size]
            logprobs, _ = policy_logprobs(cfg, model, chunk, pad_id, sampled_context=True)  # (b, Tc)
            for b, r in enumerate(chunk):
                r.old_logprobs = logprobs[b, : len(r.completion)].tolist()
    old, mask = pad_completions([r.old_logprobs for r in rows])  # (B, Tc)
    behaviour, _ = pad_completions(mu)
    weights, changed = correction_weights(old, behaviour, mask, cfg.offpolicy)
    for b, r in enumerate(rows):
        r.correction = weights[b, : len(r.completion)].tolist()
    return correction_metrics(old, behaviour, mask, changed, versions or [trainer_version] * len(rows),
                              trainer_version)


def sequence_kl(cfg, model, ref_model, rows: list[TrainRow], pad_id, device) -> list[float]:
    """Summed per-token KL estimate of each row (sampling logprobs vs reference), for KL-in-reward."""
    out = []
    for m in range(0, len(rows), cfg.micro_batch_size):
        chunk = rows[m: m + cfg.micro_batch_size]
        batch = make_batch(chunk, device)
        ref = reference_logprobs(cfg, model, ref_model, chunk, pad_id)  # (b, Tc)
        kl = KL_ESTIMATORS[cfg.kl_estimator](batch.old_logprobs, ref) * batch.loss_mask
        out += kl.sum(1).tolist()
    return out


# ---------------------------------------------------------------------------------------
# The update


def update_policy(cfg, model, ref_model, optimizer, scheduler, rows: list[TrainRow], num_groups, pad_id, device,
                  rng) -> dict:
    """The clipped policy-gradient updates on one batch of scored rows; returns averaged metrics."""
    group = cfg.samples_per_prompt
    sums: dict[str, float] = {}
    tree_stats: dict[str, int] = {}  # packed forward: input tokens vs distinct prefixes actually run
    kl_in_loss = cfg.kl_coef > 0 and cfg.kl_in == "loss"
    model.train()
    for _ in range(cfg.num_iterations):
        order = list(range(num_groups))
        rng.shuffle(order)  # mini-batches are whole groups
        for mb in range(cfg.minibatches):
            chosen = order[mb::cfg.minibatches]
            mini = [rows[g * group + j] for g in chosen for j in range(group)]
            # a group's rows stay together (they share a prefix pass), shortest completions first (less padding)
            mini.sort(key=lambda r: (len(r.context), r.context, len(r.completion)))
            totals = {"total_tokens": float(sum(sum(r.token_mask) if r.token_mask is not None else len(r.completion)
                                                for r in mini if not r.masked) or 1),
                      "total_seqs": float(len(mini)), "constant": float(cfg.sampling.max_new_tokens)}
            # rows that add exactly zero to the loss (advantage 0 without a KL term, or fully masked)
            # are not run at all; they still count in the normalisers above, and zeroed (not None)
            # gradients keep AdamW's step identical to running them
            active = [r for r in mini if not r.masked
                      and (r.advantage != 0.0 or any(r.token_advantages or ())
                           or kl_in_loss or not cfg.skip_zero_advantage)]
            optimizer.zero_grad(set_to_none=False)
            sums["policy/rows_trained_frac"] = sums.get("policy/rows_trained_frac", 0.0) + len(active) / max(1, len(mini))
            active_tokens = max(1, sum(len(r.completion) for r in active))
            lengths = [len(r.context) + len(r.completion) for r in active]
            for idx in micro_batches(lengths, cfg.micro_batch_size, cfg.micro_batch_tokens):
                chunk = [active[i] for i in idx]
                for key, value in micro_batch_step(cfg, model, ref_model, chunk, totals, active_tokens, pad_id,
                                                   device, tree_stats).items():
                    sums[key] = sums.get(key, 0.0) + value
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip or float("inf"))
            sums["grad_norm"] = sums.get("grad_norm", 0.0) + grad_norm.item()
            optimizer.step()
            scheduler.step()
    n_updates = cfg.num_iterations * cfg.minibatches
    out = {k: v / n_updates for k, v in sums.items()}
    out["lr"] = scheduler.get_last_lr()[0]
    if tree_stats.get("tokens"):
        # 1.0: every token of every row ran; lower: the rows shared prefixes (prompt, first tokens) that ran once
        out["update/distinct_prefix_frac"] = tree_stats["nodes"] / tree_stats["tokens"]
    return out


def micro_batch_step(cfg, model, ref_model, chunk: list[TrainRow], totals: dict, active_tokens: int, pad_id,
                     device, tree_stats: dict) -> dict[str, float]:
    """Forward and backward of one micro-batch (gradients accumulate); its token-weighted metric shares."""
    batch = make_batch(chunk, device)
    mask = batch.train_mask  # (b, Tc)
    logp, entropy = policy_logprobs(cfg, model, chunk, pad_id, stats=tree_stats, with_entropy=True)  # (b, Tc) x2
    per_token, clipped = CLIPS[cfg.clip](logp, batch.old_logprobs, batch.advantages,
                                         cfg.clip_eps_low, cfg.clip_eps_high, cfg.dual_clip_c)
    kl = torch.zeros_like(logp)
    if cfg.kl_coef > 0:
        kl = KL_ESTIMATORS[cfg.kl_estimator](logp, reference_logprobs(cfg, model, ref_model, chunk, pad_id))
        if cfg.kl_in == "loss":
            per_token = per_token + cfg.kl_coef * kl
    if batch.correction is not None:  # mu -> pi_old (stale or mismatched sampler), `offpolicy.py`
        per_token = per_token * batch.correction
    loss = aggregate_loss(per_token, mask, cfg.loss_agg, **totals)
    loss.backward()
    share = mask.sum().item() / active_tokens  # metrics as token-weighted shares of the mini-batch
    with torch.no_grad():
        n_tok = mask.sum().clamp(min=1)
        return {"loss": loss.item(),
                "policy/entropy": share * ((entropy * mask).sum() / n_tok).item(),
                "policy/clip_frac": share * ((clipped * mask).sum() / n_tok).item(),
                "policy/kl": share * ((kl * mask).sum() / n_tok).item(),
                "policy/ratio_mean": share * (((logp - batch.old_logprobs).exp() * mask).sum() / n_tok).item()}
