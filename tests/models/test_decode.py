"""The bare KV-cache forward (`models/decode.py`, over `models/llama.py`) against the HF modules."""

import pytest
import torch
from hf_models import MODELS, PROMPTS, TOK, left_padded  # tests/hf_models.py

from reasonloop.models import decode
from reasonloop.models.decode import StaticKVCache
from reasonloop.models.llama import LlamaWeights, unsupported_reason


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("fuse", [True, False])
def test_bare_logits_equal_hf_prefill_and_decode(name, fuse):
    model = MODELS[name]()
    assert unsupported_reason(model) is None
    contexts = [TOK(p)["input_ids"] for p in PROMPTS]
    ids, mask, pos = left_padded(contexts)  # rows padded by 0 to 36 tokens, per-row positions
    w = LlamaWeights.from_model(model, fuse=fuse)
    steps = 5
    cache = StaticKVCache.empty(w, len(ids), ids.shape[1] + steps, w.embed)
    key_mask = torch.cat([mask.bool(), torch.ones(len(ids), steps, dtype=torch.bool)], 1)
    with torch.no_grad():
        ours = decode.forward(w, cache, ids, pos, key_mask)  # (B, W, V)
        ref = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits
        assert ref[mask.bool()].abs().max() > 1.0  # the logits are not all near zero
        assert torch.allclose(ours[mask.bool()], ref[mask.bool()], atol=1e-5)
        assert torch.isfinite(ours).all()  # padding queries stay finite (no NaN reaches the cache)
        # decode: one token per row against the cache == the last position of a full forward
        gen = torch.Generator().manual_seed(1)
        for t in range(steps):
            tokens = torch.randint(4, len(TOK), (len(ids), 1), generator=gen)
            ids, mask = torch.cat([ids, tokens], 1), torch.cat([mask, torch.ones_like(tokens)], 1)
            pos = (mask.cumsum(-1) - 1).clamp(min=0)
            step = decode.forward(w, cache, tokens, pos[:, -1:], key_mask)[:, -1]
            full = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits[:, -1]
            assert torch.allclose(step, full, atol=1e-5), (t, (step - full).abs().max())


def test_bare_forward_reads_the_live_parameters():
    model = MODELS["llama-gqa-tied"]()
    w = LlamaWeights.from_model(model, fuse=False)
    assert w.embed.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert w.lm_head[0].data_ptr() == model.lm_head.weight.data_ptr() == w.embed.data_ptr()  # tied
    assert w.layers[0].qkv[0][0].data_ptr() == model.model.layers[0].self_attn.q_proj.weight.data_ptr()
    assert w.layers[1].down[0].data_ptr() == model.model.layers[1].mlp.down_proj.weight.data_ptr()


def decode_both_ways(model, fuse: bool, steps: int = 4):
    """Logits of `steps` decode steps through `forward` (one token per row) and through `decode_step`,
    over left-padded rows, fed the same tokens; and both caches."""
    contexts = [TOK(p)["input_ids"] for p in PROMPTS]
    ids, mask, pos = left_padded(contexts)
    w = LlamaWeights.from_model(model, fuse=fuse)
    key_mask = torch.cat([mask.bool(), torch.ones(len(ids), steps, dtype=torch.bool)], 1)
    caches = [StaticKVCache.empty(w, len(ids), ids.shape[1] + steps, w.embed) for _ in range(2)]
    general, lean = [], []
    with torch.no_grad():
        for cache in caches:
            decode.forward(w, cache, ids, pos, key_mask)
        bias = decode.key_bias(key_mask)
        tokens, positions = ids[:, -1], pos[:, -1]
        for step in range(steps):
            positions = positions + 1
            general.append(decode.forward(w, caches[0], tokens[:, None], positions[:, None], key_mask)[:, -1])
            lean.append(decode.decode_step(w, caches[1], tokens, positions, bias))
            tokens = torch.tensor([5 + step, 20, 33, 47])
    return general, lean, caches


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("fuse", [True, False])
def test_decode_step_equals_the_general_forward(name, fuse):
    """`decode_step` (the decode loop's lean form) against `forward`: same logits, same cache."""
    general, lean, caches = decode_both_ways(MODELS[name](), fuse)
    for g, x in zip(general, lean):
        assert torch.allclose(g, x, atol=1e-5)
    for a, b in zip(caches[0].k + caches[0].v, caches[1].k + caches[1].v):
        assert torch.allclose(a[:, :, : caches[0].length], b[:, :, : caches[1].length], atol=1e-5)


@pytest.mark.parametrize("name", list(MODELS))
def test_decode_step_in_bf16_stays_in_bf16_and_is_as_close_as_the_general_forward(name):
    """In bf16 the float32 mask bias must not leak its dtype into the attention (it once made the
    value matmul fail). Both paths are measured against the float32 model: bf16 alone puts them
    0.2-0.45 off on logits of magnitude ~8; the lean path must not be worse than 1.5x the general one."""
    reference, _, _ = decode_both_ways(MODELS[name](), fuse=False)
    general, lean, _ = decode_both_ways(MODELS[name]().to(torch.bfloat16), fuse=False)
    for ref, g, x in zip(reference, general, lean):
        assert g.dtype == x.dtype == torch.bfloat16
        assert (x.float() - ref).abs().max() <= 1.5 * (g.float() - ref).abs().max() + 0.05


