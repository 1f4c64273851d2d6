"""Small random Hugging Face models of every architecture the bare Llama-family paths support.

Shared by the bare forward and log-prob tests (tests/models) and the engine's fast-path tests
(tests/rollout); importable as `hf_models` because tests/ (which holds the root
conftest.py) is on sys.path.
"""

import torch
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)

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
    # Llama 3.x rotary: low frequencies divided by `factor`, a smooth band, high ones kept (all three
    # occur at head_dim 16 with original_max_position_embeddings 64)
    "llama3-rope": lambda: build(LlamaForCausalLM, LlamaConfig, num_key_value_heads=2, rope_parameters={
        "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 64, "rope_theta": 500000.0}),
    # per-head q/k RMSNorm, head_dim (24) not hidden / heads (16), as Qwen3's configs have it
    "qwen3-qk-norm": lambda: build(Qwen3ForCausalLM, Qwen3Config, num_key_value_heads=2, head_dim=24,
                                   tie_word_embeddings=True),
    # a sliding window longer than every sequence of the tests: the full attention
    "mistral-window-64": lambda: build(MistralForCausalLM, MistralConfig, num_key_value_heads=2, sliding_window=64,
                                       tie_word_embeddings=False),
}


# --- a chat checkpoint like the ones users train: Qwen2 architecture, byte-level BPE, ChatML template

CHATML_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{%- endif %}"
    "{%- for message in messages %}{%- if message['role'] != 'system' or not loop.first %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
"""Qwen2.5-Instruct's template without the tool-calling branches: a default system message, ChatML turns."""

CHAT_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

CORPUS = [
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May.",
    "How many clips did Natalia sell altogether in April and May?",
    "Natalia sold 48/2 = <<48/2=24>>24 clips in May. #### 72",
    "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting.",
    "Solve step by step and put the final answer in \\boxed{}. The answer is \\boxed{42}.",
    "You are a helpful assistant. Think step by step, then give the final answer.",
    "Compute left to right: 12 + 3 * 4 - 5\n12 + 3 = 15\n15 * 4 = 60\n60 - 5 = 55\nAnswer: 55",
]


def build_bpe_tokenizer(vocab_size: int = 400, chat_template: str | None = CHATML_TEMPLATE):
    """A byte-level BPE tokenizer trained here with `tokenizers` (Qwen-style: no BOS, EOS `<|im_end|>`)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=CHAT_SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS * 4 + ["0123456789 " * 4], trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   additional_special_tokens=["<|im_start|>"], chat_template=chat_template,
                                   padding_side="left", model_max_length=1 << 15)


def build_chat_checkpoint(path, hidden_size: int = 64, num_layers: int = 2, seed: int = 0):
    """Write a random Qwen2-architecture chat model with `build_bpe_tokenizer()` to `path`; returns the path.

    `reasonloop ... model.path=<path>` loads it like a Hub checkpoint (config.json, model.safetensors,
    generation_config.json, tokenizer.json, chat_template.jinja); ~60k parameters, fast on CPU.
    """
    from pathlib import Path

    from transformers import GenerationConfig

    tok = build_bpe_tokenizer()
    end, pad = tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                      num_hidden_layers=num_layers, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=512, tie_word_embeddings=True, bos_token_id=pad,
                      eos_token_id=end, pad_token_id=pad)
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(cfg).eval()
    model.generation_config = GenerationConfig(bos_token_id=pad, eos_token_id=[end, pad], pad_token_id=pad)
    path = Path(path)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path
