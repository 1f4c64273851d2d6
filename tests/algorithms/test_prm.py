"""PRM training maths, RL process rewards (hand-computed), and a short training run on a tiny backbone."""

import json

import pytest
import torch

from reasonloop.algorithms.common import OptimConfig
from reasonloop.algorithms.prm import (
    PRMConfig,
    accumulate_batch,
    expand_to_tokens,
    main,
    posterior_gated_rewards,
    process_advantages,
    step_bce_loss,
    step_targets,
    token_step_index,
)
from reasonloop.algorithms.sft import micro_batches
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


def test_micro_batches_make_the_full_batch_update(tiny_model_dir, tmp_path):
    """Steps of 8 rows in one forward, in micro-batches of 3 rows, and by a token budget: the same weights.
    Two steps: the head starts at zero, so only the second step's gradient reaches the backbone."""
    from safetensors.torch import load_file

    rows = [json.loads(line) for line in write_rows(tmp_path / "rows.jsonl", n=8).read_text().splitlines()]
    for i, r in enumerate(rows):  # rows of different lengths and step counts: micro-batches pad differently
        r["prompt"] = f"question {i} " * (1 + i % 3) + "\n"
        r["completions"], r["labels"] = r["completions"][: 2 + i % 2], r["labels"][: 2 + i % 2]
        r["soft_labels"] = r["soft_labels"][: 2 + i % 2]
    data = tmp_path / "mixed.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    base = {"backbone": str(tiny_model_dir), "data": str(data), "epochs": 2, "batch_size": 8, "output_dir": str(tmp_path),
            "device": "cpu", "optim": OptimConfig(lr=1e-2, warmup_steps=0, grad_clip=0.0)}
    init = RewardModel.from_backbone(str(tiny_model_dir), "prm", device="cpu")
    encoded = [init.encode(r["prompt"], r["completions"]) for r in rows]
    budget = 3 * max(len(ids) for ids, _ in encoded)
    assert len(micro_batches([len(ids) for ids, _ in encoded], 8, budget)) > 2  # the token budget splits the batch
    losses = {name: main(PRMConfig(run_name=name, **base, **extra))["loss_last"] for name, extra in [
        ("full", {"micro_batch_size": 8}), ("rows", {"micro_batch_size": 3}),
        ("tokens", {"micro_batch_size": 8, "micro_batch_tokens": budget})]}
    assert losses["rows"] == pytest.approx(losses["full"], rel=1e-5)
    assert losses["tokens"] == pytest.approx(losses["full"], rel=1e-5)
    moved = RewardModel.from_pretrained(tmp_path / "full" / "final", device="cpu").backbone.parameters()
    assert any(not torch.equal(p, q) for p, q in zip(moved, init.backbone.parameters()))  # the backbone trained
    for name in ("rows", "tokens"):
        for file in ("model.safetensors", "reward_head.safetensors"):
            a, b = load_file(tmp_path / "full/final" / file), load_file(tmp_path / name / "final" / file)
            for k in a:
                torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-4)  # Adam: lr 1e-2 x sign of ~0 gradients
    # the gradient norm is scale-sensitive (Adam's update is not): each step's is the full batch's
    norms = {name: [json.loads(line)["grad_norm"] for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()
                    if "grad_norm" in line] for name in losses}
    assert norms["full"] and norms["rows"] == pytest.approx(norms["full"], rel=1e-5)
    assert norms["tokens"] == pytest.approx(norms["full"], rel=1e-5)


def test_accumulated_gradient_equals_the_full_batch_gradient(tiny_model_dir):
    """`accumulate_batch` in micro-batches of 1, 3 and by tokens against `step_bce_loss` on the padded batch."""
    rows = [{"prompt": f"q{i} " * (1 + i % 3), "completions": [f"{k} ok" for k in range(1 + i % 3)],
             "labels": [k != 1 for k in range(1 + i % 3)]} for i in range(5)]
    model = RewardModel.from_backbone(str(tiny_model_dir), "prm", device="cpu")
    torch.manual_seed(0)
    torch.nn.init.normal_(model.head.weight, std=0.5)  # a zero head passes no gradient to the backbone
    encoded = [model.encode(r["prompt"], r["completions"]) for r in rows]
    targets = [step_targets(r, "prm", "hard") for r in rows]
    batch = model.collate(encoded)
    width = batch["step_mask"].shape[1]
    target = torch.tensor([t + [0.0] * (width - len(t)) for t, _ in targets])
    model.zero_grad()
    expected_loss = step_bce_loss(model(**batch), target, batch["step_mask"])
    expected_loss.backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters()}
    longest = max(len(ids) for ids, _ in encoded)
    for micro, tokens in [(1, 0), (3, 0), (5, 2 * longest)]:
        model.zero_grad()
        cfg = PRMConfig(micro_batch_size=micro, micro_batch_tokens=tokens)
        loss = accumulate_batch(model, encoded, targets, cfg, None)
        assert loss == pytest.approx(expected_loss.item(), rel=1e-6)
        for n, p in model.named_parameters():
            torch.testing.assert_close(p.grad, expected[n], rtol=1e-5, atol=1e-6)


def test_micro_batch_config_is_checked():
    with pytest.raises(ValueError, match="micro_batch_size"):
        PRMConfig(micro_batch_size=0)
    with pytest.raises(ValueError, match="micro_batch_tokens"):
        PRMConfig(micro_batch_tokens=-1)
