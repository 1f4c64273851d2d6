"""The engine's bare decode path (`models/decode.py`) against HF generate and its own HF path, and its fallbacks."""

import pytest
import torch
from hf_models import MODELS, PROMPTS, TOK, build  # tests/hf_models.py
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
)

from reasonloop.models.decode import keep_rows_in_place
from reasonloop.models.llama import unsupported_reason
from reasonloop.rollout.engine import TorchEngine, compact_order
from reasonloop.rollout.sampler import SamplingParams

SIMPLE = {"share_prefill": False, "drop_finished": False, "preallocate_cache": False}


def flat(groups):
    return [s for g in groups for s in g]


def teacher_forced(model, context, completion, temperature):
    """log softmax(logits / T) of each completion token, from one forward pass over the whole text."""
    with torch.no_grad():
        logits = model(torch.tensor([context + completion])).logits[0, len(context) - 1 : -1]  # (T, V)
    return torch.log_softmax(logits / temperature, -1).gather(-1, torch.tensor(completion)[:, None]).squeeze(-1)


def test_keep_rows_in_place_moves_only_what_changes_slot():
    buf = torch.arange(6 * 2 * 5 * 1, dtype=torch.float).view(6, 2, 5, 1)  # (B, H, C, D)
    before = buf.clone()
    done = torch.tensor([False, True, False, True, False, False])
    keep = compact_order(done)
    assert keep.tolist() == [0, 4, 2, 5]  # holes at 1 and 3 filled by the live tail rows 4 and 5, in order
    out = keep_rows_in_place(buf, keep, length=3)
    assert out.data_ptr() == buf.data_ptr() and out.shape == (4, 2, 5, 1)
    assert torch.equal(out[:, :, :3], before[keep][:, :, :3])
    assert torch.equal(out[[0, 2]], before[[0, 2]])  # rows that stay are untouched, all columns
    assert compact_order(torch.tensor([True, True, False])).tolist() == [2]
    assert compact_order(torch.tensor([False, False, True])).tolist() == [0, 1]
    # any order is correct (sources are read before writing), e.g. a reversal
    buf2 = before.clone()
    assert torch.equal(keep_rows_in_place(buf2, torch.tensor([5, 4, 3, 2, 1, 0]), 5), before.flip(0))


@pytest.mark.parametrize("name", list(MODELS))
def test_engine_fast_greedy_equals_hf_generate(name):
    model = MODELS[name]()
    engine = TorchEngine(model, TOK, decode="fast")
    assert engine.decode_path() == "fast"
    groups = engine.generate(PROMPTS, 2, SamplingParams(temperature=0, max_new_tokens=20))
    for prompt, group in zip(PROMPTS, groups):
        ids = engine.encode_context(prompt)
        ref = model.generate(torch.tensor([ids]), max_new_tokens=20, do_sample=False,
                             pad_token_id=TOK.pad_token_id)[0, len(ids):].tolist()
        for s in group:
            assert s.token_ids == ref[: len(s.token_ids)]


def test_default_engine_takes_the_fast_path(model_and_tokenizer):
    assert TorchEngine(*model_and_tokenizer).decode_path() == "fast"


@pytest.mark.parametrize("temperature,top_k,top_p", [(1.0, 0, 1.0), (0.7, 5, 0.9)])
def test_fast_logprobs_match_teacher_forcing(model_and_tokenizer, temperature, top_k, top_p):
    model, tok = model_and_tokenizer
    engine = TorchEngine(model, tok, decode="fast")
    params = SamplingParams(temperature=temperature, top_k=top_k, top_p=top_p, max_new_tokens=20, seed=0)
    for prompt, group in zip(PROMPTS, engine.generate(PROMPTS, 3, params)):
        for s in group:
            ref = teacher_forced(model, engine.encode_context(prompt), s.token_ids, temperature)
            assert torch.allclose(torch.tensor(s.logprobs), ref, atol=1e-4)


@pytest.mark.parametrize("name,eos_scale", [("llama-gqa-tied", 2.0), ("qwen2-gqa-qkv-bias", 1.5)])
def test_seeded_sampling_same_tokens_fast_and_hf(name, eos_scale):
    """Mixed lengths (EOS from the model itself, no hook), row drops every step, split batches."""
    model = MODELS[name]()
    eos_likely(model, eos_scale)
    params = SamplingParams(temperature=1.0, max_new_tokens=40, seed=3)
    fast = flat(TorchEngine(model, TOK, decode="fast", drop_fraction=0.0).generate(PROMPTS, 6, params))
    split = flat(TorchEngine(model, TOK, decode="fast", max_batch_size=5).generate(PROMPTS, 6, params))
    hf = flat(TorchEngine(model, TOK, decode="hf", **SIMPLE).generate(PROMPTS, 6, params))
    assert len({s.num_tokens for s in hf}) > 3 and {"eos", "length"} <= {s.finish_reason for s in hf}
    for x, y, z in zip(fast, split, hf):
        assert x.token_ids == y.token_ids == z.token_ids
        assert x.finish_reason == z.finish_reason
        assert torch.allclose(torch.tensor(x.logprobs), torch.tensor(z.logprobs), atol=1e-5)


def eos_likely(model, scale):
    """Raise EOS's logit through the weights only (a hook would disable the fast path): its
    lm_head row becomes the mean direction of the model's final hidden states, times `scale`."""
    ids = torch.tensor([TOK(PROMPTS[1])["input_ids"]])
    with torch.no_grad():
        direction = model.model(input_ids=ids).last_hidden_state[0].mean(0)  # (E,)
        model.lm_head.weight[TOK.eos_token_id] = direction / direction.norm() * scale


# --- fallback

UNSUPPORTED = {
    "rope scaling by length": lambda: build(LlamaForCausalLM, LlamaConfig,
                                            rope_parameters={"rope_type": "dynamic", "factor": 2.0,
                                                             "rope_theta": 10000.0}),
    "gelu MLP": lambda: build(LlamaForCausalLM, LlamaConfig, hidden_act="gelu"),
    "not a Llama": lambda: GPT2LMHeadModel(GPT2Config(vocab_size=len(TOK), n_embd=32, n_layer=1, n_head=2,
                                                      n_positions=256, eos_token_id=TOK.eos_token_id)).eval(),
}


@pytest.mark.parametrize("name", list(UNSUPPORTED))
def test_unsupported_configs_fall_back(name):
    model = UNSUPPORTED[name]()
    reason = unsupported_reason(model)
    assert reason is not None
    engine = TorchEngine(model, TOK)
    assert engine.decode_path() == "hf"
    with pytest.raises(ValueError, match="decode='fast' is not available"):
        TorchEngine(model, TOK, decode="fast")
    # and the fallback samples correctly: greedy == HF generate
    groups = engine.generate(PROMPTS[:2], 1, SamplingParams(temperature=0, max_new_tokens=8))
    for prompt, group in zip(PROMPTS, groups):
        ids = engine.encode_context(prompt)
        ref = model.generate(torch.tensor([ids]), max_new_tokens=8, do_sample=False,
                             pad_token_id=TOK.pad_token_id)[0, len(ids):].tolist()
        assert group[0].token_ids == ref[: len(group[0].token_ids)]


def test_hooks_and_wrapped_linears_fall_back_per_call():
    model = MODELS["llama-gqa-tied"]()
    engine = TorchEngine(model, TOK)
    forced = TorchEngine(model, TOK, decode="fast")
    handle = model.model.layers[1].mlp.register_forward_hook(lambda m, i, o: o)
    try:
        assert "forward hooks on model.layers.1.mlp" in unsupported_reason(model)
        assert engine.decode_path() == "hf"
        with pytest.raises(ValueError, match="forward hooks"):
            forced.generate(PROMPTS[:1], 1, SamplingParams(max_new_tokens=2))
    finally:
        handle.remove()
    assert engine.decode_path() == "fast"

    class LoraLinear(torch.nn.Linear):  # stands in for peft / quantised wrappers
        pass

    old = model.model.layers[0].self_attn.q_proj
    model.model.layers[0].self_attn.q_proj = LoraLinear(old.in_features, old.out_features, bias=False)
    assert "LoraLinear, not a plain nn.Linear" in unsupported_reason(model)
    assert engine.decode_path() == "hf"


def test_decode_option_is_validated(model_and_tokenizer):
    with pytest.raises(ValueError, match="decode must be 'auto', 'fast' or 'hf', got 'bare'"):
        TorchEngine(*model_and_tokenizer, decode="bare")
    assert TorchEngine(*model_and_tokenizer, decode="hf").decode_path() == "hf"


@pytest.mark.parametrize("name", ["llama-gqa-tied", "qwen2-gqa-qkv-bias"])
def test_shared_decode_slots_give_the_unshared_samples(name):
    """`share_decode`: at a low temperature a prompt's samples agree on long prefixes, split,
    finish at different times (EOS, a stop string, the length cap), so slots are shared,
    split, and compacted; the samples equal the one-slot-per-row path and HF's, token for token."""
    model = MODELS[name]()
    eos_likely(model, 1.5)
    params = SamplingParams(temperature=0.1, max_new_tokens=30, seed=5, stop=["z"])
    shared = flat(TorchEngine(model, TOK, decode="fast").generate(PROMPTS, 8, params))
    per_row = flat(TorchEngine(model, TOK, decode="fast", share_decode=False).generate(PROMPTS, 8, params))
    hf = flat(TorchEngine(model, TOK, decode="hf", **SIMPLE).generate(PROMPTS, 8, params))
    prefixes = {(s.prompt, tuple(s.token_ids[: t + 1])) for s in shared for t in range(s.num_tokens)}
    assert len(prefixes) < 0.75 * sum(s.num_tokens for s in shared)  # the rows really shared slots
    assert len({s.num_tokens for s in shared}) > 3
    for x, y, z in zip(shared, per_row, hf):
        assert x.token_ids == y.token_ids == z.token_ids and x.text == y.text == z.text
        assert x.finish_reason == y.finish_reason == z.finish_reason
        # logprobs of logits / 0.1 magnify float rounding tenfold: the 1e-4 contract of the sampler
        for other in (y, z):
            assert torch.allclose(torch.tensor(x.logprobs), torch.tensor(other.logprobs), atol=1e-4)
