"""The packed training forward (`models/packed.py`) against the Hugging Face pass."""

import pytest
import torch
from hf_models import MODELS  # tests/hf_models.py

from reasonloop.models.logprobs import completion_logprobs, pad_completions
from reasonloop.models.packed import (
    build_token_tree,
    packed_completion_hidden,
    packed_unsupported_reason,
)

# contexts of different lengths, rows of one context not adjacent, 1-token completions, completions
# sharing their first tokens (rows 0 and 6, 1 and 7), and a row equal to another (8 = 0)
A, B, C = [1, 10, 11, 12, 13, 14], [1, 20, 21], [1, 5]
CONTEXTS = [A, B, A, C, A, B, A, B, A]
COMPLETIONS = [[30, 31, 32, 2], [40, 41], [33, 2], [7], [34, 35, 36, 37, 38], [42], [30, 31, 39, 2], [40, 41, 2],
               [30, 31, 32, 2]]


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("share_prefix", [True, False])
def test_packed_logprobs_and_gradients_equal_the_hf_pass(name, share_prefix):
    model = MODELS[name]().train()
    assert packed_unsupported_reason(model) is None
    _, mask = pad_completions([[0.0] * len(x) for x in COMPLETIONS])  # (R, Tc)
    weights = torch.linspace(0.5, 2.0, mask.shape[1])  # a loss that weighs positions differently
    results = []
    for forward in ("hf", "packed"):
        model.zero_grad()
        logprobs, entropy = completion_logprobs(model, CONTEXTS, COMPLETIONS, pad_id=0, temperature=0.7,
                                                share_prefix=share_prefix, forward=forward, with_entropy=True)
        assert logprobs.shape == mask.shape and entropy.shape == mask.shape
        (logprobs * mask * weights).sum().backward()
        results.append((logprobs.detach() * mask, {n: p.grad.clone() for n, p in model.named_parameters()},
                        entropy.detach() * mask))
    (lp_hf, g_hf, ent_hf), (lp_packed, g_packed, ent_packed) = results
    assert torch.allclose(lp_hf, lp_packed, atol=1e-5)
    assert torch.allclose(ent_hf, ent_packed, atol=1e-5) and ent_hf.sum() > 0
    for n, g in g_hf.items():
        assert g.abs().sum() > 0, n  # every parameter takes part
        # float32 rounding differs (fused RMSNorm, rolled rotary): 1e-5 of the gradient's own scale
        assert (g - g_packed[n]).abs().max() <= 1e-5 * g.abs().max(), n


def test_packed_padding_entries_are_zero_and_only_completions_count():
    model = MODELS["llama-gqa-tied"]()
    packed = packed_completion_hidden(model, CONTEXTS, COMPLETIONS)
    logits = packed.padded(model.lm_head(packed.hidden))  # (R, Tc, V)
    assert logits.shape[:2] == (len(COMPLETIONS), 5)
    for r, x in enumerate(COMPLETIONS):
        assert logits[r, len(x):].abs().sum() == 0 and logits[r, : len(x)].abs().sum() > 0


def test_packed_forward_refuses_what_it_does_not_reproduce():
    model = MODELS["llama-gqa-tied"]()
    model.config.attention_dropout = 0.1
    assert packed_unsupported_reason(model.train()) == "attention dropout while training"
    assert packed_unsupported_reason(model.eval()) is None  # dropout is off in eval mode
    model.register_forward_hook(lambda *a: None)
    with pytest.raises(ValueError, match="forward='packed' is not available.*hooks"):
        completion_logprobs(model, CONTEXTS, COMPLETIONS, pad_id=0, forward="packed")
    with pytest.raises(ValueError, match="non-empty"):
        packed_completion_hidden(MODELS["llama-gqa-tied"](), [A], [[]])


def test_token_tree_by_hand():
    # input sequences (context + completion minus its last token): [1,2,5,6], [1,2,5,7], [1,3,5,6]
    tree = build_token_tree([[1, 2], [1, 2], [1, 3]], [[5, 6, 9], [5, 7, 9], [5, 6, 8]])
    assert tree.paths == [[0, 1, 2, 3], [0, 1, 2, 4], [0, 5, 6, 7]]
    assert tree.tokens == [1, 2, 5, 6, 7, 3, 5, 6] and tree.depths == [0, 1, 2, 3, 3, 1, 2, 3]
    assert tree.owned_start == [0, 3, 1]  # row 1 owns only its last node; row 2 everything after BOS
    unshared = build_token_tree([[1, 2], [1, 2]], [[5, 6], [5, 6]], share_prefix=False)
    assert unshared.paths == [[0, 1, 2], [3, 4, 5]] and unshared.owned_start == [0, 0]
    duplicate = build_token_tree([[1, 2], [1, 2]], [[5, 6], [5, 6]])
    assert duplicate.paths == [[0, 1, 2], [0, 1, 2]] and duplicate.owned_start == [0, 3]  # owns nothing


def test_packed_forward_reports_how_much_ran():
    stats = {}
    packed_completion_hidden(MODELS["llama-gqa-tied"](), [[1, 2], [1, 2], [1, 3]], [[5, 6, 9], [5, 7, 9], [5, 6, 8]],
                             stats=stats)
    assert stats == {"tokens": 12, "nodes": 8}
