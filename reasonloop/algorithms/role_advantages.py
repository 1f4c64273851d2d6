"""Role-conditioned advantage estimation (RAE) for two-seat self-play: GRPO's `advantage=rae`.

Paper: Liu et al. 2025, "SPIRAL: Self-Play on Zero-Sum Games Incentivizes Reasoning via
Multi-Agent Multi-Turn Reinforcement Learning", arXiv:2506.24119. When both seats of a game
are the same policy, a group mean across seats mixes the two roles' returns (in tic-tac-toe
the first mover wins more often, so its rewards are higher for reasons that are not its
play); SPIRAL keeps a baseline per (game, role), an exponential moving average of that role's
returns, b <- decay * b + (1 - decay) * R, and trains each role's trajectory on A = R - b.

Here one environment is trained at a time, so the baseline is per role. Deviations: (1) the
baseline moves once per batch, by the mean return of that role's trajectories in the batch
(SPIRAL updates it trajectory by trajectory; per batch it does not depend on the order of the
trajectories in the batch), and the advantages use the updated baseline, as in SPIRAL's
algorithm; (2) a role's baseline starts at 0 the first time the role is seen; (3) trajectories
of a seat that never moved (its game ended first) neither update the baseline nor train
(advantage 0). No normalisation by a standard deviation (SPIRAL has none).

The baselines live in the trainer's checkpointed state, so a resumed run continues them exactly.
"""

from __future__ import annotations

import torch


def rae_advantages(rewards: torch.Tensor, roles: list[str], played: torch.Tensor, baselines: dict[str, float],
                   decay: float) -> tuple[torch.Tensor, dict[str, float]]:
    """(N,) returns, each trajectory's role, (N,) bool "the seat moved" -> ((N,) advantages, new baselines).

    For every role with played trajectories: b <- decay * b + (1 - decay) * mean(R of the role); then
    A = R - b for its played trajectories, 0 for the others.

    >>> a, b = rae_advantages(torch.tensor([1.0, -1.0, 0.0, 1.0]), ["X", "O", "X", "O"],
    ...                       torch.tensor([True, True, True, True]), {"X": 0.2}, 0.9)
    >>> [round(x, 4) for x in a.tolist()], {k: round(v, 4) for k, v in b.items()}
    ([0.77, -1.0, -0.23, 1.0], {'X': 0.23, 'O': 0.0})
    """
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"RAE decay must be in [0, 1), got {decay}")
    if len(roles) != rewards.shape[0] or played.shape != rewards.shape:
        raise ValueError(f"{rewards.shape[0]} rewards, {len(roles)} roles, {tuple(played.shape)} played flags")
    new = dict(baselines)
    advantages = torch.zeros_like(rewards)
    for role in dict.fromkeys(roles):  # roles in order of appearance
        mine = torch.tensor([r == role for r in roles], device=rewards.device) & played  # (N,)
        if not mine.any():
            continue
        new[role] = decay * new.get(role, 0.0) + (1.0 - decay) * rewards[mine].mean().item()
        advantages[mine] = rewards[mine] - new[role]
    return advantages, new
