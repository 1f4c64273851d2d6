"""SFT: packing is exact, partial-solution EOS handling, JSONL field mapping, LoRA, resume."""

import json

import pytest
import torch

from reasonloop.algorithms.common import OptimConfig
from reasonloop.algorithms.sft import (
    LoRAConfig,
    SFTConfig,
    TrainConfig,
    collate_packed,
    encode_examples,
    fit,
    load_pairs,
    main,
    pack_examples,
)
from reasonloop.models.logprobs import collate, token_logprobs
from reasonloop.models.policy import ModelConfig, load_model
from reasonloop.store.jsonl import RecordError, write_jsonl
from reasonloop.types import Sample


def test_pack_examples_next_fit():
    assert pack_examples([3, 4, 2, 6, 1], max_length=7) == [[0, 1], [2], [3, 4]]
    assert pack_examples([9, 1], max_length=7) == [[0], [1]]  # too long: a row of its own
    assert pack_examples([], max_length=7) == []


def test_collate_packed_masks_by_hand():
    b = collate_packed([[([1, 2], [3]), ([4], [5, 6])]], pad_id=0)
    assert b["input_ids"].tolist() == [[1, 2, 3, 4, 5, 6]]
    assert b["position_ids"].tolist() == [[0, 1, 2, 0, 1, 2]]
    # position t predicts token t+1: tokens 3 (t=1), 5 (t=3), 6 (t=4); never across examples (t=2)
    assert b["loss_mask"].tolist() == [[0, 1, 0, 1, 1]]
    mask = b["attention_mask"][0, 0].int().tolist()
    assert mask[3] == [0, 0, 0, 1, 0, 0]  # first token of example 2 sees only itself
    assert mask[2] == [1, 1, 1, 0, 0, 0]


def test_packed_logprobs_equal_unpacked(tiny_model_dir):
    model, _ = load_model(ModelConfig(path=str(tiny_model_dir)))
    examples = [([1, 5, 6], [7, 8]), ([1, 9], [10, 11, 12]), ([1, 4], [4])]
    batch = collate_packed([examples], pad_id=0)
    packed, _ = token_logprobs(model, batch["input_ids"], batch["attention_mask"],
                               position_ids=batch["position_ids"])  # (1, T-1)
    got = packed[0][collate_packed([examples], pad_id=0)["loss_mask"][0].bool()]
    want = []
    for e in examples:
        t = collate([e], pad_id=0)
        lp, _ = token_logprobs(model, t["input_ids"], t["attention_mask"])
        want.append(lp[0][t["loss_mask"][0].bool()])
    assert torch.allclose(got, torch.cat(want), atol=1e-5)


def test_encode_examples_eos_flags(tiny_model_dir):
    _, tok = load_model(ModelConfig(path=str(tiny_model_dir)))
    full, partial = encode_examples(tok, [("1+1", "2"), ("1+1", "2")], eos=[True, False])
    assert full[1][-1] == tok.eos_token_id and partial[1] == full[1][:-1]
    with pytest.raises(ValueError):
        encode_examples(tok, [("a", "b")], eos=[True, False])


def test_load_pairs_field_mapping_and_errors(tmp_path):
    plain = tmp_path / "plain.jsonl"
    plain.write_text(json.dumps({"question": "Q1", "rationale": "R1"}) + "\n" + json.dumps({"question": "Q2"}) + "\n")
    with pytest.raises(RecordError, match=r"plain.jsonl:2: missing field 'rationale'"):
        load_pairs(plain, prompt_field="question", completion_field="rationale")
    plain.write_text(json.dumps({"question": "Q1", "rationale": "R1"}) + "\n")
    assert load_pairs(plain, prompt_field="question", completion_field="rationale") == [("Q1", "R1")]
    samples = tmp_path / "samples.jsonl"
    write_jsonl(samples, [Sample("p", "Q", "good", rewards={"correct": 1.0}), Sample("p", "Q", "bad", rewards={"correct": 0.0})])
    assert load_pairs(samples) == [("Q", "good")]
    assert len(load_pairs(samples, only_correct=False)) == 2


def test_fit_packing_and_accumulation_train(tiny_model_dir):
    model, tok = load_model(ModelConfig(path=str(tiny_model_dir)), for_training=True)
    before = [p.detach().clone() for p in model.parameters()]
    pairs = [(f"{i}+1=", str(i + 1)) for i in range(12)]
    cfg = TrainConfig(max_steps=2, batch_size=4, micro_batch_size=2, packing=True, max_length=64)
    out = fit(model, tok, pairs, cfg, use_chat_template=False)
    assert out["steps"] == 2 and out["loss_last"] == out["loss_last"]  # finite (not NaN)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_fit_packed_forward_takes_the_padded_forwards_steps(tiny_model_dir):
    """`train.forward=packed` (padding-free trie forward) and "hf" (padded) train to the same weights:
    pairs of different lengths, shared prompts, accumulation over micro-batches, 3 AdamW steps."""
    pairs = [(f"{i % 3}+{i}=", str(i + i % 3) + " ok" * (i % 4)) for i in range(12)]
    weights, losses = [], []
    for forward in ("hf", "packed"):
        model, tok = load_model(ModelConfig(path=str(tiny_model_dir)), for_training=True)
        cfg = TrainConfig(max_steps=3, batch_size=6, micro_batch_size=3, max_length=64, forward=forward,
                          optim=OptimConfig(lr=1e-2))
        out = fit(model, tok, pairs, cfg, use_chat_template=False)
        weights.append([p.detach().clone() for p in model.parameters()])
        losses.append((out["loss_first"], out["loss_last"]))
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)
    for a, b in zip(*weights):  # AdamW scales near-zero gradients up: float rounding shows at ~1e-5 of lr 1e-2
        assert torch.allclose(a, b, atol=1e-4)


def _write_data(tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"{i}+2=", "completion": str(i + 2)}) + "\n" for i in range(16)))
    return data


def test_sft_command_resumes_exactly(tiny_model_dir, tmp_path, monkeypatch):
    data = _write_data(tmp_path)
    common = {"model": ModelConfig(path=str(tiny_model_dir), use_chat_template=False), "data": str(data),
                  "output_dir": str(tmp_path), "save_every": 2}
    train = TrainConfig(max_steps=4, batch_size=4, micro_batch_size=4, seed=3)
    full = main(SFTConfig(**common, train=train, run_name="full"))
    # an interrupted run: killed right after the step-2 checkpoint, then resumed to step 4
    from reasonloop.store.runs import RunDir

    class Killed(Exception):
        pass

    mark = RunDir.mark_latest

    def mark_then_kill(self, ckpt, keep_last=0):
        mark(self, ckpt, keep_last)
        if ckpt.name.endswith("000002"):
            raise Killed

    monkeypatch.setattr(RunDir, "mark_latest", mark_then_kill)
    with pytest.raises(Killed):
        main(SFTConfig(**common, train=train, run_name="cut"))
    monkeypatch.setattr(RunDir, "mark_latest", mark)
    resumed = main(SFTConfig(**common, train=train, run_name="cut", resume=True))
    assert resumed["steps"] == 2
    a, _ = load_model(ModelConfig(path=str(tmp_path / "full" / "final")))
    b, _ = load_model(ModelConfig(path=str(tmp_path / "cut" / "final")))
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.allclose(p, q, atol=1e-6)
    assert full["steps"] == 4


def test_sft_lora_trains_adapters_and_merges(tiny_model_dir, tmp_path):
    data = _write_data(tmp_path)
    cfg = SFTConfig(model=ModelConfig(path=str(tiny_model_dir), use_chat_template=False), data=str(data),
                    output_dir=str(tmp_path), run_name="lora", lora=LoRAConfig(r=4, alpha=8),
                    train=TrainConfig(max_steps=2, batch_size=4, micro_batch_size=4, optim=_fast_optim()))
    main(cfg)
    base, _ = load_model(ModelConfig(path=str(tiny_model_dir)))
    merged, _ = load_model(ModelConfig(path=str(tmp_path / "lora" / "final")))
    changed = {n for (n, p), (_, q) in zip(base.named_parameters(), merged.named_parameters()) if not torch.equal(p, q)}
    assert changed and all("proj" in n and "mlp" not in n for n in changed)  # only attention projections moved


def _fast_optim():
    from reasonloop.algorithms.common import OptimConfig

    return OptimConfig(lr=1e-2, schedule="constant")
