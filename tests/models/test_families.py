"""Families beyond Llama/Qwen2 on the bare paths, sliding windows, and the one-line fallback.

The three family models of `hf_models.MODELS` (Llama 3.x rotary, Qwen3 q/k norms, Mistral with a
window longer than the sequences) run through every equality test of test_decode.py,
test_packed.py and the engine's fast path; here: the other static rotary types, Mistral without
a window, windows shorter than the sequences, and what falls back.
"""

import pytest
import torch
from hf_models import MODELS, PROMPTS, TOK, build, left_padded
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
)

from reasonloop.models import decode, forward
from reasonloop.models.forward import decode_path, training_path
from reasonloop.models.llama import LlamaWeights, unsupported_reason, window_reason
from reasonloop.models.logprobs import completion_logprobs, pad_completions
from reasonloop.rollout.engine import TorchEngine
from reasonloop.rollout.sampler import SamplingParams

EXTRA = {
    "llama-linear-rope": lambda: build(LlamaForCausalLM, LlamaConfig, rope_parameters={
        "rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0}),
    "llama-yarn-rope": lambda: build(LlamaForCausalLM, LlamaConfig, num_key_value_heads=2, rope_parameters={
        "rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32, "rope_theta": 10000.0}),
    "mistral-no-window": lambda: build(MistralForCausalLM, MistralConfig, num_key_value_heads=1, sliding_window=None),
}
CONTEXTS = [[1, 10, 11, 12, 13, 14], [1, 20, 21], [1, 10, 11, 12, 13, 14]]
COMPLETIONS = [[30, 31, 32, 2], [40, 41], [30, 33, 2]]


@pytest.mark.parametrize("name", list(EXTRA))
def test_bare_prefill_and_decode_equal_hf(name):
    model = EXTRA[name]()
    assert unsupported_reason(model) is None
    if name == "llama-yarn-rope":
        assert model.model.rotary_emb.attention_scaling != 1.0  # cos/sin are scaled: the test sees it
    ids, mask, pos = left_padded([TOK(p)["input_ids"] for p in PROMPTS])
    w = LlamaWeights.from_model(model, fuse=False)
    cache = decode.StaticKVCache.empty(w, len(ids), ids.shape[1] + 1, w.embed)
    key_mask = torch.cat([mask.bool(), torch.ones(len(ids), 1, dtype=torch.bool)], 1)
    with torch.no_grad():
        ours = decode.forward(w, cache, ids, pos, key_mask)  # (B, W, V)
        ref = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits
        assert torch.allclose(ours[mask.bool()], ref[mask.bool()], atol=1e-5)
        token = torch.full((len(ids), 1), 7)
        step = decode.decode_step(w, cache, token[:, 0], pos[:, -1] + 1, decode.key_bias(key_mask))  # (B, V)
        full = model(input_ids=torch.cat([ids, token], 1), attention_mask=torch.cat([mask, torch.ones_like(token)], 1),
                     position_ids=torch.cat([pos, pos[:, -1:] + 1], 1)).logits[:, -1]
        assert torch.allclose(step, full, atol=1e-5)


@pytest.mark.parametrize("name", list(EXTRA))
def test_packed_values_and_gradients_equal_hf(name):
    model = EXTRA[name]().train()
    _, mask = pad_completions([[0.0] * len(x) for x in COMPLETIONS])
    results = []
    for path in ("hf", "packed"):
        model.zero_grad()
        logprobs, _ = completion_logprobs(model, CONTEXTS, COMPLETIONS, pad_id=0, forward=path)
        (logprobs * mask).sum().backward()
        results.append((logprobs.detach() * mask, {n: p.grad.clone() for n, p in model.named_parameters()}))
    (lp_hf, g_hf), (lp_packed, g_packed) = results
    assert torch.allclose(lp_hf, lp_packed, atol=1e-5)
    for n, g in g_hf.items():
        assert g.abs().sum() > 0, n
        assert (g - g_packed[n]).abs().max() <= 1e-5 * g.abs().max(), n


def test_a_window_shorter_than_the_sequences_falls_back():
    model = build(MistralForCausalLM, MistralConfig, num_key_value_heads=2, sliding_window=8)
    assert unsupported_reason(model) is None  # the model itself is supported...
    assert window_reason(model.config, 8) is None and "sliding-window attention (8 tokens)" in window_reason(
        model.config, 9)  # ...while every sequence fits in its window (query i sees key j iff i - j < 8)
    assert decode_path(model, length=8) == "fast" and decode_path(model, length=9) == "hf"
    assert training_path(model, length=8) == "packed" and training_path(model, length=9) == "hf"
    with pytest.raises(ValueError, match="forward='packed' is not available.*sliding-window"):
        completion_logprobs(model, CONTEXTS, COMPLETIONS, pad_id=0, forward="packed")  # 8 input tokens + 1
    # the fallback is the windowed HF maths: greedy samples equal HF generate's
    engine = TorchEngine(model, TOK)
    prompt = PROMPTS[1]  # 36 tokens
    params = SamplingParams(temperature=0, max_new_tokens=6)
    assert engine.decode_path(len(engine.encode_context(prompt)) + 6) == "hf"
    ids = engine.encode_context(prompt)
    ref = model.generate(torch.tensor([ids]), max_new_tokens=6, do_sample=False,
                         pad_token_id=TOK.pad_token_id)[0, len(ids):].tolist()
    sample = engine.generate([prompt], 1, params)[0][0]
    assert sample.token_ids == ref[: len(sample.token_ids)]
    with pytest.raises(ValueError, match="decode='fast' is not available.*sliding-window"):
        TorchEngine(model, TOK, decode="fast").generate([prompt], 1, params)


def test_other_architectures_fall_back_with_one_line(monkeypatch, capsys):
    monkeypatch.setattr(forward, "_logged", set())
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(TOK), n_embd=32, n_layer=1, n_head=2, n_positions=256,
                                       bos_token_id=TOK.bos_token_id, eos_token_id=TOK.eos_token_id)).eval()
    engine = TorchEngine(model, TOK)
    for _ in range(2):
        assert engine.decode_path() == "hf"
        engine.generate(PROMPTS[:1], 2, SamplingParams(max_new_tokens=3, seed=0))
        assert training_path(model) == "hf"
        completion_logprobs(model, CONTEXTS, COMPLETIONS, pad_id=0)
    lines = [line for line in capsys.readouterr().err.splitlines() if "Hugging Face modules" in line]
    assert lines == [("GPT2LMHeadModel runs through its Hugging Face modules, not the bare Llama-family forward: "
                      "model_type 'gpt2' is not one of ['llama', 'mistral', 'qwen2', 'qwen3']")]


def test_family_models_take_the_bare_paths():
    for name in ("llama3-rope", "qwen3-qk-norm", "mistral-window-64"):
        model = MODELS[name]()
        assert decode_path(model, length=64) == "fast" and training_path(model, length=64) == "packed", name
    assert decode_path(MODELS["mistral-window-64"](), length=65) == "hf"
