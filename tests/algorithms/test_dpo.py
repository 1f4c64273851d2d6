"""DPO/RPO: the loss against hand-computed numbers, pairing, and one iteration end to end."""

import math

import pytest
import torch

from reasonloop.algorithms import dpo
from reasonloop.algorithms.common import OptimConfig
from reasonloop.algorithms.dpo import DPOConfig, dpo_loss, make_pairs
from reasonloop.algorithms.sft import TrainConfig
from reasonloop.models.lora import LoRAConfig
from reasonloop.models.policy import ModelConfig, load_model
from reasonloop.rollout.sampler import SamplingParams
from reasonloop.tasks.spec import TaskSpec
from reasonloop.types import Sample


def test_dpo_loss_by_hand():
    t = torch.tensor
    loss, m = dpo_loss(t([-1.0, -3.0]), t([-2.0, -1.0]), t([-1.5, -2.0]), t([-1.5, -2.0]), beta=0.5)
    # pair 1: margin = 0.5*(0.5) - 0.5*(-0.5) = 0.5; pair 2: 0.5*(-1) - 0.5*(1) = -1
    want = (math.log(1 + math.exp(-0.5)) + math.log(1 + math.exp(1.0))) / 2
    assert loss.item() == pytest.approx(want, abs=1e-6)  # 0.893669
    assert loss.item() == pytest.approx(0.893669, abs=1e-6)
    assert m["reward_accuracy"] == 0.5 and m["reward_margin"] == pytest.approx(-0.25)
    assert m["chosen_reward"] == pytest.approx((0.25 - 0.5) / 2)
    rpo, _m2 = dpo_loss(t([-1.0, -3.0]), t([-2.0, -1.0]), t([-1.5, -2.0]), t([-1.5, -2.0]), beta=0.5,
                       sft_weight=2.0, chosen_nll=t([0.5, 1.5]))
    assert rpo.item() == pytest.approx(want + 2.0 * 1.0, abs=1e-6)
    with pytest.raises(ValueError):
        dpo_loss(t([0.0]), t([0.0]), t([0.0]), t([0.0]), beta=0.1, sft_weight=1.0)


def test_dpo_loss_gradient_direction():
    pc, pr = torch.tensor([-1.0], requires_grad=True), torch.tensor([-1.0], requires_grad=True)
    loss, _ = dpo_loss(pc, pr, torch.tensor([-1.0]), torch.tensor([-1.0]), beta=0.1)
    loss.backward()
    # at margin 0: dL/dpc = -beta * sigmoid(0) = -0.05, dL/dpr = +0.05
    assert pc.grad.item() == pytest.approx(-0.05) and pr.grad.item() == pytest.approx(0.05)


def _s(pid, text, ok):
    return Sample(pid, f"Q{pid}", text, rewards={"correct": 1.0 if ok else 0.0})


def test_make_pairs_distinct_and_capped():
    samples = [_s("a", "good", True), _s("a", "good ", True), _s("a", "bad1", False), _s("a", "bad2", False),
               _s("b", "only-good", True), _s("c", "bad", False)]
    pairs = make_pairs(samples, pairs_per_problem=5, seed=0)
    assert sorted(pairs) == [("Qa", "good", "bad1"), ("Qa", "good", "bad2")]  # b, c have no pair; dedup "good "
    assert len(make_pairs(samples, pairs_per_problem=1, seed=0)) == 1
    assert make_pairs(samples, 1, seed=3) == make_pairs(samples, 1, seed=3)


def test_dpo_config_validation():
    with pytest.raises(ValueError):
        DPOConfig(beta=0)
    with pytest.raises(ValueError):
        DPOConfig(train=TrainConfig(packing=True))


@pytest.mark.parametrize("lora_r, micro_batch_tokens", [(0, 0), (4, 0), (0, 1)])
def test_dpo_iteration_raises_chosen_over_rejected(tiny_model_dir, tmp_path, monkeypatch, lora_r,
                                                   micro_batch_tokens):
    """One iteration on the real engine: pairs built, the policy moves toward the chosen rationales
    (all weights, or LoRA adapters merged into a plain final model)."""
    real = dpo.sample_and_verify

    def half_correct(*a, **k):  # an untrained tiny model is never right: label half of each group correct
        samples = real(*a, **k)
        for i, s in enumerate(samples):
            s.text = s.text or f"t{i}"
            s.rewards["correct"] = float(i % 2 == 0)
        return samples

    monkeypatch.setattr(dpo, "sample_and_verify", half_correct)
    cfg = DPOConfig(model=ModelConfig(path=str(tiny_model_dir), use_chat_template=False),
                    task=TaskSpec("arithmetic", {"max_ops": 2}), problems_per_iteration=3, samples_per_prompt=2,
                    sampling=SamplingParams(max_new_tokens=6), pairs_per_problem=1, beta=0.5, sft_weight=0.5,
                    train=TrainConfig(max_steps=4, batch_size=3, micro_batch_size=3, optim=OptimConfig(lr=3e-3),
                                      micro_batch_tokens=micro_batch_tokens),  # 1: one pair per forward
                    eval_problems=2, eval_max_new_tokens=6, output_dir=str(tmp_path), run_name="dpo",
                    lora=LoRAConfig(r=lora_r, alpha=8))
    out = dpo.main(cfg)
    m = out["iterations"][-1]
    assert m["pairs"] == 3 and math.isfinite(m["train/dpo_loss"])
    assert m["train/reward_margin"] > 0  # the last steps prefer chosen over rejected relative to the reference
    before, _ = load_model(ModelConfig(path=str(tiny_model_dir)))
    after, _ = load_model(ModelConfig(path=out["final_model"]))
    changed = {n for (n, p), (_, q) in zip(before.named_parameters(), after.named_parameters()) if not torch.equal(p, q)}
    assert changed and (lora_r == 0 or all("self_attn" in n for n in changed))


def test_dpo_walks_a_dataset_by_epochs(tiny_model_dir, tmp_path):
    """A finite dataset: iteration r samples the r-th slice of one seeded epoch order, wrapping into epoch 2."""
    import pathlib

    from reasonloop.store.jsonl import read_jsonl
    from reasonloop.tasks import ProblemCursor, make_task
    from reasonloop.types import Sample

    gsm8k = str(pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "gsm8k.jsonl")  # 4 problems
    cfg = DPOConfig(model=ModelConfig(path=str(tiny_model_dir), use_chat_template=False),
                    task=TaskSpec("gsm8k", source=gsm8k), iterations=2, problems_per_iteration=3,
                    samples_per_prompt=2, sampling=SamplingParams(max_new_tokens=4),
                    train=TrainConfig(max_steps=1, batch_size=2, micro_batch_size=2), eval_problems=0,
                    output_dir=str(tmp_path), run_name="dpo", seed=7)
    dpo.main(cfg)
    drawn = [[s.problem_id for s in read_jsonl(tmp_path / f"dpo/samples/iter_{it:03d}.jsonl", Sample)][::2]
             for it in (1, 2)]
    expected = [p.id for p in ProblemCursor(make_task("gsm8k", source=gsm8k, split="train"), seed=7).take(6)]
    assert drawn[0] + drawn[1] == expected
    assert len(set(expected[:4])) == 4  # the first epoch visits every problem once
