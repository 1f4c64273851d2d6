"""The GRPO-family maths on hand-computed tensors (rl_maths.py)."""

import math

import pytest
import torch

from reasonloop.algorithms.rl_maths import (
    ADVANTAGES,
    CLIPS,
    KL_ESTIMATORS,
    aggregate_loss,
    has_reward_variance,
    pass_rate_in_band,
)
from reasonloop.verify.rewards import soft_overlong_penalty


def test_group_advantages_by_hand():
    r = torch.tensor([[1.0, 0.0, 0.0, 1.0]])
    assert torch.allclose(ADVANTAGES["grpo"](r), torch.tensor([[1.0, -1.0, -1.0, 1.0]]), atol=1e-5)
    assert torch.allclose(ADVANTAGES["drgrpo"](r), torch.tensor([[0.5, -0.5, -0.5, 0.5]]))
    # leave-one-out: 1 - (0+0+1)/3 = 2/3 ; 0 - (1+0+1)/3 = -2/3
    assert torch.allclose(ADVANTAGES["rloo"](r), torch.tensor([[2 / 3, -2 / 3, -2 / 3, 2 / 3]]))


def test_reinforce_pp_normalises_over_the_batch_not_the_group():
    r = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    # batch mean 0.75, population std sqrt(0.1875) = 0.4330
    expected = torch.tensor([[0.25, -0.75], [0.25, 0.25]]) / math.sqrt(0.1875)
    assert torch.allclose(ADVANTAGES["reinforce_pp"](r), expected, atol=1e-5)
    # the all-correct group keeps a non-zero advantage, unlike GRPO's
    assert ADVANTAGES["grpo"](r)[1].abs().max() == 0


def test_zero_variance_group_gets_zero_advantage_and_is_flagged():
    r = torch.tensor([[1.0, 1.0, 1.0], [0.0, 1.0, 0.0]])
    assert torch.equal(has_reward_variance(r), torch.tensor([False, True]))
    for name in ("grpo", "drgrpo", "rloo"):
        assert ADVANTAGES[name](r)[0].abs().max() == 0, name


def _grad(name, ratio, adv, eps_low=0.2, eps_high=0.2):
    logp = torch.tensor([[math.log(ratio)]], requires_grad=True)
    loss, clipped = CLIPS[name](logp, torch.zeros(1, 1), torch.tensor([[adv]]), eps_low, eps_high, 3.0)
    loss.sum().backward()
    return loss.item(), logp.grad.item(), clipped.item()


def test_ppo_clip_values_and_zero_gradient_when_clipped():
    assert _grad("ppo", 1.5, 1.0) == pytest.approx((-1.2, 0.0, 1.0))
    assert _grad("ppo", 1.5, 1.0, eps_high=0.28) == pytest.approx((-1.28, 0.0, 1.0))  # clip-higher
    assert _grad("ppo", 1.5, -1.0) == pytest.approx((1.5, 1.5, 0.0))  # pessimistic branch: unclipped
    assert _grad("ppo", 1.1, 1.0) == pytest.approx((-1.1, -1.1, 0.0))  # inside the trust region


def test_dual_clip_caps_negative_advantage_loss():
    assert _grad("ppo", 5.0, -1.0)[0] == pytest.approx(5.0)
    loss, grad, clipped = _grad("dual_clip", 5.0, -1.0)
    assert (loss, grad, clipped) == pytest.approx((3.0, 0.0, 1.0))  # capped at -c*A = 3
    assert _grad("dual_clip", 1.5, 1.0) == pytest.approx((-1.2, 0.0, 1.0))  # positive A: plain PPO


def test_gppo_keeps_bounded_gradient_of_clipped_tokens():
    # same value as PPO, but gradient bound * A * d(log pi) instead of 0
    assert _grad("gppo", 1.5, 1.0) == pytest.approx((-1.2, -1.2, 1.0))
    assert _grad("gppo", 0.5, -1.0) == pytest.approx((0.8, 0.8, 1.0))
    assert _grad("ppo", 0.5, -1.0) == pytest.approx((0.8, 0.0, 1.0))
    assert _grad("gppo", 1.1, 1.0) == pytest.approx((-1.1, -1.1, 0.0))


def test_kl_estimators_by_hand():
    logp, ref = torch.tensor([0.0]), torch.tensor([math.log(0.5)])
    assert KL_ESTIMATORS["k1"](logp, ref).item() == pytest.approx(math.log(2))
    assert KL_ESTIMATORS["k2"](logp, ref).item() == pytest.approx(0.5 * math.log(2) ** 2)
    assert KL_ESTIMATORS["k3"](logp, ref).item() == pytest.approx(0.5 + math.log(0.5) * -1 - 1)
    assert KL_ESTIMATORS["k3"](ref, ref).item() == 0.0


def test_loss_aggregations_by_hand_and_under_micro_batching():
    per_token = torch.tensor([[1.0, 2.0, 3.0], [4.0, 9.0, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    assert aggregate_loss(per_token, mask, "token_mean").item() == pytest.approx(10 / 4)
    assert aggregate_loss(per_token, mask, "seq_mean").item() == pytest.approx((2 + 4) / 2)
    assert aggregate_loss(per_token, mask, "constant", constant=3).item() == pytest.approx(10 / 6)
    for mode in ("token_mean", "seq_mean", "constant"):  # two micro-batches sum to the full-batch value
        totals = {"total_tokens": 4.0, "total_seqs": 2.0, "constant": 3.0}
        split = sum(aggregate_loss(per_token[i:i + 1], mask[i:i + 1], mode, **totals) for i in range(2))
        assert split.item() == pytest.approx(aggregate_loss(per_token, mask, mode, **totals).item())
    with pytest.raises(ValueError, match="valid"):
        aggregate_loss(per_token, mask, "sum")


def test_soft_overlong_penalty_by_hand():
    assert [soft_overlong_penalty(n, 20, 4) for n in (10, 16, 18, 20, 25)] == [0.0, 0.0, -0.5, -1.0, -1.0]


def test_pass_rate_band():
    correct = torch.tensor([[1, 1, 1, 1], [1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]])
    assert pass_rate_in_band(correct, 0.25, 0.75).tolist() == [False, True, True, False]
