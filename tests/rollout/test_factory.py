"""make_sampler: each sampler.kind builds the right engine with its settings; wrong combinations are config errors."""

import sys

import pytest
from fake_servers import install_vllm_with_model
from hf_models import build_chat_checkpoint
from test_openai_backend import FakeServer

from reasonloop.config import ConfigError, load_config
from reasonloop.evaluate.run import EvalConfig
from reasonloop.models.policy import ModelConfig
from reasonloop.rollout.engine import TorchEngine
from reasonloop.rollout.factory import SamplerConfig, make_sampler, sync_weights
from reasonloop.rollout.openai_backend import OpenAISampler
from reasonloop.rollout.sampler import SamplingParams


@pytest.fixture()
def server():
    s = FakeServer()
    yield s
    s.close()


def test_torch_from_a_path_and_over_a_policy(rollout_model_dir, model_and_tokenizer):
    cfg = SamplerConfig(max_batch_size=7, max_batch_tokens=999, decode="hf")
    engine = make_sampler(cfg, ModelConfig(path=str(rollout_model_dir), use_chat_template=False, system_prompt="S"))
    assert isinstance(engine, TorchEngine) and engine.model_id == str(rollout_model_dir)
    assert (engine.max_batch_size, engine.max_batch_tokens, engine.decode) == (7, 999, "hf")
    assert (engine.use_chat_template, engine.system_prompt) == (False, "S")
    policy, tok = model_and_tokenizer
    shared = make_sampler(SamplerConfig(), ModelConfig(path="runs/x"), policy=policy, tokenizer=tok)
    assert shared.model is policy and shared.model_id == "runs/x"
    sync_weights(shared, policy)  # the engine shares the module: nothing to copy
    with pytest.raises(TypeError, match="cannot take new weights"):
        sync_weights(OpenAISampler("http://h/v1", "m"), policy)


def test_openai_settings_reach_the_sampler(monkeypatch):
    monkeypatch.setenv("MY_KEY", "sk-test")
    cfg = SamplerConfig(kind="openai", base_url="http://h:1/v1", api_key_env="MY_KEY", max_concurrency=3,
                        timeout=7.5, max_retries=1, use_n=False)
    s = make_sampler(cfg, ModelConfig(path="Qwen/Qwen2.5-0.5B-Instruct", system_prompt="Be brief."))
    assert (s.base_url, s.model, s.model_id, s.endpoint) == ("http://h:1/v1", "Qwen/Qwen2.5-0.5B-Instruct",
                                                            "Qwen/Qwen2.5-0.5B-Instruct", "chat")
    assert (s.api_key, s.max_concurrency, s.timeout, s.max_retries, s.use_n) == ("sk-test", 3, 7.5, 1, False)
    assert s.system_prompt == "Be brief."
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    named = make_sampler(SamplerConfig(kind="openai", base_url="http://h/v1", model_name="served"),
                         ModelConfig(path="org/m"))
    assert (named.model, named.model_id, named.api_key) == ("served", "served", None)


def test_wrong_combinations_are_config_errors(model_and_tokenizer):
    with pytest.raises(ConfigError, match="sampler.kind=openai needs sampler.base_url"):
        load_config(EvalConfig, overrides=["sampler.kind=openai"])
    with pytest.raises(ConfigError, match="not one of"):
        load_config(EvalConfig, overrides=["sampler.kind=sglang"])
    openai = SamplerConfig(kind="openai", base_url="http://h/v1")
    policy, tok = model_and_tokenizer
    with pytest.raises(ConfigError, match="cannot take the weights"):
        make_sampler(openai, ModelConfig(path="m"), policy=policy, tokenizer=tok)
    with pytest.raises(ConfigError, match="endpoint=completions"):
        make_sampler(openai, ModelConfig(path="m", chat_template="t.jinja"))
    with pytest.raises(ConfigError, match="endpoint=completions"):
        make_sampler(openai, ModelConfig(path="m", use_chat_template=False))


def test_completions_endpoint_sends_the_local_chat_template(server, tmp_path):
    """endpoint=completions: the prompt is formatted here with the model's tokenizer; Sample.prompt stays raw."""
    chat = build_chat_checkpoint(tmp_path / "chat")
    cfg = SamplerConfig(kind="openai", base_url=server.url, endpoint="completions", model_name="served")
    s = make_sampler(cfg, ModelConfig(path=str(chat), system_prompt="Sys"))
    (sample,), = s.generate(["What is 2+2?"], 1, SamplingParams(max_new_tokens=50))
    assert server.requests[-1]["prompt"] == ("<|im_start|>system\nSys<|im_end|>\n<|im_start|>user\nWhat is 2+2?"
                                             "<|im_end|>\n<|im_start|>assistant\n")
    assert server.requests[-1]["model"] == "served" and sample.prompt == "What is 2+2?"
    raw = make_sampler(cfg, ModelConfig(path=str(chat), use_chat_template=False, system_prompt="Sys"))
    raw.generate(["Q"], 1, SamplingParams(max_new_tokens=50))
    assert server.requests[-1]["prompt"] == "Sys\nQ"


def test_vllm_kind_copies_the_policy_weights_in(monkeypatch, rollout_model_dir, model_and_tokenizer):
    policy, tok = model_and_tokenizer
    llms = install_vllm_with_model(monkeypatch, policy)
    cfg = SamplerConfig(kind="vllm", gpu_memory_utilization=0.3, max_model_len=256)
    engine = make_sampler(cfg, ModelConfig(path=str(rollout_model_dir)), policy=policy, tokenizer=tok)
    assert llms[0].kwargs["gpu_memory_utilization"] == 0.3 and llms[0].kwargs["max_model_len"] == 256
    assert llms[0].kwargs["model"] == str(rollout_model_dir) and llms[0].kwargs["revision"] is None
    assert all((llms[0].inner_model.store[k] == v).all() for k, v in policy.state_dict().items()) and llms[0].resets == 1
    sync_weights(engine, policy)
    assert llms[0].resets == 2

    monkeypatch.setitem(sys.modules, "vllm", None)  # not installed: a config error naming the extra
    with pytest.raises(ConfigError, match=r"sampler.kind=vllm: .*reasonloop\[vllm\]"):
        make_sampler(SamplerConfig(kind="vllm"), ModelConfig(path=str(rollout_model_dir)))


def test_plain_weights_merge_lora_adapters_and_leave_the_policy_as_it_was(rollout_model_dir):
    """What vLLM is sent for a LoRA policy: HF names, adapters merged; the peft model keeps training unchanged."""
    import copy

    import torch

    from reasonloop.models.lora import LoRAConfig, apply_lora
    from reasonloop.models.policy import load_model
    from reasonloop.rollout.factory import plain_weights

    base, _ = load_model(ModelConfig(path=str(rollout_model_dir)))
    assert plain_weights(base).keys() == base.state_dict().keys()
    policy = apply_lora(copy.deepcopy(base), LoRAConfig(r=4))
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)  # peft starts B at zero: make the adapters change the weights
    ids = torch.tensor([[1, 5, 9, 13]])
    before = policy(ids).logits
    weights = plain_weights(policy)
    expected = copy.deepcopy(policy).merge_and_unload().state_dict()
    assert weights.keys() == expected.keys() == base.state_dict().keys()
    assert all(torch.allclose(weights[k], expected[k], atol=1e-6) for k in expected)
    assert not torch.allclose(weights["model.layers.0.self_attn.q_proj.weight"],
                              base.state_dict()["model.layers.0.self_attn.q_proj.weight"])
    assert torch.allclose(policy(ids).logits, before, atol=1e-6)  # the merge was undone


def test_plain_weights_leave_a_bf16_lora_policy_bit_for_bit(rollout_model_dir):
    """Merge then unmerge is not exact in bf16; sending weights every step must not move the frozen base."""
    import torch

    from reasonloop.models.lora import LoRAConfig, apply_lora
    from reasonloop.models.policy import load_model
    from reasonloop.rollout.factory import plain_weights

    base, _ = load_model(ModelConfig(path=str(rollout_model_dir)))
    policy = apply_lora(base.to(torch.bfloat16), LoRAConfig(r=4))
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    for _ in range(3):
        plain_weights(policy)
    assert all(torch.equal(before[k], v) for k, v in policy.state_dict().items())
