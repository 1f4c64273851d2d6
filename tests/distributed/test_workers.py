"""Rollout and verifier workers on Ray: same samples as one process, weight sync, faults, timeouts."""

import dataclasses
import os
import signal
import time

import pytest
import torch

from reasonloop.distributed.workers import RolloutPool, VerifierPool, pack_state, shard_bounds, unpack_state
from reasonloop.models.policy import ModelConfig, load_model
from reasonloop.rollout.engine import TorchEngine
from reasonloop.rollout.sampler import SamplingParams

PROMPTS = [f"{a} + {b} =" for a, b in [(1, 2), (13, 4), (7, 70), (2, 2), (5, 9), (11, 31), (8, 1)]]


def strip_version(groups):
    return [[(s.text, s.token_ids, s.finish_reason, {k: v for k, v in s.meta.items() if k != "policy_version"})
             for s in g] for g in groups]


def assert_same(got, want):
    assert strip_version(got) == strip_version(want)
    for g, w in zip(got, want):
        for a, b in zip(g, w):
            assert a.logprobs == pytest.approx(b.logprobs, abs=1e-5)


def test_shard_bounds_cover_in_order():
    for n in range(9):
        for k in range(1, 4):
            bounds = shard_bounds(n, k)
            assert [i for a, b in bounds for i in range(a, b)] == list(range(n))
            sizes = [b - a for a, b in bounds]
            assert max(sizes) - min(sizes) <= 1


def test_pack_state_round_trip_keeps_dtypes():
    state = {"a": torch.randn(3, 2), "b": torch.randn(4).to(torch.bfloat16), "c": torch.arange(3)}
    back = unpack_state(pack_state(state))
    assert all(back[k].dtype == state[k].dtype and torch.equal(back[k], state[k]) for k in state)


@pytest.fixture(scope="module")
def local(tiny_model_dir):
    model, tok = load_model(ModelConfig(path=str(tiny_model_dir), device="cpu"))
    return TorchEngine(model, tok, model_id=str(tiny_model_dir))


def test_two_workers_draw_what_one_process_draws(pool, local):
    params = SamplingParams(temperature=1.0, max_new_tokens=12, seed=3)
    want = local.generate(PROMPTS, 3, params)
    got = pool.generate(PROMPTS, 3, params)
    assert_same(got, want)
    assert {s.meta["policy_version"] for g in got for s in g} == {pool.version}
    # seedless: the pool draws the seed from torch's global RNG exactly as the engine does
    torch.manual_seed(11)
    want = local.generate(PROMPTS, 2, SamplingParams(max_new_tokens=8))
    torch.manual_seed(11)
    assert_same(pool.generate(PROMPTS, 2, SamplingParams(max_new_tokens=8)), want)


def test_weight_sync_then_a_killed_worker_is_restarted_and_its_call_redone(pool, local):
    """New weights reach the workers; a worker SIGKILLed mid-call comes back, catches up, redoes it."""
    original = {k: v.clone() for k, v in local.model.state_dict().items()}
    with torch.no_grad():
        for p in local.model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    version = pool.push_weights(local.model)
    try:
        check_restart_redoes_the_call(pool, local, version)
    finally:  # the module's engine goes back to the model directory's weights
        local.model.load_state_dict(original)


def test_a_lora_policy_reaches_the_workers_merged(pool, local, tiny_model_dir):
    """A peft policy is sent as merged plain weights: the workers sample what the LoRA policy samples in-process."""
    from reasonloop.models.lora import LoRAConfig, apply_lora

    policy = apply_lora(load_model(ModelConfig(path=str(tiny_model_dir), device="cpu"))[0], LoRAConfig(r=4))
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.3)  # peft starts B at zero: make the adapters change the samples
    params = SamplingParams(temperature=1.0, max_new_tokens=16, seed=7)
    base = pool.generate(PROMPTS, 2, params)
    version = pool.push_weights(policy)
    want = TorchEngine(policy, local.tokenizer, model_id=str(tiny_model_dir)).generate(PROMPTS, 2, params)
    got = pool.generate(PROMPTS, 2, params)
    assert strip_version(got) == strip_version(want) and strip_version(got) != strip_version(base)
    for g, w in zip(got, want):
        for a, b in zip(g, w):
            assert a.logprobs == pytest.approx(b.logprobs, abs=1e-4)  # merged weights vs the adapter forward
    assert {s.meta["policy_version"] for g in got for s in g} == {version}


def check_restart_redoes_the_call(pool, local, version):
    params = SamplingParams(temperature=1.0, max_new_tokens=48, seed=5)
    prompts = PROMPTS * 6
    want = local.generate(prompts, 4, params)
    before = pool.pids()
    pending = pool.submit(prompts, 4, params)
    time.sleep(0.3)  # the call is running (it takes seconds): kill the worker holding the first shard
    os.kill(before[0], signal.SIGKILL)
    got = pending.result()
    assert_same(got, want)
    assert {s.meta["policy_version"] for g in got for s in g} == {version}
    after = pool.pids()
    assert after[0] != before[0] and after[1] == before[1]


def test_a_stuck_call_times_out_and_a_dead_worker_fails_loudly(ray_cluster, cluster, tiny_model_dir):
    """No hang: a call past cluster.timeout_s raises; a worker dying past max_restarts raises (one message each)."""
    fragile = dataclasses.replace(cluster, timeout_s=0.05, max_restarts=0)
    pool = RolloutPool(ModelConfig(path=str(tiny_model_dir), device="cpu"), fragile, count=1)
    try:
        with pytest.raises(TimeoutError, match="cluster.timeout_s=0.05"):
            pool.generate(PROMPTS * 20, 8, SamplingParams(max_new_tokens=64, seed=0))
        pool.cluster = dataclasses.replace(fragile, timeout_s=120)
        pid = pool.pids()[0]
        pending = pool.submit(PROMPTS * 20, 8, SamplingParams(max_new_tokens=64, seed=0))
        time.sleep(0.3)
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(RuntimeError, match="died during sampling more than cluster.max_restarts=0"):
            pending.result()
    finally:
        pool.close()


def test_verifier_pool_scores_in_order_and_survives_a_kill(ray_cluster, cluster):
    from reasonloop.tasks.spec import TaskSpec

    task = TaskSpec("arithmetic").build(split="test", size=9, seed=0)
    problems = list(task)
    texts = [p.answer if i % 2 else "no idea" for i, p in enumerate(problems)]
    want = [task.verify(p, t) for p, t in zip(problems, texts)]
    verifier = VerifierPool(task, cluster)
    try:
        assert verifier.score(problems, texts) == want
        os.kill(verifier.pids()[1], signal.SIGKILL)
        assert verifier.score(problems, texts) == want
    finally:
        verifier.close()


def test_docstring_examples():
    import doctest

    import reasonloop.distributed.workers as module

    assert doctest.testmod(module).failed == 0
