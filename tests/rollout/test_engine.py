"""TorchEngine against Hugging Face `generate` and a teacher-forced forward pass."""

import math

import pytest
import torch

from reasonloop.rollout.engine import TorchEngine, _StopChecker, pick_tokens, process_logits, row_uniforms
from reasonloop.rollout.sampler import Sampler, SamplingParams

PROMPTS = ["1+2=", "Compute left to right: 37 + 5 - 8 * 3", "x", "What is 12 * 12?"]

SIMPLE = {"share_prefill": False, "drop_finished": False, "preallocate_cache": False}
"""every optimisation off: one prefill per row, finished rows stay, DynamicCache"""


def teacher_forced(model, context, completion, temperature):
    """log softmax(logits / T) of each completion token, from one forward pass over the whole text."""
    ids = torch.tensor([context + completion])
    with torch.no_grad():
        logits = model(ids).logits[0, len(context) - 1 : -1]  # (T, V)
    logp = torch.log_softmax(logits / temperature, -1)
    return logp.gather(-1, torch.tensor(completion)[:, None]).squeeze(-1)


def flat(groups):
    return [s for g in groups for s in g]


def test_is_a_sampler(model_and_tokenizer):
    assert isinstance(TorchEngine(*model_and_tokenizer), Sampler)


def test_greedy_equals_hf_generate(model_and_tokenizer):
    model, tok = model_and_tokenizer
    engine = TorchEngine(model, tok)
    groups = engine.generate(PROMPTS, 2, SamplingParams(temperature=0, max_new_tokens=24))
    for prompt, group in zip(PROMPTS, groups):
        ids = engine.encode_context(prompt)
        ref = model.generate(torch.tensor([ids]), max_new_tokens=24, do_sample=False,
                             pad_token_id=tok.pad_token_id)[0, len(ids):].tolist()
        for s in group:
            assert s.token_ids == ref[: len(s.token_ids)]
            assert s.finish_reason == ("eos" if s.token_ids[-1] == tok.eos_token_id else "length")
            assert s.text == tok.decode(s.token_ids, skip_special_tokens=True)


@pytest.mark.parametrize("temperature,top_k,top_p", [(1.0, 0, 1.0), (0.7, 5, 1.0), (1.3, 0, 0.8), (0, 0, 1.0)])
def test_logprobs_match_teacher_forcing(model_and_tokenizer, temperature, top_k, top_p):
    model, tok = model_and_tokenizer
    engine = TorchEngine(model, tok)
    params = SamplingParams(temperature=temperature, top_k=top_k, top_p=top_p, max_new_tokens=20, seed=0)
    for prompt, group in zip(PROMPTS, engine.generate(PROMPTS, 3, params)):
        for s in group:
            ref = teacher_forced(model, engine.encode_context(prompt), s.token_ids, temperature or 1.0)
            assert len(s.logprobs) == len(s.token_ids)
            assert torch.allclose(torch.tensor(s.logprobs), ref, atol=1e-4)


def test_seeded_sampling_is_reproducible_and_batch_invariant(model_and_tokenizer):
    model, tok = model_and_tokenizer
    params = SamplingParams(temperature=1.0, max_new_tokens=10, seed=7)
    a = flat(TorchEngine(model, tok).generate(PROMPTS, 4, params))
    b = flat(TorchEngine(model, tok).generate(PROMPTS, 4, params))
    c = flat(TorchEngine(model, tok, max_batch_size=6).generate(PROMPTS, 4, params))  # other batches
    d = flat(TorchEngine(model, tok).generate(PROMPTS, 4, SamplingParams(temperature=1.0, max_new_tokens=10, seed=8)))
    assert [s.token_ids for s in a] == [s.token_ids for s in b] == [s.token_ids for s in c]
    assert [s.token_ids for s in a] != [s.token_ids for s in d]
    assert len({tuple(s.token_ids) for s in a}) == len(a)  # samples of one prompt differ
    torch.manual_seed(0)
    e = flat(TorchEngine(model, tok).generate(PROMPTS, 2, SamplingParams(max_new_tokens=8)))
    torch.manual_seed(0)
    f = flat(TorchEngine(model, tok).generate(PROMPTS, 2, SamplingParams(max_new_tokens=8)))
    assert [s.token_ids for s in e] == [s.token_ids for s in f]  # seed=None follows torch's global RNG


@pytest.mark.parametrize("params", [
    SamplingParams(temperature=1.0, max_new_tokens=30, seed=3),
    SamplingParams(temperature=0.8, top_p=0.9, top_k=20, max_new_tokens=30, seed=4),
    SamplingParams(temperature=0, max_new_tokens=40),
])
def test_optimised_paths_equal_the_simple_path(model_and_tokenizer, eos_biased, params):
    model, tok = model_and_tokenizer
    eos_biased(2.0)  # mixed lengths, so rows finish (and are dropped) at different steps
    fast = flat(TorchEngine(model, tok, drop_fraction=0.0).generate(PROMPTS, 5, params))
    default = flat(TorchEngine(model, tok).generate(PROMPTS, 5, params))
    simple = flat(TorchEngine(model, tok, **SIMPLE).generate(PROMPTS, 5, params))
    if not params.greedy:
        assert len({s.num_tokens for s in simple}) > 3  # the lengths really are mixed
        assert "eos" in {s.finish_reason for s in simple}
    for x, y, z in zip(fast, default, simple):
        assert x.token_ids == y.token_ids == z.token_ids
        assert x.finish_reason == y.finish_reason == z.finish_reason
        assert torch.allclose(torch.tensor(x.logprobs), torch.tensor(z.logprobs), atol=1e-5)
        assert torch.allclose(torch.tensor(y.logprobs), torch.tensor(z.logprobs), atol=1e-5)


def test_token_budget_splits_batches_without_changing_results(model_and_tokenizer, eos_biased):
    model, tok = model_and_tokenizer
    eos_biased(3.0)
    params = SamplingParams(temperature=1.0, max_new_tokens=24, seed=11)
    engine = TorchEngine(model, tok, max_batch_tokens=100)  # ~2 rows per batch
    batches = list(engine._batches([(i, j) for i in range(4) for j in range(3)],
                                   [engine.encode_context(p) for p in PROMPTS], 24))
    assert len(batches) > 4 and all(len(b) * 24 <= 100 for b in batches)
    small = flat(engine.generate(PROMPTS, 3, params))
    big = flat(TorchEngine(model, tok).generate(PROMPTS, 3, params))
    assert [s.token_ids for s in small] == [s.token_ids for s in big]


def test_max_new_tokens_and_eos(model_and_tokenizer, eos_biased):
    model, tok = model_and_tokenizer
    eos_biased(3.0)
    samples = flat(TorchEngine(model, tok).generate(PROMPTS, 6, SamplingParams(max_new_tokens=12, seed=1)))
    for s in samples:
        assert 1 <= s.num_tokens <= 12
        if s.finish_reason == "eos":
            assert s.token_ids[-1] == tok.eos_token_id and tok.eos_token_id not in s.token_ids[:-1]
        else:
            assert s.finish_reason == "length" and s.num_tokens == 12 and tok.eos_token_id not in s.token_ids
    assert {s.finish_reason for s in samples} == {"eos", "length"}


@pytest.mark.parametrize("include", [True, False])
def test_stop_strings(model_and_tokenizer, include):
    model, tok = model_and_tokenizer
    engine = TorchEngine(model, tok)
    base = SamplingParams(temperature=1.0, max_new_tokens=30, seed=5)
    free = flat(engine.generate(PROMPTS, 2, base))
    # a stop string that occurs in the middle of the first sample, and one that never occurs
    text = free[0].text
    stop = text[8:10]
    params = SamplingParams(temperature=1.0, max_new_tokens=30, seed=5, stop=[stop, "\x07never"],
                            include_stop_str=include)
    stopped = flat(engine.generate(PROMPTS, 2, params))
    for f, s in zip(free, stopped):
        k = f.text.find(stop)
        if k < 0:
            assert s.token_ids == f.token_ids and s.finish_reason == f.finish_reason
            continue
        assert s.finish_reason == "stop"
        assert s.text == (f.text[: k + len(stop)] if include else f.text[:k])
        assert s.token_ids == f.token_ids[: s.num_tokens]  # same random stream, cut where it stopped
        covered = len(tok.decode(s.token_ids, skip_special_tokens=True))
        assert covered == (k + len(stop) if include else k + 1)  # char tokenizer: one char per token
    assert stopped[0].finish_reason == "stop"


def test_stop_checker_handles_multibyte_characters(tmp_path):
    from reasonloop.models.tiny import build_tokenizer

    tok = build_tokenizer("byte")
    ids = tok("ab é cd", add_special_tokens=False)["input_ids"]
    assert len(ids) == 8  # "é" is two byte tokens
    checker = _StopChecker(tok, ["é c"], include=True, rows=1)
    results = [checker.step([0], [t]) for t in ids]
    assert checker.text[0] == "ab é cd"
    assert results[6] == {0: (7, 6)} and not any(results[:6])  # stops at the token completing "é c"
    checker = _StopChecker(tok, ["é"], include=False, rows=1)
    results = [checker.step([0], [t]) for t in ids[:5]]
    assert checker.text[0] == "ab é" and not any(results[:4])  # half a character is not text yet
    assert results[4] == {0: (5, 3)}  # excluded stop string: tokens up to its (complete) first char


def test_prefix_continuation_equals_whole_text(model_and_tokenizer):
    model, tok = model_and_tokenizer
    engine = TorchEngine(model, tok)
    greedy = SamplingParams(temperature=0, max_new_tokens=30, step_separator="+")
    whole = engine.generate(PROMPTS, 1, greedy)
    prefixes = [g[0].text[:9] for g in whole]
    cont = engine.generate(PROMPTS, 2, SamplingParams(temperature=0, max_new_tokens=21, step_separator="+"),
                           prefixes=prefixes)
    for w, c, prefix in zip(whole, cont, prefixes):
        for s in c:
            assert prefix + s.text == w[0].text
            assert s.meta["prefix"] == prefix
            assert s.steps == w[0].steps  # steps cover prefix + continuation
    # sampling: logprobs of a continuation are conditioned on prompt + prefix
    sampled = engine.generate(PROMPTS[:2], 2, SamplingParams(max_new_tokens=10, seed=2), prefixes=prefixes[:2])
    for prompt, prefix, group in zip(PROMPTS, prefixes, sampled):
        for s in group:
            ref = teacher_forced(model, engine.encode_context(prompt, prefix), s.token_ids, 1.0)
            assert torch.allclose(torch.tensor(s.logprobs), ref, atol=1e-4)


def test_train_mode_restored_and_weight_updates_seen(model_and_tokenizer):
    model, tok = model_and_tokenizer
    engine = TorchEngine(model, tok)
    params = SamplingParams(temperature=0, max_new_tokens=12)
    before = engine.generate(PROMPTS[:1], 1, params)[0][0].token_ids
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        model.train()
        with torch.no_grad():  # a "training step" that changes the weights in place
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.5)
        after = engine.generate(PROMPTS[:1], 1, params)[0][0].token_ids
        assert model.training  # restored
        model.eval()
        ids = engine.encode_context(PROMPTS[0])
        ref = model.generate(torch.tensor([ids]), max_new_tokens=12, do_sample=False,
                             pad_token_id=tok.pad_token_id)[0, len(ids):].tolist()
        assert after == ref[: len(after)] and after != before
    finally:
        model.load_state_dict(saved)
        model.eval()


# --- pure sampling maths, hand-computed

PROBS = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
LOGITS = PROBS.log()


def test_process_logits_top_k_top_p_temperature():
    kept = lambda x: torch.isfinite(x)[0].tolist()
    assert kept(process_logits(LOGITS, 1.0, 2, 1.0)) == [True, True, False, False]
    # top-p 0.7: mass before tokens = 0, .5, .8, .95 -> keep tokens whose preceding mass < .7
    assert kept(process_logits(LOGITS, 1.0, 0, 0.7)) == [True, True, False, False]
    assert kept(process_logits(LOGITS, 1.0, 0, 0.5)) == [True, False, False, False]
    assert kept(process_logits(LOGITS, 1.0, 0, 0.81)) == [True, True, True, False]
    assert kept(process_logits(LOGITS, 1.0, 3, 0.6)) == [True, True, False, False]
    # temperature 2 flattens: softmax(log p / 2) = sqrt(p) / sum sqrt(p)
    p2 = process_logits(LOGITS, 2.0, 0, 1.0).softmax(-1)
    assert torch.allclose(p2, PROBS.sqrt() / PROBS.sqrt().sum(), atol=1e-6)
    # shuffled vocab order gives the same set
    perm = torch.tensor([2, 0, 3, 1])
    assert kept(process_logits(LOGITS[:, perm], 1.0, 0, 0.7)) == [False, True, False, True]


def test_pick_tokens_inverse_cdf_and_logprob_before_truncation():
    logits = LOGITS.repeat(4, 1)
    u = torch.tensor([0.1, 0.6, 0.85, 0.99])  # cdf: .5 .8 .95 1
    tokens, logp = pick_tokens(logits, SamplingParams(temperature=1.0), uniforms=u)
    assert tokens.tolist() == [0, 1, 2, 3]
    assert torch.allclose(logp, PROBS[0].log(), atol=1e-6)
    # top-p 0.7 renormalises to (.625, .375): u=.6 -> 0, u=.7 -> 1; logprob still log p (pre-truncation)
    tokens, logp = pick_tokens(LOGITS.repeat(2, 1), SamplingParams(top_p=0.7), uniforms=torch.tensor([0.6, 0.7]))
    assert tokens.tolist() == [0, 1]
    assert torch.allclose(logp, torch.tensor([math.log(0.5), math.log(0.3)]), atol=1e-6)
    tokens, logp = pick_tokens(logits, SamplingParams(temperature=0))
    assert tokens.tolist() == [0] * 4 and torch.allclose(logp, torch.full((4,), math.log(0.5)), atol=1e-6)


def test_pick_tokens_frequencies_match_distribution():
    u = row_uniforms(123, torch.arange(20000), 0)
    tokens, _ = pick_tokens(LOGITS.repeat(20000, 1), SamplingParams(top_k=3), uniforms=u)
    freq = torch.bincount(tokens, minlength=4).float() / 20000
    target = torch.tensor([0.5, 0.3, 0.15, 0.0]) / 0.95
    assert (freq - target).abs().max() < 0.015  # ~4 standard errors
    g = torch.Generator().manual_seed(0)  # the generator path (no uniforms) still works
    tokens, _ = pick_tokens(LOGITS.repeat(20000, 1), SamplingParams(top_k=3), generator=g)
    assert (torch.bincount(tokens, minlength=4).float() / 20000 - target).abs().max() < 0.015


def test_row_uniforms_are_uniform_and_keyed():
    keys = torch.arange(50000)
    u = row_uniforms(0, keys, 0)
    assert u.min() > 0 and u.max() < 1
    assert abs(float(u.mean()) - 0.5) < 0.01 and abs(float(u.var()) - 1 / 12) < 0.005
    hist = torch.histc(u.float(), bins=10, min=0, max=1) / len(u)
    assert (hist - 0.1).abs().max() < 0.01
    assert torch.equal(u, row_uniforms(0, keys, 0))
    for other in (row_uniforms(1, keys, 0), row_uniforms(0, keys, 1), row_uniforms(0, keys + 1, 0)):
        assert (other == u).float().mean() < 0.001
    assert abs(float(torch.corrcoef(torch.stack([u, row_uniforms(0, keys, 1)]))[0, 1])) < 0.02
