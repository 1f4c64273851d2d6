"""The reward model: one score per step, read at the step's last token; save/load round trip."""

import pytest
import torch

from reasonloop.models.reward_model import RewardModel, prm_reward
from reasonloop.types import Problem
from reasonloop.verify.aggregate import aggregate as aggregate_scores


@pytest.fixture(scope="module")
def rm(tiny_model_dir):
    torch.manual_seed(0)
    model = RewardModel.from_backbone(tiny_model_dir, kind="prm", device="cpu")
    torch.nn.init.normal_(model.head.weight, std=1.0)  # a non-trivial head, so scores differ per step
    return model


def test_backbone_weights_come_from_the_causal_lm(tiny_model_dir, rm):
    from transformers import AutoModelForCausalLM

    lm = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    assert torch.equal(lm.model.embed_tokens.weight, rm.backbone.embed_tokens.weight)


def test_encode_reads_the_last_token_of_each_step(rm):
    ids, ends = rm.encode("Q\n", ["1 + 1 = 2", "Answer: 2"])
    text = rm.tokenizer.decode(ids)
    assert len(ends) == 2 and rm.tokenizer.decode([ids[ends[0]]]) == "\n" and ends[1] == len(ids) - 1
    assert text.endswith("1 + 1 = 2\nAnswer: 2\n")


def test_score_steps_one_score_per_step_and_causal(rm):
    p = Problem(id="p", prompt="Compute left to right: 1 + 1\n")
    a = rm.score_steps(p, ["1 + 1 = 2", "Answer: 2"])
    b = rm.score_steps(p, ["1 + 1 = 2", "Answer: 3"])
    assert len(a) == 2 and all(0 < s < 1 for s in a)
    assert a[0] == pytest.approx(b[0], abs=1e-6) and a[1] != pytest.approx(b[1], abs=1e-6)  # step 1 can't see step 2
    assert rm.score_steps(p, []) == []
    # batching and padding do not change scores
    batch = rm.score_batch([p.prompt, "longer prompt " * 5], [["1 + 1 = 2", "Answer: 2"], ["x"]])
    assert batch[0] == pytest.approx(a, abs=1e-5) and len(batch[1]) == 1


def test_save_load_round_trip(rm, tmp_path):
    steps = ["12 + 3 = 15", "Answer: 15"]
    before = rm.score_steps("Compute left to right: 12 + 3\n", steps)
    rm.save_pretrained(tmp_path / "rm")
    loaded = RewardModel.from_pretrained(tmp_path / "rm", device="cpu")
    assert loaded.spec == rm.spec
    assert loaded.score_steps("Compute left to right: 12 + 3\n", steps) == pytest.approx(before, abs=1e-6)
    reward = prm_reward(tmp_path / "rm", aggregate="min")
    assert reward(Problem(id="p", prompt="Compute left to right: 12 + 3\n"), "12 + 3 = 15\nAnswer: 15") == \
        pytest.approx(min(before), abs=1e-6)
    with pytest.raises(FileNotFoundError, match="not a reward model directory"):
        RewardModel.from_pretrained(tmp_path)


def test_aggregates():
    assert aggregate_scores([0.5, 0.25], "min") == 0.25 and aggregate_scores([0.5, 0.25], "prod") == 0.125
    assert aggregate_scores([0.5, 0.25], "last") == 0.25 and aggregate_scores([0.5, 0.25], "mean") == 0.375
    assert aggregate_scores([], "min") == 0.0
    with pytest.raises(ValueError, match="unknown aggregation"):
        aggregate_scores([0.1], "max")
