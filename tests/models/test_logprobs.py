"""Token log-probs (`models/logprobs.py`): teacher forcing, completion alignment, the shared-prefix pass."""

import math

import pytest
import torch

from reasonloop.models.logprobs import collate, completion_logprobs, pad_completions, token_logprobs


def test_collate_masks_completion_tokens_only():
    batch = collate([([1, 2, 3], [4, 5]), ([1, 7], [8, 9, 10])], pad_id=0)
    assert batch["input_ids"].tolist() == [[1, 2, 3, 4, 5], [1, 7, 8, 9, 10]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 1, 1]]
    # loss_mask[t] = 1 iff token t+1 is a completion token
    assert batch["loss_mask"].tolist() == [[0, 0, 1, 1], [0, 1, 1, 1]]
    padded = collate([([1], [2]), ([1, 2], [3, 4])], pad_id=0)
    assert padded["input_ids"].tolist() == [[1, 2, 0, 0], [1, 2, 3, 4]]
    assert padded["loss_mask"].tolist() == [[1, 0, 0], [0, 1, 1]]
    cut = collate([([1, 2], [3, 4, 5])], pad_id=0, max_length=4)
    assert cut["input_ids"].tolist() == [[1, 2, 3, 4]] and cut["loss_mask"].tolist() == [[0, 1, 1]]


def test_token_logprobs_matches_log_softmax():
    class Fixed(torch.nn.Module):
        def forward(self, input_ids, attention_mask):
            logits = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]])
            return type("Out", (), {"logits": logits})()

    ids = torch.tensor([[0, 2, 1]])
    logprobs, _ = token_logprobs(Fixed(), ids, torch.ones_like(ids))
    lse = math.log(math.e + math.e**2 + math.e**3)
    assert logprobs.tolist()[0] == pytest.approx([-math.log(3), 2.0 - lse])


def test_pad_completions():
    values, mask = pad_completions([[1.0, 2.0], [3.0], []])
    assert values.tolist() == [[1.0, 2.0], [3.0, 0.0], [0.0, 0.0]]
    assert mask.tolist() == [[1, 1], [1, 0], [0, 0]]


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_shared_prefix_logprobs_and_gradients_equal_one_pass_per_row(tiny_model_dir, temperature):
    """Prefix Grouper's claim, checked: rows continuing the same context share one prefix pass
    (with gradients through the gathered KV cache) and get the same values and gradients as
    teacher-forcing each row on its own. Contexts of different lengths, a 1-token completion,
    rows of one context not adjacent."""
    from reasonloop.models.policy import ModelConfig, load_model

    model, _ = load_model(ModelConfig(path=str(tiny_model_dir)), for_training=True)
    a, b = [1, 10, 11, 12, 13, 14], [1, 20, 21]
    contexts = [a, b, a, a, b]
    completions = [[30, 31, 32, 2], [40, 41], [33, 2], [34, 35, 36, 37, 38], [42]]
    _, mask = pad_completions([[0.0] * len(x) for x in completions])
    weights = torch.linspace(0.5, 2.0, mask.shape[1])  # a loss that weighs positions differently
    results = []
    # the plain HF pass first: every other path must reproduce it
    for share, forward in ((False, "hf"), (True, "hf"), (True, "packed"), (False, "packed")):
        model.zero_grad()
        logprobs, logits = completion_logprobs(model, contexts, completions, pad_id=0, temperature=temperature,
                                               share_prefix=share, forward=forward)
        assert logprobs.shape == mask.shape and logits.shape[:2] == mask.shape
        (logprobs * mask * weights).sum().backward()
        results.append((logprobs.detach() * mask, [p.grad.clone() for p in model.parameters()]))
    (lp_plain, g_plain), *others = results
    for lp_other, g_other in others:
        assert torch.allclose(lp_plain, lp_other, atol=1e-5)
        assert all(torch.allclose(x, y, atol=1e-5) for x, y in zip(g_plain, g_other))
    assert all(g.abs().sum() > 0 for g in g_plain)  # every parameter takes part, so every gradient is compared
    # and the unshared path is plain teacher forcing
    batch = collate([(a, completions[0])], pad_id=0)
    reference, _ = token_logprobs(model, batch["input_ids"], batch["attention_mask"], temperature)
    assert torch.allclose(lp_plain[0, :4], reference[0, len(a) - 1:], atol=1e-6)
