"""Tiny models for the rollout tests, built in a tmp dir (never downloaded)."""

import pytest


@pytest.fixture(scope="session")
def rollout_model_dir(tmp_path_factory):
    """A ~60k-parameter char-level Llama with grouped-query attention (4 heads, 2 KV heads)."""
    from reasonloop.models.tiny import TinyModelConfig, init_model

    path = tmp_path_factory.mktemp("rollout") / "tiny"
    init_model(TinyModelConfig(path=str(path), hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2,
                               intermediate_size=128, max_position_embeddings=256))
    return path


@pytest.fixture(scope="session")
def model_and_tokenizer(rollout_model_dir):
    from reasonloop.models.policy import ModelConfig, load_model

    return load_model(ModelConfig(path=str(rollout_model_dir), device="cpu"))


@pytest.fixture()
def eos_biased(model_and_tokenizer):
    """The tiny model with +`bias` on the EOS logit (a hook), so completions have mixed lengths.

    A forward hook sends `decode="auto"` engines to the HF-module path (the bare forward
    would skip it), so tests using this fixture test that path; the bare path's own
    mixed-length tests raise EOS through the weights (`test_engine_fast.eos_likely`).
    """
    model, tok = model_and_tokenizer

    def add(bias):
        def hook(module, inputs, output):
            output[..., tok.eos_token_id] += bias
            return output

        return model.lm_head.register_forward_hook(hook)

    handles = []
    yield lambda bias: handles.append(add(bias))
    for h in handles:
        h.remove()
