"""B-STaR's reward-threshold knob: validation, the threshold the probe picks, and a real reward model end to end."""

import math

import pytest
import torch

import reasonloop.algorithms.selftrain as st
from reasonloop.algorithms.selftrain import BStarConfig, SelfTrainConfig, above_threshold, bstar_probe
from reasonloop.algorithms.sft import TrainConfig
from reasonloop.models.policy import ModelConfig
from reasonloop.rollout.sampler import SamplingParams
from reasonloop.store.jsonl import read_jsonl
from reasonloop.tasks import make_task
from reasonloop.tasks.spec import TaskSpec
from reasonloop.types import Sample

LUCKY = "47 + 5 = 42\n42 - 8 = 44\nAnswer: 44"  # a dropped carry and a dropped borrow cancel
HONEST = "47 + 5 = 52\n52 - 8 = 44\nAnswer: 44"


def lucky_problem():
    task = make_task("arithmetic", split="train", size=1)
    problem = task[0]
    problem.meta.update(start=47, operations=[["+", 5], ["-", 8]], solution=HONEST)
    problem.answer = "44"
    return task, problem


class LuckyThenHonest:
    """Every group: the lucky rationale, then the honest one, repeated."""

    def generate(self, prompts, samples_per_prompt=1, params=None, prefixes=None):
        return [[Sample("", p, (LUCKY, HONEST)[j % 2], token_ids=[0] * 5) for j in range(samples_per_prompt)]
                for p in prompts]


def test_reward_thresholds_are_validated():
    with pytest.raises(ValueError, match="needs bstar.reward_model"):
        BStarConfig(reward_thresholds=[0.0, 0.5])
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        BStarConfig(reward_model="rm", reward_thresholds=[1.5])
    with pytest.raises(ValueError, match="adapt=bstar"):
        SelfTrainConfig(bstar=BStarConfig(reward_model="rm"))


def test_above_threshold_keeps_unscored_samples():
    scored = Sample("p", "Q", "a", rewards={"correct": 1.0, "reward_model": 0.4})
    unscored = Sample("p", "Q", "b", rewards={"correct": 0.0})
    assert above_threshold([scored, unscored], 0.5) == [unscored]
    assert above_threshold([scored, unscored], 0.4) == [scored, unscored]


def test_probe_picks_the_threshold_that_drops_lucky_rationales():
    task, problem = lucky_problem()
    cfg = SelfTrainConfig(adapt="bstar", max_kept_per_problem=4, sampling=SamplingParams(max_new_tokens=8),
                          bstar=BStarConfig(temperatures=[1.0], samples_per_prompt=[2], target_correct=1,
                                            reward_model="rm", reward_thresholds=[0.0, 0.5]))
    scorer = lambda prompts, texts: [0.1 if t == LUCKY else 0.9 for t in texts]
    probe = bstar_probe(LuckyThenHonest(), task, [problem], cfg, seed=0, scorer=scorer)
    scores = {g["threshold"]: g["balance_score"] for g in probe["grid"]}
    # threshold 0: both verified rationales selected, one truly correct: min(1/1, 1) * 1/2
    # threshold 0.5: only the honest one selected: min(1/1, 1) * 1/1
    assert scores == {0.0: 0.5, 0.5: 1.0}
    assert probe["choice"]["threshold"] == 0.5
    # without a reward model every threshold scores the same and the least filtering wins
    probe = bstar_probe(LuckyThenHonest(), task, [problem], cfg, seed=0, scorer=None)
    assert probe["choice"]["threshold"] == 0.0


def test_selftrain_scores_samples_with_a_real_reward_model(tiny_model_dir, tmp_path, monkeypatch,
                                                            every_sample_correct):
    from reasonloop.models.reward_model import RewardModel
    from reasonloop.store.checkpoint import save_model

    rm = RewardModel.from_backbone(tiny_model_dir, use_chat_template=False)
    with torch.no_grad():
        rm.head.bias.fill_(math.log(0.8 / 0.2))  # every step scores 0.8, whatever the text
    rm_dir = save_model(tmp_path / "rm", rm)
    cfg = SelfTrainConfig(
        model=ModelConfig(path=str(tiny_model_dir), use_chat_template=False),
        task=TaskSpec("arithmetic", {"min_ops": 2, "max_ops": 2}), iterations=1, problems_per_iteration=4,
        sampling=SamplingParams(temperature=1.0, max_new_tokens=8), train=TrainConfig(max_steps=1, batch_size=4,
                                                                                      micro_batch_size=4),
        eval_problems=2, eval_max_new_tokens=4, output_dir=str(tmp_path), run_name="bstar_rm", adapt="bstar",
        bstar=BStarConfig(temperatures=[1.0], samples_per_prompt=[2], probe_problems=2, target_correct=1,
                          reward_model=str(rm_dir), reward_thresholds=[0.0, 0.9]))
    out = st.main(cfg)
    m = out["iterations"][1]
    assert m["bstar/threshold"] == 0.0  # at 0.9 nothing passes (every score is 0.8): balance 0
    samples = read_jsonl(tmp_path / "bstar_rm" / "samples" / "iter_001.jsonl", Sample)
    assert samples and all(s.rewards["reward_model"] == pytest.approx(0.8) for s in samples)
    assert m["kept"] > 0 and m["bstar/below_threshold"] == 0

