"""GRPO on multi-turn environments: environment tokens are context, never trained; turn-level credit."""

import json

import pytest
import torch

from reasonloop.algorithms.grpo import GRPOConfig, main, turn_token_advantages
from reasonloop.algorithms.grpo_batches import DrawStats, Rollouts
from reasonloop.algorithms.grpo_update import TrainRow, make_batch, rows_from_rollouts
from reasonloop.envs import EnvSpec, Limits, Trajectory
from reasonloop.models.policy import ModelConfig
from reasonloop.rollout.sampler import SamplingParams
from reasonloop.types import Group, Problem


def trajectory(prompt_ids, ids, mask, reward):
    return Trajectory("p", "q", prompt_ids=prompt_ids, token_ids=ids, loss_mask=mask,
                      logprobs=[-0.5 if m else 0.0 for m in mask], turns=[(0, 2), (4, len(ids))],
                      turn_rewards=[0.0, reward])


def test_rows_keep_the_trajectory_ids_and_mask_environment_tokens():
    samples = [trajectory([1, 2, 3], [10, 11, 90, 91, 12], [1, 1, 0, 0, 1], 1.0).to_sample(),
               trajectory([1, 2, 3], [13, 14, 92, 93, 15, 16], [1, 1, 0, 0, 1, 1], 0.0).to_sample()]
    for s, r in zip(samples, (1.0, 0.0)):
        s.rewards["total"] = r
    rollouts = Rollouts([Group(Problem("p", "q"), samples)], [0], samples, DrawStats(), [], 0.0)
    rows = rows_from_rollouts(rollouts, lambda prompt: pytest.fail("a trajectory's prompt is never re-encoded"),
                              overlong_filter=False)
    assert [r.context for r in rows] == [[1, 2, 3]] * 2
    assert rows[1].completion == [13, 14, 92, 93, 15, 16] and rows[0].token_mask == [1, 1, 0, 0, 1]
    batch = make_batch(rows, "cpu")
    assert batch.train_mask.tolist() == [[1, 1, 0, 0, 1, 0], [1, 1, 0, 0, 1, 1]]
    assert batch.loss_mask.tolist() == batch.train_mask.tolist()


def test_turn_advantages_follow_the_turn_returns():
    rows = [TrainRow(0, [], [], [1, 2, 3, 4], [0.0] * 4, 1.0, advantage=1.0, token_mask=[1, 0, 1, 1],
                     turns=[(0, 1), (2, 4)], turn_rewards=[0.5, 0.5]),
            TrainRow(0, [], [], [5, 6], [0.0] * 2, 0.0, advantage=-1.0, token_mask=[1, 1], turns=[(0, 2)],
                     turn_rewards=[0.0])]
    # returns: row 0 turns 1.0 and 0.5, row 1 turn 0.0 -> mean 0.5, std sqrt(1/6)
    std = (1 / 6) ** 0.5
    out = turn_token_advantages(rows, 2.0)
    assert out[0] == pytest.approx([1 + 2 * 0.5 / std, 1.0, 1.0, 1.0])
    assert out[1] == pytest.approx([-1 - 2 * 0.5 / std] * 2)


def test_config_rejects_terms_that_do_not_apply_to_environments():
    with pytest.raises(ValueError, match="environment"):
        GRPOConfig(env=EnvSpec("tictactoe"), format_weight=0.5)
    with pytest.raises(ValueError, match="turn_reward_weight"):
        GRPOConfig(turn_reward_weight=0.5)


def test_grpo_runs_on_a_multi_turn_game(tiny_model_dir, tmp_path):
    cfg = GRPOConfig(model=ModelConfig(path=str(tiny_model_dir)), steps=2, prompts_per_step=2, samples_per_prompt=2,
                     sampling=SamplingParams(temperature=1.0, max_new_tokens=8), eval_problems=2,
                     eval_max_new_tokens=8, save_every=0, output_dir=str(tmp_path), run_name="env",
                     env=EnvSpec("tictactoe", {"max_illegal": 1}), turn_limits=Limits(max_turns=3, max_tokens=200),
                     turn_reward_weight=0.5)
    before = None
    summary = main(cfg)
    rows = [json.loads(line) for line in (tmp_path / "env" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "reward/mean" in r]
    assert summary["steps"] == 2 and len(steps) == 2 and before is None
    for r in steps:
        # a random tiny model cannot name a cell: every game is illegal moves, told to it, then a forfeit
        assert r["env/turns"] == pytest.approx(2.0) and r["env/illegal_move"] == pytest.approx(2.0)
        assert r["env/forfeit"] == pytest.approx(1.0) and r["env/inserted_tokens"] > 0
        assert r["reward/mean"] == pytest.approx(-1.0)
    assert rows[0]["eval/turns"] == pytest.approx(2.0) and rows[0]["eval/greedy_accuracy"] == 0.0
    assert torch.isfinite(torch.tensor(steps[-1]["len/mean"]))
