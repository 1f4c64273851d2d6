"""Off-policy and sampler/trainer mismatch correction: truncated importance sampling and masking.

Three policies meet in an asynchronous RL step. mu drew the tokens (the sampler; its log-probs
travel with each `Sample`), pi_old is the trainer's weights when the step starts, pi_theta the
weights being optimised. mu differs from pi_old for two reasons: staleness (with
`max_staleness=k`, mu is up to k updates old) and mismatch (a different engine or precision
computes different probabilities for the same weights: vLLM against FSDP, bf16 against fp32).
PPO's ratio pi_theta / pi_old handles the optimisation step; this module handles mu -> pi_old
with a per-token weight that multiplies the policy-gradient loss (decoupled PPO: Hilton et al.
2022, arXiv:2110.00641; AReaL, Fu et al. 2025, arXiv:2505.24298).

Modes (`OffPolicyConfig.mode`), with r_t = pi_old(y_t) / mu(y_t):
- `token_tis`: w_t = min(r_t, cap) (truncated importance sampling; Yao et al. 2025, "Your
  efficient RL framework secretly brings you off-policy RL training"; TRL `token_truncate`);
- `token_mask`: w_t = 1 if low <= r_t <= high else 0 (IcePop; TRL `token_mask`);
- `sequence_tis`: one weight per sequence, min(prod_t r_t, cap) (TRL `sequence_truncate`);
- `sequence_mask`: a sequence is dropped when its geometric-mean ratio exp(mean_t log r_t) lies
  outside [low, high] (SkyRL's geometric mask; TRL's default `sequence_mask` uses the product);
- `none`: w_t = 1; the diagnostics are still computed.

Diagnostics, always logged: `mismatch_kl`, the k3 estimate of KL(mu || pi_old) from mu's own
samples, mean over tokens of (r - 1) - log r (non-negative, unbiased; Schulman 2020);
`clipped_share`, the share of tokens whose weight the mode changed; the staleness histogram
(how many updates old each sample's policy was).

Deviations: the weight is detached (no gradient flows through pi_old or mu), as in every
reference; thresholds are inclusive.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Literal

import torch

Mode = Literal["none", "token_tis", "token_mask", "sequence_tis", "sequence_mask"]


@dataclass
class OffPolicyConfig:
    mode: Mode = "token_tis"
    cap: float = 2.0
    """truncation of the token or sequence ratio (the `*_tis` modes)"""
    low: float = 0.5
    """masks keep ratios in [low, high] (the `*_mask` modes)"""
    high: float = 2.0

    def __post_init__(self):
        if self.mode not in ("none", "token_tis", "token_mask", "sequence_tis", "sequence_mask"):
            raise ValueError(f"offpolicy.mode must be none|token_tis|token_mask|sequence_tis|sequence_mask, "
                             f"got {self.mode!r}")
        if self.cap <= 0 or not 0 <= self.low <= 1 <= self.high:
            raise ValueError(f"offpolicy needs cap > 0 and 0 <= low <= 1 <= high, got cap={self.cap}, "
                             f"low={self.low}, high={self.high}")


def correction_weights(trainer_logp: torch.Tensor, sampler_logp: torch.Tensor, mask: torch.Tensor,
                       cfg: OffPolicyConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token weights for the loss and which tokens the mode changed.

    trainer_logp, sampler_logp: (B, T) log pi_old and log mu of the sampled tokens; mask: (B, T)
    1 on completion tokens. Returns (weights (B, T) float, detached, 0 off the mask;
    changed (B, T) bool: weight differs from the raw ratio's untouched use, i.e. truncated or masked).

    >>> w, c = correction_weights(torch.tensor([[0.0, 0.0]]), torch.tensor([[0.0, -2.0]]), torch.ones(1, 2),
    ...                           OffPolicyConfig("token_tis", cap=2.0))
    >>> w.tolist(), c.tolist()
    ([[1.0, 2.0]], [[False, True]])
    """
    mask = mask.to(trainer_logp.dtype)
    on = mask > 0
    log_r = ((trainer_logp - sampler_logp) * mask).detach()  # (B, T)
    ratio = log_r.exp()
    if cfg.mode == "none":
        weights, changed = torch.ones_like(ratio), torch.zeros_like(on)
    elif cfg.mode == "token_tis":
        weights, changed = ratio.clamp(max=cfg.cap), ratio > cfg.cap
    elif cfg.mode == "token_mask":
        keep = (ratio >= cfg.low) & (ratio <= cfg.high)
        weights, changed = keep.to(ratio.dtype), ~keep
    else:
        seq_log = log_r.sum(-1)  # (B,)
        if cfg.mode == "sequence_tis":
            seq_ratio = seq_log.exp()
            seq_w, seq_changed = seq_ratio.clamp(max=cfg.cap), seq_ratio > cfg.cap
        else:
            geo = (seq_log / mask.sum(-1).clamp(min=1)).exp()  # (B,) geometric mean of the token ratios
            keep = (geo >= cfg.low) & (geo <= cfg.high)
            seq_w, seq_changed = keep.to(ratio.dtype), ~keep
        weights, changed = seq_w[:, None].expand_as(ratio), seq_changed[:, None].expand_as(on)
    return weights * mask, changed & on


def mismatch_kl(trainer_logp: torch.Tensor, sampler_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """k3 estimate of KL(mu || pi_old) over the masked tokens, a scalar >= 0.

    >>> round(float(mismatch_kl(torch.tensor([[0.0]]), torch.tensor([[-1.0]]), torch.ones(1, 1))), 4)
    0.7183
    """
    mask = mask.to(trainer_logp.dtype)
    log_r = ((trainer_logp - sampler_logp) * mask).detach()
    k3 = ((log_r.exp() - 1) - log_r).clamp(min=0)  # (B, T), 0 where masked out; >= 0 up to float rounding
    return k3.sum() / mask.sum().clamp(min=1)


def staleness_histogram(sample_versions: list[int], trainer_version: int) -> dict[int, int]:
    """{updates behind the trainer: samples}; a sample from a future version is a bug and raises.

    >>> staleness_histogram([3, 3, 2, 4], trainer_version=4)
    {0: 1, 1: 2, 2: 1}
    """
    lags = [trainer_version - v for v in sample_versions]
    if any(lag < 0 for lag in lags):
        raise ValueError(f"a sample's policy version is newer than the trainer's ({trainer_version}): {sample_versions}")
    return dict(sorted(Counter(lags).items()))


def correction_metrics(trainer_logp: torch.Tensor, sampler_logp: torch.Tensor, mask: torch.Tensor,
                       changed: torch.Tensor, sample_versions: list[int], trainer_version: int) -> dict[str, float]:
    """The always-logged diagnostics: mismatch KL, clipped share, staleness mean/max and histogram."""
    tokens = mask.sum().clamp(min=1)
    hist = staleness_histogram(sample_versions, trainer_version)
    n = max(1, sum(hist.values()))
    out = {
        "offpolicy/mismatch_kl": float(mismatch_kl(trainer_logp, sampler_logp, mask)),
        "offpolicy/clipped_share": float(changed.to(tokens.dtype).sum() / tokens),
        "offpolicy/staleness_mean": sum(lag * c for lag, c in hist.items()) / n,
        "offpolicy/staleness_max": float(max(hist, default=0)),
    }
    out.update({f"offpolicy/staleness_{lag}": c / n for lag, c in hist.items()})
    return out
