"""Training options every trainer shares: precision, gradient checkpointing, token-budget micro-batches, LoRA."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from reasonloop.algorithms.common import OptimConfig, make_optimizer
from reasonloop.algorithms.sft import TrainConfig, fit, micro_batches
from reasonloop.models import precision
from reasonloop.models.lora import LoRAConfig, load_trainable, merged
from reasonloop.models.policy import (
    ModelConfig,
    checkpointing_layers,
    enable_gradient_checkpointing,
    load_model,
)

PAIRS = [(f"{a}+{b}=", str(a + b) + " because " + "x" * (a % 5)) for a in range(6) for b in range(2)]


def _cfg(**kw):
    base = {"max_steps": 2, "batch_size": 12, "micro_batch_size": 12, "forward": "hf",
            "optim": OptimConfig(lr=1e-2, schedule="constant")}
    return TrainConfig(**{**base, **kw})


def _train(tiny_model_dir, model_kw=None, **train_kw):
    torch.manual_seed(0)
    model, tok = load_model(ModelConfig(path=str(tiny_model_dir), use_chat_template=False, **(model_kw or {})),
                            for_training=True)
    optimizer = make_optimizer(model.parameters(), _cfg(**train_kw).optim)
    fit(model, tok, PAIRS, _cfg(**train_kw), use_chat_template=False, optimizer=optimizer)
    return model, optimizer


def _loss_and_grads(model, tok):
    from reasonloop.algorithms.common import encode_pairs, sft_loss
    from reasonloop.models.logprobs import collate, token_logprobs

    batch = collate(encode_pairs(tok, PAIRS, use_chat_template=False), tok.pad_token_id)
    model.zero_grad()
    with precision.autocast(model):
        loss = sft_loss(token_logprobs(model, batch["input_ids"], batch["attention_mask"])[0], batch["loss_mask"])
        loss.backward()
    return loss.item(), torch.cat([p.grad.flatten() for p in model.parameters()])


def test_mixed_bf16_matches_fp32_and_keeps_float32_master_weights(tiny_model_dir, monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)  # autocast on, whatever this CPU has
    fp32, tok = load_model(ModelConfig(path=str(tiny_model_dir)), for_training=True)
    mixed, _ = load_model(ModelConfig(path=str(tiny_model_dir), precision="mixed_bf16"), for_training=True)
    (loss32, grad32), (loss16, grad16) = _loss_and_grads(fp32, tok), _loss_and_grads(mixed, tok)
    assert grad16.dtype == torch.float32  # gradients land on the float32 master weights
    assert abs(loss16 - loss32) < 0.02 * loss32
    assert torch.nn.functional.cosine_similarity(grad16, grad32, dim=0) > 0.99
    assert (grad16 - grad32).norm() < 0.1 * grad32.norm()
    with precision.autocast(mixed):  # the forward really runs in bf16
        assert mixed.model.layers[0].self_attn.q_proj(torch.ones(1, mixed.config.hidden_size)).dtype == torch.bfloat16
    # a whole fit() step: weights and AdamW state stay float32, and the loss it reaches matches fp32's
    ref, _ = _train(tiny_model_dir)
    trained, optimizer = _train(tiny_model_dir, {"precision": "mixed_bf16"})
    assert all(p.dtype == torch.float32 for p in trained.parameters())
    assert all(v.dtype == torch.float32 for s in optimizer.state.values() for v in s.values() if v.dim() > 0)
    (after32, _), (after16, _) = _loss_and_grads(ref, tok), _loss_and_grads(trained, tok)
    assert after32 < loss32 - 0.1 and abs(after16 - after32) < 0.03 * after32


def test_mixed_bf16_is_float32_maths_on_a_cpu_without_native_bf16(tiny_model_dir, monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    model, _ = load_model(ModelConfig(path=str(tiny_model_dir), precision="mixed_bf16"), for_training=True)
    with precision.autocast(model):
        assert model.lm_head(torch.ones(1, model.config.hidden_size)).dtype == torch.float32


def test_pure_bf16_holds_weights_and_adam_state_in_bf16(tiny_model_dir):
    model, optimizer = _train(tiny_model_dir, {"precision": "pure_bf16"}, max_steps=1)
    assert all(p.dtype == torch.bfloat16 for p in model.parameters())
    assert all(v.dtype == torch.bfloat16 for s in optimizer.state.values() for k, v in s.items() if k != "step")


def test_bf16_dtype_for_training_must_say_which_precision(tiny_model_dir):
    with pytest.raises(ValueError, match="model.precision=mixed_bf16"):
        load_model(ModelConfig(path=str(tiny_model_dir), dtype="bfloat16"), for_training=True)


def test_gradient_checkpointing_and_token_budget_train_to_the_same_weights(tiny_model_dir):
    ref, _ = _train(tiny_model_dir)
    checkpointed, _ = _train(tiny_model_dir, {"gradient_checkpointing": True}, micro_batch_tokens=40)
    assert checkpointing_layers(checkpointed.train())
    for (name, p), q in zip(ref.named_parameters(), checkpointed.parameters()):
        assert torch.allclose(p, q, atol=2e-5), name


def test_micro_batches_respect_rows_and_tokens():
    assert micro_batches([1, 2, 3, 4, 5], max_rows=2) == [[0, 1], [2, 3], [4]]
    assert micro_batches([4, 4, 4, 30, 5], max_rows=8, max_tokens=12) == [[0, 1, 2], [3], [4]]


def test_lora_checkpoint_reloads_as_adapter_and_final_merges(tiny_model_dir, tmp_path):
    model_cfg = ModelConfig(path=str(tiny_model_dir), use_chat_template=False)
    model, tok = load_trainable(model_cfg, LoRAConfig(r=4))
    fit(model, tok, PAIRS, _cfg(max_steps=1, optim=OptimConfig(lr=5e-2)), use_chat_template=False)
    model.save_pretrained(tmp_path / "ckpt")  # a checkpoint: the adapter only
    assert (tmp_path / "ckpt" / "adapter_model.safetensors").exists()
    again, _ = load_trainable(model_cfg, LoRAConfig(r=4), tmp_path / "ckpt")
    ids = torch.tensor([tok("1+2=3 because")["input_ids"]])
    model.eval(), again.eval()
    with torch.no_grad():
        expected = model(input_ids=ids).logits
        assert torch.allclose(again(input_ids=ids).logits, expected, atol=1e-5)
        with again.disable_adapter():  # the reference of DPO/GRPO KL: the base, no copy
            base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
            assert torch.allclose(again(input_ids=ids).logits, base(input_ids=ids).logits, atol=1e-5)
        merged(model).save_pretrained(tmp_path / "final")
        plain = AutoModelForCausalLM.from_pretrained(str(tmp_path / "final"))  # no peft needed
        assert torch.allclose(plain(input_ids=ids).logits, expected, atol=1e-4)


@pytest.mark.parametrize("forward", ["hf", "packed"])
def test_gradient_checkpointing_in_the_completion_logprobs_path_keeps_values_and_gradients(forward, monkeypatch):
    import sys

    from reasonloop.models.logprobs import completion_logprobs

    sys.path.insert(0, "tests")
    from hf_models import MODELS

    contexts, completions = [[1, 5, 6, 7], [1, 5, 6, 7], [1, 8, 9]], [[10, 11, 12], [10, 13], [14, 15, 16, 17]]
    import torch.utils.checkpoint as ckpt

    calls, real = [], ckpt.checkpoint
    monkeypatch.setattr(ckpt, "checkpoint", lambda *a, **k: calls.append(1) or real(*a, **k))
    results = []
    for checkpointing in (False, True):
        model = MODELS["qwen2-gqa-qkv-bias"]().train()
        if checkpointing:
            enable_gradient_checkpointing(model)
        logprobs, _ = completion_logprobs(model, contexts, completions, 0, forward=forward)
        mask = torch.tensor([[t < len(x) for t in range(4)] for x in completions])  # entries past a completion: any
        (logprobs * mask).sum().backward()
        results.append((logprobs[mask], model.model.layers[0].mlp.up_proj.weight.grad))
    (a, ga), (b, gb) = results
    assert forward == "hf" or len(calls) == 2  # packed: both layers ran checkpointed (HF checkpoints by its own import)
    assert torch.allclose(a, b, atol=1e-5) and torch.allclose(ga, gb, atol=1e-5)
