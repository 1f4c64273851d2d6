"""Tiny Llama-architecture models with a locally built tokenizer: no network, ever.

`init_model(TinyModelConfig(path=...))` writes a directory that any HF tool loads with
`AutoModelForCausalLM.from_pretrained` / `AutoTokenizer.from_pretrained`:

- the tokenizer is built with `tokenizers`, character-level (printable ASCII + newline,
  ~100 symbols: digits are single tokens, which is what arithmetic needs) or byte-level
  (256 symbols, any text), and saved as a `PreTrainedTokenizerFast` with `<s>`, `</s>`,
  `<pad>`, `<unk>`;
- the model is a randomly initialised `LlamaForCausalLM` (default ~3.4 M parameters:
  hidden 256, 4 layers, 4 heads, MLP 768, tied embeddings), fp32.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>"]


@dataclass
class TinyModelConfig:
    path: str = "runs/tiny-model"
    """directory to write the model and tokenizer to"""
    tokenizer: Literal["char", "byte"] = "char"
    hidden_size: int = 256
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 4
    intermediate_size: int = 768
    max_position_embeddings: int = 512
    seed: int = 0

    def __post_init__(self):
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads {self.num_heads} is not divisible by num_kv_heads {self.num_kv_heads}")


def build_tokenizer(kind: Literal["char", "byte"] = "char"):
    """A `PreTrainedTokenizerFast` built from scratch: one token per character (or byte)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    if kind == "char":
        alphabet = sorted(set(string.printable) - set("\x0b\x0c\r"))
        vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS + alphabet)}
        # BPE with no merges over a character vocabulary = a character tokenizer.
        tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
        tok.decoder = decoders.Fuse()
    else:
        alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
        vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS + alphabet)}
        tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
        tok.decoder = decoders.ByteLevel()
    bos = vocab["<s>"]
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", bos)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
        padding_side="left", model_max_length=1 << 20,
    )


def init_model(config: TinyModelConfig) -> Path:
    """Write a fresh tiny model + tokenizer to `config.path`; returns the path."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tokenizer(config.tokenizer)
    model_config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_kv_heads,
        max_position_embeddings=config.max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(config.seed)
    model = LlamaForCausalLM(model_config)
    path = Path(config.path)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


def main(config: TinyModelConfig) -> Path:
    """`reasonloop init-model DIR`: write the model and report its size."""
    from transformers import AutoModelForCausalLM

    path = init_model(config)
    model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True)
    print(f"wrote a {count_parameters(model) / 1e6:.2f} M-parameter Llama ({config.tokenizer}-level tokenizer) to {path}")
    return path
