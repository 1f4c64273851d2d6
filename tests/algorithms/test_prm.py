"""PRM training maths, RL process rewards (hand-computed), and a short training run on a tiny backbone."""

import json

import pytest
import torch

from reasonloop.algorithms.prm import (
    PRMConfig,
    expand_to_tokens,
    main,
    posterior_gated_rewards,
    process_advantages,
    step_bce_loss,
    step_targets,
    token_step_index,
)
from reasonloop.models.lora import LoRAConfig
from reasonloop.models.reward_model import RewardModel


def test_step_bce_loss_by_hand():
    logits = torch.tensor([[0.0, 2.0], [1.0, 9.0]])
    targets = torch.tensor([[1.0, 0.5], [0.0, 1.0]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    # BCE(0, 1) = log 2; BCE(2, .5) = log(1 + e^2) - 1; BCE(1, 0) = log(1 + e)
    expected = (torch.log(torch.tensor(2.0)) + torch.log1p(torch.exp(torch.tensor(2.0))) - 1
                + torch.log1p(torch.exp(torch.tensor(1.0)))) / 3
    assert step_bce_loss(logits, targets, mask).item() == pytest.approx(expected.item(), rel=1e-6)


def test_step_targets_per_kind():
    row = {"completions": ["a", "b", "c"], "labels": [True, False, False], "soft_labels": [0.5, 0.0, 0.0],
           "values": [0.3, 0.1, 0.0], "outcome": False}
    assert step_targets(row, "prm", "hard") == ([1.0, 0.0, 0.0], [1.0] * 3)
    assert step_targets(row, "prm", "soft") == ([0.5, 0.0, 0.0], [1.0] * 3)
    assert step_targets(row, "prm", "values") == ([0.3, 0.1, 0.0], [1.0] * 3)
    assert step_targets(row, "orm", "hard") == ([0.0, 0.0, 0.0], [0.0, 0.0, 1.0])
    assert step_targets({**row, "outcome": True}, "value", "hard") == ([1.0] * 3, [1.0] * 3)
    with pytest.raises(ValueError, match="soft_labels"):
        step_targets({**row, "soft_labels": None}, "prm", "soft")


def test_process_advantages_by_hand():
    # all steps [1, 0, 0]: mean 1/3, population std sqrt(2)/3 -> normalised [sqrt2, -1/sqrt2], [-1/sqrt2]
    adv = process_advantages([[1.0, 0.0], [0.0]], eps=0.0)
    s = 2 ** 0.5
    assert adv[0] == pytest.approx([s - 1 / s, -1 / s]) and adv[1] == pytest.approx([-1 / s])
    # equal rewards carry no signal
    assert process_advantages([[0.5, 0.5], [0.5]]) == [[0.0, 0.0], [0.0]]
    assert process_advantages([[], [1.0]], eps=0.0)[0] == []


def test_token_step_index_and_expansion():
    tokens = ["1", "2", "\n", "\n", "3", "\n", ""]  # an empty line is not a step (split_steps)
    idx = token_step_index(tokens)
    assert idx == [0, 0, 0, 1, 1, 1, 1]
    assert expand_to_tokens([0.5, -0.5], idx) == [0.5, 0.5, 0.5, -0.5, -0.5, -0.5, -0.5]
    assert token_step_index(["a", ";", "b"], separator=";") == [0, 0, 1]


def test_posterior_gated_rewards_only_reward_process_on_correct_outcomes():
    r = posterior_gated_rewards(torch.tensor([1.0, 0.0, 1.0, 0.0]), torch.tensor([0.5, 0.9, 0.25, 0.0]), 0.5)
    assert r.tolist() == [1.25, 0.0, 1.125, 0.0]


def test_config_validation():
    with pytest.raises(ValueError, match="only applies to kind=prm"):
        PRMConfig(kind="orm", targets="soft")


def write_rows(path, n=24):
    """Solutions whose steps are `k ok` (good) or `k bad` (bad, and everything after it)."""
    rows = []
    for i in range(n):
        error = i % 4 if i % 4 < 3 else None
        steps = [f"{k} {'bad' if error is not None and k >= error else 'ok'}" for k in range(3)]
        labels = [error is None or k < error for k in range(3)]
        rows.append({"prompt": f"q{i}\n", "completions": steps, "labels": labels,
                     "soft_labels": [float(x) for x in labels], "outcome": error is None, "true_first_error": error})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("kind, targets", [
    ("prm", "hard"),
    pytest.param("prm", "soft", marks=pytest.mark.slow),
    pytest.param("orm", "hard", marks=pytest.mark.slow),
    pytest.param("value", "hard", marks=pytest.mark.slow),
])
def test_training_reduces_loss_and_saves_a_loadable_model(tiny_model_dir, tmp_path, kind, targets):
    data = write_rows(tmp_path / "rows.jsonl", n=16)
    cfg = PRMConfig(backbone=str(tiny_model_dir), data=str(data), eval_data=str(data), kind=kind, targets=targets,
                    epochs=8, batch_size=8, output_dir=str(tmp_path), run_name=f"{kind}-{targets}", device="cpu")
    cfg.optim.lr = 3e-3
    summary = main(cfg)
    assert summary["loss_last"] < summary["loss_first"]
    model = RewardModel.from_pretrained(tmp_path / f"{kind}-{targets}" / "final", device="cpu")
    assert model.spec.kind == kind
    scores = model.score_steps("q0\n", ["0 bad", "1 bad", "2 bad"])
    assert len(scores) == 3
    if kind == "prm":  # a per-step model learns the rule on its training rows
        assert summary["eval"]["step_auc"] > 0.9


@pytest.mark.parametrize("lora_r", [0, 4])
def test_training_resumes_from_a_checkpoint(tiny_model_dir, tmp_path, lora_r):
    """Also with LoRA: the checkpoint holds the backbone's adapter and the head; the final model is merged."""
    data = write_rows(tmp_path / "rows.jsonl", n=8)
    base = {"backbone": str(tiny_model_dir), "data": str(data), "epochs": 1, "batch_size": 2, "output_dir": str(tmp_path),
            "device": "cpu", "save_every": 2, "lora": LoRAConfig(r=lora_r)}
    full = main(PRMConfig(run_name="full", **base))
    # a run "killed" after its step-2 checkpoint: delete the final model and resume
    part = main(PRMConfig(run_name="part", **base))
    assert part["steps"] == full["steps"] == 4
    import shutil

    shutil.rmtree(tmp_path / "part" / "final")
    resumed = main(PRMConfig(run_name="part", resume=True, **base))
    assert resumed["steps"] == 2  # only the steps after the latest checkpoint (step 2) ran again
    a = RewardModel.from_pretrained(tmp_path / "full" / "final", device="cpu").score_steps("q1\n", ["0 ok", "1 bad"])
    b = RewardModel.from_pretrained(tmp_path / "part" / "final", device="cpu").score_steps("q1\n", ["0 ok", "1 bad"])
    assert a == pytest.approx(b, abs=1e-5)
    if lora_r:
        assert (tmp_path / "part" / "checkpoints" / "step-000002" / "adapter_model.safetensors").exists()
        assert not (tmp_path / "part" / "final" / "adapter_config.json").exists()  # merged: plain backbone
