import torch

from reasonloop.models.policy import ModelConfig, format_prompt, load_model
from reasonloop.models.tiny import build_tokenizer, count_parameters
from reasonloop.store.checkpoint import save_model


def test_char_tokenizer_round_trips_and_adds_bos():
    tok = build_tokenizer("char")
    text = "Compute left to right: 12 + 3\n12 + 3 = 15\nAnswer: 15"
    ids = tok(text)["input_ids"]
    assert ids[0] == tok.bos_token_id and len(ids) == len(text) + 1  # one token per character
    assert tok.decode(ids, skip_special_tokens=True) == text


def test_byte_tokenizer_handles_any_text():
    tok = build_tokenizer("byte")
    text = "héllo − 1,234 ✓\n"
    assert tok.decode(tok(text)["input_ids"], skip_special_tokens=True) == text


def test_tiny_model_save_load_round_trip(tiny_model_dir, tmp_path):
    model, tok = load_model(ModelConfig(path=str(tiny_model_dir)))
    assert 10_000 < count_parameters(model) < 200_000
    ids = torch.tensor([tok("Compute 1 + 2\n")["input_ids"]])
    before = model(ids).logits
    save_model(tmp_path / "copy", model, tok)
    again, tok2 = load_model(ModelConfig(path=str(tmp_path / "copy")))
    assert torch.equal(before, again(ids).logits)
    assert tok2.get_vocab() == tok.get_vocab() and tok2.padding_side == "left"
    # no chat template on the tiny tokenizer: the prompt is used as is
    assert format_prompt(tok2, "Q\n") == "Q\n"
