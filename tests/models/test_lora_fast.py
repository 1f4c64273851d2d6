"""LoRA on the bare forwards: the packed training pass and the KV-cache decode equal peft's own forward."""

import pytest
import torch
from hf_models import MODELS, PROMPTS, TOK  # tests/hf_models.py
from peft import LoraConfig, get_peft_model

from reasonloop.models.forward import decode_path, training_path
from reasonloop.models.llama import unsupported_reason
from reasonloop.models.logprobs import completion_logprobs
from reasonloop.rollout.engine import TorchEngine
from reasonloop.rollout.sampler import SamplingParams

CONTEXTS = [[1, 5, 6, 7], [1, 5, 6, 7], [1, 8, 9]]
COMPLETIONS = [[10, 11, 12, 13], [10, 11, 14], [15, 16, 17, 18]]


def lora_model(name: str, targets=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")):
    model = get_peft_model(MODELS[name](), LoraConfig(r=4, lora_alpha=8, target_modules=list(targets)))
    torch.manual_seed(1)
    with torch.no_grad():  # B starts at 0 in peft: make the adapters matter
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.3)
    return model


@pytest.mark.parametrize("name", list(MODELS))
def test_packed_forward_with_lora_equals_peft_values_and_adapter_gradients(name):
    model = lora_model(name).train()
    assert unsupported_reason(model) is None and training_path(model) == "packed"
    mask = torch.tensor([[t < len(x) for t in range(4)] for x in COMPLETIONS])
    grads = []
    for forward in ("packed", "hf"):
        model.zero_grad()
        logprobs, _ = completion_logprobs(model, CONTEXTS, COMPLETIONS, TOK.pad_token_id, forward=forward)
        (logprobs * mask).sum().backward()
        grads.append((logprobs[mask].detach(), {n: p.grad.clone() for n, p in model.named_parameters()
                                                if p.requires_grad}))
    (packed, g_packed), (hf, g_hf) = grads
    assert torch.allclose(packed, hf, atol=1e-5)
    assert g_packed.keys() == g_hf.keys() and all("lora_" in n for n in g_hf)
    for n in g_hf:
        assert torch.allclose(g_packed[n], g_hf[n], rtol=1e-4, atol=1e-5), n  # gradients of size ~10
    with torch.no_grad(), model.disable_adapter():  # the KL / DPO reference: adapters off, on the packed path
        off, _ = completion_logprobs(model, CONTEXTS, COMPLETIONS, TOK.pad_token_id, forward="packed")
        base, _ = completion_logprobs(model.get_base_model(), CONTEXTS, COMPLETIONS, TOK.pad_token_id, forward="hf")
    assert torch.allclose(off[mask], base[mask], atol=1e-5) and not torch.allclose(off[mask], packed, atol=1e-3)


@pytest.mark.parametrize("name", list(MODELS))
def test_fast_decode_with_lora_equals_the_hf_path(name):
    model = lora_model(name).eval()
    assert decode_path(model) == "fast"
    params = SamplingParams(temperature=0, max_new_tokens=12)
    fast = TorchEngine(model, TOK, decode="fast").generate(PROMPTS, 1, params)
    hf = TorchEngine(model, TOK, decode="hf").generate(PROMPTS, 1, params)
    for (f,), (h,) in zip(fast, hf):
        assert f.token_ids == h.token_ids
        assert torch.allclose(torch.tensor(f.logprobs), torch.tensor(h.logprobs), atol=1e-4)


def test_lora_dropout_while_training_falls_back():
    model = get_peft_model(MODELS["llama-gqa-tied"](), LoraConfig(r=4, lora_dropout=0.1, target_modules=["q_proj"]))
    assert "LoRA dropout while training" in unsupported_reason(model.train())
    assert unsupported_reason(model.eval()) is None  # no dropout at sampling time
