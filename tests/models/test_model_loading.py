"""Model loading: local directories, Hub ids through the Hugging Face cache, chat templates, clear errors.

No test touches the network: Hub ids resolve from a cache laid out in tmp (HF_HOME) with
HF_HUB_OFFLINE=1, in a subprocess because huggingface_hub reads both at import.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from hf_models import CHATML_TEMPLATE, build_chat_checkpoint

from reasonloop.config import UserError
from reasonloop.models.policy import (
    ModelConfig,
    ModelError,
    encode_context,
    format_prompt,
    load_model,
    locate,
)


@pytest.fixture(scope="module")
def chat_dir(tmp_path_factory):
    return build_chat_checkpoint(tmp_path_factory.mktemp("chat") / "qwen2-chat")


def test_locate_tells_directories_from_hub_ids(tmp_path):
    assert locate(tmp_path).local and locate(tmp_path).name == str(tmp_path)
    hub = locate("Qwen/Qwen2.5-0.5B-Instruct@a1b2c3")
    assert (hub.name, hub.revision, hub.local) == ("Qwen/Qwen2.5-0.5B-Instruct", "a1b2c3", False)
    assert locate("gpt2").revision is None and not locate("gpt2").local
    for missing in ("runs/sft/final", "./model", str(tmp_path / "nope")):
        with pytest.raises(ModelError, match="no such directory"):
            locate(missing)
    (tmp_path / "org@v1").mkdir()  # an existing directory wins over the @revision reading
    assert locate(tmp_path / "org@v1").local


def test_chat_template_system_prompt_and_raw_prompts(chat_dir, tmp_path):
    model, tok = load_model(ModelConfig(path=str(chat_dir)))
    assert model.config.model_type == "qwen2" and tok.chat_template == CHATML_TEMPLATE
    default = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nQ?<|im_end|>\n" \
              "<|im_start|>assistant\n"
    assert format_prompt(tok, "Q?") == default
    assert format_prompt(tok, "Q?", system_prompt="Be brief.").startswith("<|im_start|>system\nBe brief.<|im_end|>")
    assert format_prompt(tok, "Q?", use_chat_template=False) == "Q?"
    # the template's special tokens are single tokens and no BOS is added in front of them
    ids = encode_context(tok, "Q?")
    assert ids == tok(default, add_special_tokens=False)["input_ids"]
    assert ids[0] == tok.convert_tokens_to_ids("<|im_start|>")
    # a template file replaces the tokenizer's own
    template = tmp_path / "plain.jinja"
    template.write_text("{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
                        "{% if add_generation_prompt %}[assistant] {% endif %}")
    _, tok2 = load_model(ModelConfig(path=str(chat_dir), chat_template=str(template), system_prompt="S"))
    assert format_prompt(tok2, "Q?", system_prompt="S") == "[system] S\n[user] Q?\n[assistant] "
    with pytest.raises(ModelError, match="chat_template: file .*missing.jinja"):
        load_model(ModelConfig(path=str(chat_dir), chat_template=str(tmp_path / "missing.jinja")))


def test_missing_directory_never_suggests_init_model(tmp_path):
    with pytest.raises(ModelError) as e:
        load_model(ModelConfig(path=str(tmp_path / "nope")))
    assert "init-model" not in str(e.value) and str(tmp_path / "nope") in str(e.value)
    assert isinstance(e.value, UserError)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="config.json not found"):
        load_model(ModelConfig(path=str(tmp_path / "empty")))


def _cache_repo(hub_cache, repo: str, refs: dict[str, str], snapshots: dict[str, object]) -> None:
    """Lay a model out as huggingface_hub's cache does: refs/<name> -> commit, snapshots/<commit>/files."""
    root = hub_cache / f"models--{repo.replace('/', '--')}"
    for name, commit in refs.items():
        (root / "refs").mkdir(parents=True, exist_ok=True)
        (root / "refs" / name).write_text(commit)
    for commit, source in snapshots.items():
        shutil.copytree(source, root / "snapshots" / commit)


LOAD_SCRIPT = """
import json, sys
from reasonloop.models.policy import ModelConfig, ModelError, load_model
out = {}
for path in sys.argv[1:]:
    try:
        model, tok = load_model(ModelConfig(path=path))
        out[path] = {"weight": model.model.embed_tokens.weight.sum().item(), "vocab": len(tok)}
    except ModelError as e:
        out[path] = {"error": str(e)}
print(json.dumps(out))
"""


def test_hub_ids_load_from_the_hf_cache_offline(chat_dir, tmp_path):
    """`org/name` and `org/name@revision` resolve through huggingface_hub's cache; a missing id is one clear error."""
    other = build_chat_checkpoint(tmp_path / "v1", seed=1)
    with torch.no_grad():
        main_sum = load_model(ModelConfig(path=str(chat_dir)))[0].model.embed_tokens.weight.sum().item()
        v1_sum = load_model(ModelConfig(path=str(other)))[0].model.embed_tokens.weight.sum().item()
    assert main_sum != v1_sum
    commit_main, commit_v1 = "a" * 40, "b" * 40
    _cache_repo(tmp_path / "hf" / "hub", "tiny-org/chat", {"main": commit_main, "v1": commit_v1},
                {commit_main: chat_dir, commit_v1: other})
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    env.pop("HF_HUB_CACHE", None)
    ids = ["tiny-org/chat", "tiny-org/chat@v1", f"tiny-org/chat@{commit_v1}", "Qwen/Qwen2.5-0.5B-Instruct",
           "tiny-org/chat@v2"]
    got = json.loads(subprocess.run([sys.executable, "-c", LOAD_SCRIPT, *ids], env=env, capture_output=True,
                                    text=True, check=True).stdout.splitlines()[-1])
    assert got["tiny-org/chat"] == {"weight": pytest.approx(main_sum), "vocab": 400}
    assert got["tiny-org/chat@v1"]["weight"] == pytest.approx(v1_sum)
    assert got[f"tiny-org/chat@{commit_v1}"]["weight"] == pytest.approx(v1_sum)
    error = got["Qwen/Qwen2.5-0.5B-Instruct"]["error"]
    assert "Qwen/Qwen2.5-0.5B-Instruct" in error and "HF_HUB_OFFLINE" in error and "\n" not in error
    assert "init-model" not in error and str(tmp_path / "hf") in error
    assert "tiny-org/chat@v2" in got["tiny-org/chat@v2"]["error"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without a GPU")
def test_a_cuda_device_without_a_gpu_is_one_clear_error(chat_dir):
    with pytest.raises(ModelError, match=r"device 'cuda:1': this torch .* sees no CUDA GPU; use model.device=cpu"):
        load_model(ModelConfig(path=str(chat_dir), device="cuda:1"))


def test_training_in_bf16_names_the_settings_to_use(chat_dir):
    from reasonloop.config import ConfigError

    with pytest.raises(ConfigError, match="model.dtype=bfloat16 for training: set model.precision"):
        load_model(ModelConfig(path=str(chat_dir), dtype="bfloat16"), for_training=True)
