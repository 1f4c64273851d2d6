"""Rollout workers with sampler.kind=vllm on Ray: each worker hosts a `VLLMEngine` over the fake `vllm`
package in tests/fake_vllm (no GPU or vLLM here) and takes each policy version through `load_weights`."""

import sys
from pathlib import Path

import torch

from reasonloop.distributed.workers import RolloutPool
from reasonloop.models.policy import ModelConfig, load_model
from reasonloop.rollout.factory import SamplerConfig, sync_weights
from reasonloop.rollout.sampler import SamplingParams

FAKE_VLLM = str(Path(__file__).resolve().parent.parent / "fake_vllm")  # as conftest.py hands it to the workers
PROMPTS = [f"{a} + {b} =" for a, b in [(1, 2), (13, 4), (7, 70), (2, 2), (5, 9)]]


def tags(groups) -> set[str]:
    """The weight digests the fake model stamped on the samples (" w=<digest>" ends each text)."""
    return {s.text.rsplit(" w=", 1)[1] for g in groups for s in g}


def rows(groups):
    return [[(s.text, s.token_ids, s.logprobs, s.finish_reason) for s in g] for g in groups]


def test_vllm_workers_sample_in_order_and_take_the_trainers_weights(ray_cluster, cluster, tiny_model_dir,
                                                                     monkeypatch):
    monkeypatch.syspath_prepend(FAKE_VLLM)  # the same fake in this process, for the expected samples
    monkeypatch.delitem(sys.modules, "vllm", raising=False)
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    from vllm import weights_digest

    from reasonloop.rollout.vllm_backend import VLLMEngine

    config = ModelConfig(path=str(tiny_model_dir), device="cpu")
    local = VLLMEngine(config)
    policy = load_model(config)[0]
    params = SamplingParams(temperature=1.0, max_new_tokens=8, seed=4)
    pool = RolloutPool(config, cluster, SamplerConfig(kind="vllm"), count=2)
    try:
        got = pool.generate(PROMPTS, 3, params)
        assert rows(got) == rows(local.generate(PROMPTS, 3, params))
        for prompt, group in zip(PROMPTS, got):  # problem order: the fake's samples start with the prompt's last tokens
            assert [s.token_ids[:2] for s in group] == [local.encode_context(prompt)[-2:]] * 3
        assert {s.meta["policy_version"] for g in got for s in g} == {0}
        assert tags(got) == {weights_digest(policy.state_dict())}  # both workers loaded the checkpoint

        with torch.no_grad():  # a training step, then the sync GRPO does after it
            for p in policy.parameters():
                p.add_(0.01 * torch.randn_like(p))
        new = {name: t.clone() for name, t in policy.state_dict().items()}
        sync_weights(pool, policy)
        assert pool.version == 1
        local.load_weights(policy)
        got = pool.generate(PROMPTS, 3, params)
        assert {s.meta["policy_version"] for g in got for s in g} == {1}
        assert tags(got) == {weights_digest(new)} != {weights_digest(load_model(config)[0].state_dict())}
        assert rows(got) == rows(local.generate(PROMPTS, 3, params))
    finally:
        pool.close()
