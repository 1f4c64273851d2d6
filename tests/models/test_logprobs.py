"""Token log-probs (`models/logprobs.py`): teacher forcing, completion alignment, the shared-prefix pass."""

import math

import pytest
import torch

from reasonloop.models.logprobs import (
    collate,
    completion_logprobs,
    head_logprobs,
    hidden_head,
    logits_logprobs,
    pad_completions,
    token_logprobs,
)


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
        logprobs, entropy = completion_logprobs(model, contexts, completions, pad_id=0, temperature=temperature,
                                                share_prefix=share, forward=forward)
        assert logprobs.shape == mask.shape and entropy.shape == mask.shape
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


# --- the head in chunks (models/logprobs.head_logprobs) -------------------------------------------


def reference_head(hidden, head, nodes, targets, temperature):
    """The unchunked computation: all logits at once, log-softmax, gather, entropy."""
    z = head(hidden).float() / temperature  # (M, V)
    logp = torch.log_softmax(z, dim=-1)
    return logp[nodes, targets], -(logp.exp() * logp).sum(-1)


@pytest.mark.parametrize("chunk", [1, 3, 100])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_chunked_head_values_and_gradients_equal_the_unchunked_ones(chunk, temperature):
    torch.manual_seed(0)
    hidden = torch.randn(7, 16, requires_grad=True)  # (M, E)
    head = torch.nn.Linear(16, 50)
    with torch.no_grad():
        head.weight.mul_(3)  # spread logits
    nodes = torch.tensor([0, 0, 1, 2, 3, 3, 3, 4, 5, 6, 6])  # several targets read one node (shared prefixes)
    targets = torch.tensor([1, 2, 3, 4, 5, 6, 5, 7, 8, 9, 10])
    w_lp, w_ent = torch.linspace(0.5, 2.0, len(nodes)), torch.linspace(-1.0, 1.0, 7)  # a loss weighing entries
    results = []
    for run in (reference_head, head_logprobs):
        hidden.grad = head.weight.grad = head.bias.grad = None
        args = (hidden, head, nodes, targets, temperature)
        lp, ent = run(*args) if run is reference_head else run(*args, chunk=chunk, with_entropy=True)
        ((lp * w_lp).sum() + (ent * w_ent).sum()).backward()
        results.append((lp.detach(), ent.detach(), hidden.grad.clone(), head.weight.grad.clone(),
                        head.bias.grad.clone()))
    for ref, got in zip(*results):
        assert torch.allclose(ref, got, atol=1e-5), (ref - got).abs().max()


def test_chunked_head_without_entropy_and_its_gradient_alone():
    torch.manual_seed(1)
    hidden = torch.randn(5, 8, requires_grad=True)
    head = torch.nn.Linear(8, 30, bias=False)
    nodes, targets = torch.arange(5), torch.tensor([3, 1, 4, 1, 5])
    lp, ent = head_logprobs(hidden, head, nodes, targets, chunk=2)
    assert not ent.requires_grad and (ent == 0).all()
    lp.sum().backward()
    ref, _ = reference_head(hidden, head, nodes, targets, 1.0)
    assert torch.allclose(lp, ref, atol=1e-6)
    grads = torch.autograd.grad(ref.sum(), [hidden, head.weight])
    assert torch.allclose(hidden.grad, grads[0], atol=1e-5) and torch.allclose(head.weight.grad, grads[1], atol=1e-5)


def test_entropy_of_uniform_logits_is_log_v_and_logprob_is_minus_log_v():
    head = torch.nn.Linear(4, 5, bias=False)
    torch.nn.init.zeros_(head.weight)  # every logit 0: uniform over 5 tokens
    lp, ent = head_logprobs(torch.randn(2, 4), head, torch.tensor([0, 1]), torch.tensor([3, 0]), with_entropy=True)
    assert lp.tolist() == pytest.approx([-math.log(5)] * 2) and ent.tolist() == pytest.approx([math.log(5)] * 2)
    lp, ent = logits_logprobs(torch.zeros(3, 5), torch.tensor([0, 1, 2]), chunk=2, with_entropy=True)
    assert lp.tolist() == pytest.approx([-math.log(5)] * 3) and ent.tolist() == pytest.approx([math.log(5)] * 3)


@pytest.mark.parametrize("name", ["llama-gqa-tied", "qwen2-gqa-qkv-bias", "llama3-rope", "qwen3-qk-norm",
                                  "mistral-window-64", "gpt2"])
def test_token_logprobs_through_the_chunked_head_equal_the_models_logits(name):
    """`hidden_head`'s claim for each PLAIN_HEAD family tested: the decoder's hidden states through
    `lm_head` in chunks give the log-probs, entropies and gradients of `model(...).logits`."""
    from hf_models import MODELS, TOK
    from transformers import GPT2Config, GPT2LMHeadModel

    if name == "gpt2":
        torch.manual_seed(0)
        model = GPT2LMHeadModel(GPT2Config(vocab_size=len(TOK), n_embd=32, n_layer=2, n_head=2, n_positions=64,
                                           bos_token_id=TOK.bos_token_id, eos_token_id=TOK.eos_token_id)).eval()
    else:
        model = MODELS[name]()
    assert hidden_head(model) is not None
    batch = collate([([1, 5, 6, 7], [8, 9]), ([1, 4], [10, 11, 12, 2])], pad_id=0)
    results = []
    for chunked in (False, True):
        model.zero_grad()
        if chunked:
            lp, ent = token_logprobs(model, batch["input_ids"], batch["attention_mask"], 0.7, with_entropy=True,
                                     chunk=3)
        else:
            z = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1].float() / 0.7
            logp = torch.log_softmax(z, -1)
            lp, ent = logp.gather(-1, batch["input_ids"][:, 1:, None]).squeeze(-1), -(logp.exp() * logp).sum(-1)
        ((lp + ent) * batch["loss_mask"]).sum().backward()
        results.append((lp.detach() * batch["loss_mask"], ent.detach() * batch["loss_mask"],
                        [p.grad.clone() for p in model.parameters() if p.grad is not None]))
    (lp_ref, ent_ref, g_ref), (lp, ent, g) = results
    assert torch.allclose(lp, lp_ref, atol=1e-5) and torch.allclose(ent, ent_ref, atol=1e-5)
    assert len(g) == len(g_ref)
    for a, b in zip(g_ref, g):  # float32 rounding of gradients up to ~30: 1e-5 of each one's own scale
        assert (a - b).abs().max() <= 1e-5 * a.abs().max()


def test_heads_we_cannot_read_go_through_the_models_logits():
    from hf_models import MODELS

    model = MODELS["llama-gqa-tied"]()
    handle = model.lm_head.register_forward_hook(lambda m, i, o: o + 1.0)
    try:
        assert hidden_head(model) is None  # the hook would be skipped
        ids = torch.tensor([[1, 5, 6, 7]])
        lp, _ = token_logprobs(model, ids, torch.ones_like(ids), chunk=1)
        ref = torch.log_softmax(model(input_ids=ids).logits[:, :-1].float(), -1).gather(-1, ids[:, 1:, None])[..., 0]
        assert torch.allclose(lp, ref, atol=1e-6)
    finally:
        handle.remove()


def test_chunked_head_under_bf16_autocast_recomputes_like_its_forward():
    """Mixed precision (`models/precision.py`): the backward's recomputation runs under the forward's
    autocast, so float32 master weights meet bf16 activations as they did in the forward."""
    torch.manual_seed(0)
    hidden = torch.randn(6, 16, requires_grad=True)
    head = torch.nn.Linear(16, 40)
    nodes, targets = torch.arange(6), torch.tensor([1, 2, 3, 4, 5, 6])
    grads = []
    for run in (reference_head, head_logprobs):
        hidden.grad = head.weight.grad = None
        with torch.autocast("cpu", dtype=torch.bfloat16):
            lp, _ = run(hidden, head, nodes, targets, 1.0) if run is reference_head else run(
                hidden, head, nodes, targets, chunk=4)
            lp.sum().backward()
        grads.append((lp.detach(), hidden.grad.clone(), head.weight.grad.clone()))
    for ref, got in zip(*grads):
        assert ref.dtype == got.dtype and torch.allclose(ref.float(), got.float(), atol=0.05, rtol=0.02)
