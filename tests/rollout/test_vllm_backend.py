"""VLLMEngine against a fake `vllm` module (no GPU here): request building, output mapping, weight reload."""

import sys
import types

import pytest
import torch
from fake_servers import FakeLLM, FakeVLLMModel, install_vllm

from reasonloop.models.policy import ModelConfig
from reasonloop.rollout.sampler import Sampler, SamplingParams


@pytest.fixture()
def fake_vllm(monkeypatch):
    return install_vllm(monkeypatch, lambda **kw: FakeLLM(kw))


def test_import_error_without_vllm(monkeypatch, rollout_model_dir):
    from reasonloop.rollout.vllm_backend import VLLMEngine

    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` raise ImportError
    with pytest.raises(ImportError, match=r"reasonloop\[vllm\]"):
        VLLMEngine(ModelConfig(path=str(rollout_model_dir)))


def test_generate_maps_requests_and_outputs(fake_vllm, rollout_model_dir):
    from reasonloop.rollout.engine import encode_context
    from reasonloop.rollout.vllm_backend import VLLMEngine

    engine = VLLMEngine(ModelConfig(path=str(rollout_model_dir), dtype="bfloat16"), gpu_memory_utilization=0.3)
    assert isinstance(engine, Sampler)
    assert engine.llm.kwargs["dtype"] == "bfloat16" and engine.llm.kwargs["gpu_memory_utilization"] == 0.3
    assert engine.llm.kwargs["logprobs_mode"] == "processed_logprobs"
    params = SamplingParams(temperature=0.7, top_p=0.9, top_k=0, max_new_tokens=9, stop=["|"], seed=5,
                            step_separator="\n")
    groups = engine.generate(["ab", "cde"], 3, params, prefixes=["", "x\n"])
    requests, vparams = engine.llm.calls[-1]
    assert requests[1]["prompt_token_ids"] == encode_context(engine.tokenizer, "cde", "x\n")
    assert [p.seed for p in vparams] == [5, 6] and vparams[0].top_k == -1 and vparams[0].n == 3
    assert (vparams[0].temperature, vparams[0].top_p, vparams[0].max_tokens, vparams[0].stop) == (0.7, 0.9, 9, ["|"])
    assert vparams[0].include_stop_str_in_output and vparams[0].logprobs == 0
    g = groups[1]
    assert [s.finish_reason for s in g] == ["eos", "length", "stop"]
    assert g[0].token_ids[-1] == 2 and g[0].logprobs == [-0.5, -1.0, -1.5, -2.0]
    assert g[2].meta["prefix"] == "x\n" and g[2].steps == ["x", g[2].text.split("\n")[0], "|"]


def test_load_weights_in_process_and_over_rpc(fake_vllm, rollout_model_dir, model_and_tokenizer):
    from reasonloop.rollout.vllm_backend import VLLMEngine

    policy, _ = model_and_tokenizer
    engine = VLLMEngine(ModelConfig(path=str(rollout_model_dir)))
    shapes = {k: v.shape for k, v in policy.state_dict().items()}
    inner = FakeVLLMModel(shapes)
    engine.llm.inner = types.SimpleNamespace(model_executor=types.SimpleNamespace(
        driver_worker=types.SimpleNamespace(worker=types.SimpleNamespace(model_runner=types.SimpleNamespace(model=inner)))))
    engine.load_weights(policy)
    assert all(torch.equal(inner.store[k], v) for k, v in policy.state_dict().items())
    assert engine.llm.resets == 1 and not engine.llm.rpc

    engine.llm.inner = None  # engine in another process: goes through collective_rpc
    engine.llm.model_for_rpc = remote = FakeVLLMModel(shapes)
    engine.load_weights({k: v + 1 for k, v in policy.state_dict().items()})
    assert all(torch.equal(remote.store[k], v + 1) for k, v in policy.state_dict().items())
    assert engine.llm.resets == 2 and len(engine.llm.rpc) == 1
