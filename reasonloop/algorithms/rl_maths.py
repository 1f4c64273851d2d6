"""The maths of the GRPO family as pure tensor functions (no config objects, no model).

Each variant is a named function in a literal registry, chosen by name in `GRPOConfig`
(validated there), and unit-tested on hand-computed tensors in tests/algorithms/test_grpo_maths.py.

Advantages (`ADVANTAGES`), rewards (P, G) -> advantages (P, G), one per sequence:
- "grpo"        (r - mean_group) / (std_group + eps)          DeepSeekMath, arXiv:2402.03300
- "drgrpo"      r - mean_group (no std division)              Dr.GRPO, arXiv:2503.20783
- "rloo"        r - mean of the *other* G-1 rewards            RLOO, arXiv:2402.14740
- "reinforce_pp" (r - mean_batch) / std_batch over all P*G    REINFORCE++, arXiv:2501.03262

Ratio clipping (`CLIPS`), per-token surrogate loss to be minimised; all take asymmetric
(eps_low, eps_high) so DAPO's clip-higher (arXiv:2503.14476) is eps_high > eps_low:
- "ppo"        -min(r A, clip(r, 1-eps_low, 1+eps_high) A)     PPO, arXiv:1707.06347
- "dual_clip"  PPO, and for A < 0 the loss is also capped at -c A  (Ye et al., arXiv:1912.09729)
- "gppo"       PPO's forward value, but clipped tokens keep a bounded gradient: the clipped
               ratio is written clip_value * r / sg(r), whose gradient is clip_value * grad log pi
               (Klear-Reasoner GPPO, arXiv:2508.07629, with beta1 = beta2 = 1)

Loss aggregation (`AGGREGATIONS`), per-token loss (B, T) -> scalar:
- "token_mean"  sum / number of completion tokens in the batch (DAPO)
- "seq_mean"    mean over sequences of each sequence's token mean (original GRPO)
- "constant"    sum / (num sequences * constant), constant = max_new_tokens (Dr.GRPO)

KL estimators (`KL_ESTIMATORS`) of KL(pi || pi_ref) per token (Schulman, "Approximating KL
divergence", 2020): k1 = log(pi/pi_ref), k2 = (log(pi/pi_ref))^2 / 2, k3 = exp(-x) + x - 1
with x = log(pi/pi_ref).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

# ---------------------------------------------------------------------------------------
# Advantages: rewards (P, G) -> (P, G)


def grpo_advantages(rewards: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Group-normalised: (r - mean) / (std + eps), std unbiased=False as in the GRPO paper's code."""
    mean = rewards.mean(dim=1, keepdim=True)  # (P, 1)
    std = rewards.std(dim=1, keepdim=True, unbiased=False)  # (P, 1)
    return (rewards - mean) / (std + eps)


def drgrpo_advantages(rewards: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Mean-only: dividing by the group std up-weights too-easy and too-hard prompts (Dr.GRPO §3)."""
    return rewards - rewards.mean(dim=1, keepdim=True)


def rloo_advantages(rewards: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Leave-one-out baseline: r_i - mean_{j != i} r_j = G/(G-1) * (r_i - mean)."""
    group = rewards.shape[1]
    if group < 2:
        raise ValueError("RLOO needs at least 2 samples per prompt")
    return (rewards - rewards.mean(dim=1, keepdim=True)) * group / (group - 1)


def reinforce_pp_advantages(rewards: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Global-batch normalisation of the (KL-shaped) reward, no per-prompt baseline (REINFORCE++)."""
    return (rewards - rewards.mean()) / (rewards.std(unbiased=False) + eps)


ADVANTAGES: dict[str, Callable[..., torch.Tensor]] = {
    "grpo": grpo_advantages,
    "drgrpo": drgrpo_advantages,
    "rloo": rloo_advantages,
    "reinforce_pp": reinforce_pp_advantages,
}


# ---------------------------------------------------------------------------------------
# Clipped policy-gradient surrogates: per-token loss (B, T) to minimise, and a clip indicator


def ppo_clip_loss(logp, old_logp, adv, eps_low: float, eps_high: float, dual_clip: float = 3.0):
    """-min(r A, clip(r) A). logp/old_logp (B, T), adv (B, 1) or (B, T). Returns (loss, clipped)."""
    ratio = torch.exp(logp - old_logp)  # (B, T)
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1 - eps_low, 1 + eps_high) * adv
    loss = -torch.minimum(unclipped, clipped)
    return loss, (clipped < unclipped).float()  # the clipped branch is the active one


def dual_clip_loss(logp, old_logp, adv, eps_low: float, eps_high: float, dual_clip: float = 3.0):
    """PPO plus a cap for negative advantages: a huge ratio on a bad token cannot blow the loss up."""
    loss, clipped = ppo_clip_loss(logp, old_logp, adv, eps_low, eps_high)
    capped = torch.minimum(loss, -dual_clip * adv)  # only bites where adv < 0 (then -c A > 0)
    negative = (adv < 0).expand_as(loss)
    dual = negative & (capped < loss)
    return torch.where(negative, capped, loss), torch.maximum(clipped, dual.float())


def gppo_loss(logp, old_logp, adv, eps_low: float, eps_high: float, dual_clip: float = 3.0):
    """PPO's values, but gradients of clipped tokens are kept (bounded), not zeroed (GPPO).

    Where PPO takes the clipped branch, the ratio is replaced by bound * r / sg(r): same value
    (bound), gradient bound * grad log pi instead of 0, so a token the policy already moved
    past the trust region still gets a (bounded) signal.
    """
    ratio = torch.exp(logp - old_logp)  # (B, T)
    adv = adv.expand_as(ratio)
    high = (adv > 0) & (ratio > 1 + eps_high)  # PPO would clip and stop the gradient here
    low = (adv < 0) & (ratio < 1 - eps_low)
    bound = torch.where(high, torch.full_like(ratio, 1 + eps_high), torch.full_like(ratio, 1 - eps_low))
    preserved = bound * ratio / ratio.detach()  # value = bound, grad = bound * grad log pi
    effective = torch.where(high | low, preserved, ratio)
    return -effective * adv, (high | low).float()


CLIPS: dict[str, Callable[..., tuple[torch.Tensor, torch.Tensor]]] = {
    "ppo": ppo_clip_loss,
    "dual_clip": dual_clip_loss,
    "gppo": gppo_loss,
}


# ---------------------------------------------------------------------------------------
# KL estimators: per-token estimate of KL(pi || pi_ref), (B, T)


def kl_k1(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    return logp - ref_logp


def kl_k2(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    return 0.5 * (logp - ref_logp) ** 2


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    x = ref_logp - logp  # log(pi_ref / pi)
    return torch.exp(x) - x - 1


KL_ESTIMATORS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "k1": kl_k1, "k2": kl_k2, "k3": kl_k3,
}


# ---------------------------------------------------------------------------------------
# Loss aggregation. Written as a *sum* over this micro-batch divided by a normaliser of the
# whole mini-batch, so micro-batches accumulate into exactly the full-batch value.


def aggregate_loss(
    per_token: torch.Tensor,
    mask: torch.Tensor,
    mode: str,
    *,
    total_tokens: float | None = None,
    total_seqs: float | None = None,
    constant: float = 1.0,
) -> torch.Tensor:
    """per_token, mask (B, T) -> scalar. total_* default to this batch's own counts."""
    total_tokens = mask.sum().clamp(min=1) if total_tokens is None else total_tokens
    total_seqs = per_token.shape[0] if total_seqs is None else total_seqs
    masked = per_token * mask  # (B, T)
    if mode == "token_mean":
        return masked.sum() / total_tokens
    if mode == "seq_mean":
        return (masked.sum(1) / mask.sum(1).clamp(min=1)).sum() / total_seqs
    if mode == "constant":
        return masked.sum() / (total_seqs * constant)
    raise ValueError(f"unknown loss aggregation {mode!r}; valid: {AGGREGATIONS}")


AGGREGATIONS = ("token_mean", "seq_mean", "constant")


# ---------------------------------------------------------------------------------------
# Reward shaping and group filters (plain Python/tensor helpers)


def pass_rate_in_band(correct: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """correct (P, G) in {0,1} -> (P,) bool: groups whose pass rate lies in [low, high]."""
    rate = correct.float().mean(dim=1)
    return (rate >= low) & (rate <= high)


def has_reward_variance(rewards: torch.Tensor, tol: float = 1e-8) -> torch.Tensor:
    """rewards (P, G) -> (P,) bool: False for zero-variance groups (no GRPO signal; DAPO drops them)."""
    return (rewards.max(dim=1).values - rewards.min(dim=1).values) > tol
