"""Small random Hugging Face models of every architecture the bare Llama paths support.

Shared by the bare decode tests (tests/rollout) and the packed training forward tests
(tests/algorithms); importable as `hf_models` because tests/ (which holds the root
conftest.py) is on sys.path.
"""

import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

from reasonloop.models.tiny import build_tokenizer

TOK = build_tokenizer("char")
PROMPTS = ["1+2=", "Compute left to right: 37 + 5 - 8 * 3", "x", "What is 12 * 12?"]  # as in test_engine


def left_padded(contexts):
    """Left-padded ids, attention mask and per-row positions (B, W) of token lists."""
    width = max(len(c) for c in contexts)
    ids = torch.full((len(contexts), width), TOK.pad_token_id)
    mask = torch.zeros((len(contexts), width), dtype=torch.long)
    for b, c in enumerate(contexts):
        ids[b, width - len(c):] = torch.tensor(c)
        mask[b, width - len(c):] = 1
    return ids, mask, (mask.cumsum(-1) - 1).clamp(min=0)


def build(cls, config_cls, std=0.3, **overrides):
    """A random 2-layer model over the char vocabulary; weights larger than HF's init so logits spread."""
    cfg = {"vocab_size": len(TOK), "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
               "num_attention_heads": 4, "num_key_value_heads": 4, "max_position_embeddings": 256,
               "bos_token_id": TOK.bos_token_id, "eos_token_id": TOK.eos_token_id, "pad_token_id": TOK.pad_token_id}
    cfg.update(overrides)
    torch.manual_seed(0)
    model = cls(config_cls(**cfg)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" not in name:
                p.normal_(0, std)
    return model


MODELS = {
    "llama-gqa-tied": lambda: build(LlamaForCausalLM, LlamaConfig, num_key_value_heads=2, tie_word_embeddings=True),
    "llama-mha-untied-bias": lambda: build(LlamaForCausalLM, LlamaConfig, tie_word_embeddings=False,
                                           attention_bias=True, mlp_bias=True),
    "qwen2-gqa-qkv-bias": lambda: build(Qwen2ForCausalLM, Qwen2Config, num_key_value_heads=1,
                                        tie_word_embeddings=False),
}
