"""The grpo loop: config validation, sampler logprobs == pi_old, every variant updates, a smoke run."""

import json

import pytest
import torch
from run_metrics import metric_rows  # tests/run_metrics.py

from reasonloop.algorithms.common import OptimConfig
from reasonloop.algorithms.curriculum import CurriculumConfig
from reasonloop.algorithms.grpo import GRPOConfig, main
from reasonloop.algorithms.grpo_batches import hint_prompt
from reasonloop.algorithms.grpo_update import TrainRow, recompute_old_logprobs, update_policy
from reasonloop.config import load_config
from reasonloop.models.policy import ModelConfig, load_model
from reasonloop.rollout.engine import TorchEngine
from reasonloop.rollout.sampler import SamplingParams
from reasonloop.tasks import make_task


def tiny_cfg(model_dir, tmp_path, **kw):
    base = {"model": ModelConfig(path=str(model_dir)), "steps": 2, "prompts_per_step": 2, "samples_per_prompt": 3,
                "sampling": SamplingParams(temperature=1.0, max_new_tokens=12), "overlong_cache": 4, "eval_problems": 4,
                "eval_max_new_tokens": 8, "save_every": 1, "output_dir": str(tmp_path), "run_name": "run"}
    return GRPOConfig(**{**base, **kw})


def test_config_validation_names_the_problem():
    with pytest.raises(ValueError, match="samples_per_prompt"):
        GRPOConfig(samples_per_prompt=1)
    with pytest.raises(ValueError, match="difficulty_band"):
        GRPOConfig(difficulty_band=[0.8, 0.2])
    with pytest.raises(ValueError, match="temperature"):
        GRPOConfig(sampling=SamplingParams(temperature=0.0))
    with pytest.raises(ValueError, match="advantage"):
        load_config(GRPOConfig, None, ["advantage=ppo"])


def test_yaml_configs_load():
    from pathlib import Path

    files = sorted(Path(__file__).parents[2].glob("configs/grpo/*.yaml"))
    assert files
    for f in files:
        load_config(GRPOConfig, f)


@pytest.fixture(scope="module")
def policy(tiny_model_dir):
    torch.manual_seed(0)
    model, tok = load_model(ModelConfig(path=str(tiny_model_dir)), for_training=True)
    return model, tok, TorchEngine(model, tok)


def rows_from(engine, temperature=0.7, hint=False):
    task = make_task("arithmetic", size=4, seed=0)
    problems = [task[i] for i in range(2)]
    prompts = [hint_prompt(p, 1) if hint else p.prompt for p in problems]
    groups = engine.generate(prompts, 3, SamplingParams(temperature=temperature, max_new_tokens=10, seed=3))
    rows = []
    for p, prompt, g in zip(problems, prompts, groups):
        for k, s in enumerate(g):
            rows.append(TrainRow(arm=0, context=engine.encode_context(p.prompt),
                                 sample_context=engine.encode_context(prompt), completion=s.token_ids,
                                 old_logprobs=list(s.logprobs), advantage=float(k - 1), masked=False, reward=0.0))
    return rows


def test_sampler_logprobs_are_the_old_logprobs(policy):
    """The reuse that saves a forward pass: a teacher-forced pass at the same T gives the same numbers."""
    model, tok, engine = policy
    rows = rows_from(engine)
    sampled = [list(r.old_logprobs) for r in rows]
    cfg = GRPOConfig(sampling=SamplingParams(temperature=0.7, max_new_tokens=10), overlong_cache=4)
    recompute_old_logprobs(cfg, model, rows, tok.pad_token_id, "cpu")
    for a, b in zip(sampled, rows):
        assert torch.allclose(torch.tensor(a), torch.tensor(b.old_logprobs), atol=1e-4)


@pytest.mark.parametrize("variant", [
    {}, {"clip": "dual_clip", "loss_agg": "seq_mean"}, {"clip": "gppo", "loss_agg": "constant"},
    {"clip_eps_high": 0.28, "num_iterations": 2, "minibatches": 2}, {"kl_coef": 0.1, "kl_estimator": "k2"},
])
def test_every_variant_takes_a_finite_step_that_changes_the_weights(tiny_model_dir, variant):
    model, tok = load_model(ModelConfig(path=str(tiny_model_dir)), for_training=True)
    ref = load_model(ModelConfig(path=str(tiny_model_dir)))[0] if variant.get("kl_coef") else None
    engine = TorchEngine(model, tok)
    cfg = GRPOConfig(sampling=SamplingParams(temperature=0.7, max_new_tokens=10), overlong_cache=4,
                     prompts_per_step=2, samples_per_prompt=3, micro_batch_size=4, **variant)
    rows = rows_from(engine)
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    import random

    m = update_policy(cfg, model, ref, opt, sched, rows, 2, tok.pad_token_id, "cpu", random.Random(0))
    assert all(torch.isfinite(torch.tensor(v)) for v in m.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    if cfg.num_iterations == 1 and cfg.minibatches == 1:  # on-policy: ratio is 1 up to float noise
        assert m["policy/ratio_mean"] == pytest.approx(1.0, abs=1e-4)
        assert m["policy/clip_frac"] == 0.0


def test_guide_rows_use_hinted_logprobs_as_pi_old(policy):
    model, tok, engine = policy
    rows = rows_from(engine, hint=True)
    cfg = GRPOConfig(sampling=SamplingParams(temperature=0.7, max_new_tokens=10), overlong_cache=4)
    sampled = [list(r.old_logprobs) for r in rows]
    recompute_old_logprobs(cfg, model, rows, tok.pad_token_id, "cpu")  # over the hinted context: same numbers
    assert torch.allclose(torch.tensor(sampled[0]), torch.tensor(rows[0].old_logprobs), atol=1e-4)
    assert len(rows[0].sample_context) > len(rows[0].context)


def test_smoke_run_writes_metrics_checkpoints_and_summary(tiny_model_dir, tmp_path):
    cfg = tiny_cfg(tiny_model_dir, tmp_path, dynamic_sampling=True, max_refill_rounds=1, guide=True,
                   format_weight=0.1, overlong_weight=0.5,
                   curriculum=CurriculumConfig(categories=["arithmetic|max_ops=2", "arithmetic|max_ops=3"],
                                                           strategy="sec"))
    summary = main(cfg)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 2]
    assert "eval/greedy_accuracy" in rows[0] and "eval/greedy_accuracy" in rows[-1]
    for r in rows[1:]:
        assert r["groups/sampled"] >= 2 and "health/zero_variance" in r and "curriculum/q1" in r
    assert (tmp_path / "run" / "checkpoints" / "step-000002" / "trainer_state.pt").exists()
    assert (tmp_path / "run" / "final" / "config.json").exists()
    assert summary["final_accuracy"] is not None and summary["steps"] == 2


def test_lora_updates_only_adapters_and_uses_base_as_reference(tiny_model_dir):
    import random

    from reasonloop.models.lora import LoRAConfig, apply_lora

    model, tok = load_model(ModelConfig(path=str(tiny_model_dir)), for_training=True)
    model = apply_lora(model, LoRAConfig(r=4))
    engine = TorchEngine(model, tok)
    cfg = GRPOConfig(sampling=SamplingParams(temperature=0.7, max_new_tokens=10), overlong_cache=4,
                     prompts_per_step=2, samples_per_prompt=3, kl_coef=0.1, lora=LoRAConfig(r=4))
    rows = rows_from(engine)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    first = update_policy(cfg, model, None, opt, sched, rows, 2, tok.pad_token_id, "cpu", random.Random(0))
    assert first["policy/kl"] == pytest.approx(0.0, abs=1e-6)  # adapters start at zero: policy == reference
    second = update_policy(cfg, model, None, opt, sched, rows, 2, tok.pad_token_id, "cpu", random.Random(0))
    assert second["policy/kl"] > 0
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if not p.requires_grad)


@pytest.mark.parametrize("loss_agg", ["token_mean", "seq_mean"])
def test_skipping_zero_advantage_rows_gives_the_same_update(tiny_model_dir, loss_agg):
    import random

    results = []
    for skip in (True, False):
        model, tok = load_model(ModelConfig(path=str(tiny_model_dir)), for_training=True)
        rows = rows_from(TorchEngine(model, tok))
        for r in rows[:3]:
            r.advantage = 0.0  # a zero-variance group (rows_from also gives one 0 in the other group)
        cfg = GRPOConfig(sampling=SamplingParams(temperature=0.7, max_new_tokens=10), overlong_cache=4,
                         prompts_per_step=2, samples_per_prompt=3, loss_agg=loss_agg, skip_zero_advantage=skip)
        # SGD: Adam would amplify last-bit differences of near-zero gradients (different batch shapes)
        opt = torch.optim.SGD(model.parameters(), lr=1e-2, momentum=0.9)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
        for _ in range(2):
            m = update_policy(cfg, model, None, opt, sched, rows, 2, tok.pad_token_id, "cpu", random.Random(0))
        results.append(([p.detach().clone() for p in model.parameters()], m))
    (skipped, m_skip), (full, m_full) = results
    assert m_skip["policy/rows_trained_frac"] == pytest.approx(2 / 6) and m_full["policy/rows_trained_frac"] == 1.0
    assert m_skip["loss"] == pytest.approx(m_full["loss"], abs=1e-6)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(skipped, full))


@pytest.mark.parametrize("variant", [{}, {"kl_coef": 0.1}, {"loss_agg": "seq_mean", "num_iterations": 2}])
def test_shared_prefix_update_equals_one_pass_per_row(tiny_model_dir, variant):
    import random

    finals = []
    for share in (True, False):
        model, tok = load_model(ModelConfig(path=str(tiny_model_dir)), for_training=True)
        ref = load_model(ModelConfig(path=str(tiny_model_dir)))[0] if variant.get("kl_coef") else None
        rows = rows_from(TorchEngine(model, tok))
        cfg = GRPOConfig(sampling=SamplingParams(temperature=0.7, max_new_tokens=10), overlong_cache=4,
                         prompts_per_step=2, samples_per_prompt=3, share_prefix=share, **variant)
        opt = torch.optim.SGD(model.parameters(), lr=1e-2, momentum=0.9)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
        m = update_policy(cfg, model, ref, opt, sched, rows, 2, tok.pad_token_id, "cpu", random.Random(0))
        finals.append(([p.detach().clone() for p in model.parameters()], m))
    (shared, m_shared), (plain, m_plain) = finals
    assert m_shared["loss"] == pytest.approx(m_plain["loss"], abs=1e-5)
    assert m_shared["policy/entropy"] == pytest.approx(m_plain["policy/entropy"], abs=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(shared, plain))


def test_overlap_sampling_trains_one_step_off_policy_and_resumes_exactly(tiny_model_dir, tmp_path, monkeypatch):
    """Overlapped sampling: step t+1's batch is drawn by the weights step t starts from, so it
    differs from the synchronous run from step 2 on (not step 1); it is deterministic, and a run
    resumed from a mid-run checkpoint (which stores the batch in flight) matches it row by row."""
    import shutil

    # an untrained model is never right: a reward on the digits it writes gives every group variance
    (tmp_path / "digit_rewards.py").write_text(
        "def digits(problem, completion):\n    return sum(c.isdigit() for c in completion) / 10\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    kw = {"steps": 4, "save_every": 2, "optim": OptimConfig(lr=3e-2, schedule="constant"), "eval_problems": 2,
          "rewards": {"digit_rewards:digits": 1.0}}
    sync = main(tiny_cfg(tiny_model_dir, tmp_path, run_name="sync", **kw))
    main(tiny_cfg(tiny_model_dir, tmp_path, run_name="overlap", overlap_sampling=True, **kw))
    main(tiny_cfg(tiny_model_dir, tmp_path, run_name="again", overlap_sampling=True, **kw))
    sync_rows, over_rows = metric_rows(tmp_path / "sync" / "metrics.jsonl"), metric_rows(tmp_path / "overlap" / "metrics.jsonl")
    assert over_rows == metric_rows(tmp_path / "again" / "metrics.jsonl")  # deterministic
    assert sync_rows[1] == over_rows[1]  # step 1: both sample with the initial weights
    assert sync_rows[2]["reward/mean"] != over_rows[2]["reward/mean"] or sync_rows[2]["loss"] != over_rows[2]["loss"]
    assert sync["steps"] == 4

    # resume from checkpoint 2, as if the run had been killed after writing it
    shutil.copytree(tmp_path / "overlap", tmp_path / "resumed")
    ckpts = tmp_path / "resumed" / "checkpoints"
    shutil.rmtree(ckpts / "step-000004")
    (ckpts / "latest").write_text("step-000002\n")
    state = torch.load(ckpts / "step-000002" / "trainer_state.pt", weights_only=False)["extra"]
    assert state["pending_batch"].groups  # the batch in flight at step 2 is in the checkpoint
    main(tiny_cfg(tiny_model_dir, tmp_path, run_name="resumed", overlap_sampling=True, resume=True, **kw))
    assert metric_rows(tmp_path / "resumed" / "metrics.jsonl") == over_rows


def test_overlap_sampling_needs_sampler_logprobs(tiny_model_dir, tmp_path):
    with pytest.raises(ValueError, match="overlap_sampling needs old_logprobs='sampler'"):
        tiny_cfg(tiny_model_dir, tmp_path, overlap_sampling=True, old_logprobs="recompute")


def test_overlap_sampling_with_lora_and_a_reference_model(tiny_model_dir, tmp_path):
    """The worker's copy of a LoRA-wrapped policy takes the adapters' updates (through the HF decode
    path), and a KL term in the loss works under the one-step lag."""
    from reasonloop.algorithms.overlap import OverlappedSampling
    from reasonloop.models.lora import LoRAConfig, apply_lora

    model, _ = load_model(ModelConfig(path=str(tiny_model_dir)), for_training=True)
    model = apply_lora(model, LoRAConfig(r=4))
    overlap = OverlappedSampling(model, lambda copy_: None, lambda *a: None)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.add_(1.0)
    overlap.load_weights(model)
    theirs = dict(model.named_parameters())
    assert all(torch.equal(p, theirs[name]) for name, p in overlap.model.named_parameters())
    assert not any(p.requires_grad for p in overlap.model.parameters())
    overlap.close()

    summary = main(tiny_cfg(tiny_model_dir, tmp_path, steps=3, overlap_sampling=True, lora=LoRAConfig(r=4),
                            kl_coef=0.05, optim=OptimConfig(lr=1e-2, schedule="constant")))
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert summary["steps"] == 3 and [r["step"] for r in rows] == [0, 1, 2, 3]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in rows[1:])


def test_grpo_walks_a_finite_dataset_by_epochs_and_resumes_exactly(tiny_model_dir, tmp_path):
    """A GSM8K-format file of 4 problems, 3 prompts a step: step 2 crosses into the second epoch inside
    its batch (a new seeded order); a run resumed from checkpoint 2 draws what the uninterrupted run drew."""
    import shutil
    from pathlib import Path

    from reasonloop.tasks.spec import TaskSpec

    source = Path(__file__).resolve().parents[1] / "fixtures" / "gsm8k.jsonl"
    kw = {"task": TaskSpec(name="gsm8k", source=str(source), split="train"), "steps": 4, "save_every": 2,
          "eval_problems": 0, "prompts_per_step": 3, "samples_per_prompt": 2}
    main(tiny_cfg(tiny_model_dir, tmp_path, run_name="full", **kw))
    rows = metric_rows(tmp_path / "full" / "metrics.jsonl")
    assert [r["data/epochs"] for r in rows[1:]] == [0.75, 1.5, 2.25, 3.0]
    mid = torch.load(tmp_path / "full/checkpoints/step-000002/trainer_state.pt", weights_only=False)["extra"]
    assert mid["cursors"][0]["epoch"] == 1 and mid["cursors"][0]["position"] == 2

    shutil.copytree(tmp_path / "full", tmp_path / "resumed")
    ckpts = tmp_path / "resumed" / "checkpoints"
    shutil.rmtree(ckpts / "step-000004")
    (ckpts / "latest").write_text("step-000002\n")
    main(tiny_cfg(tiny_model_dir, tmp_path, run_name="resumed", resume=True, **kw))
    assert metric_rows(tmp_path / "resumed" / "metrics.jsonl") == rows


def test_grpo_with_a_vllm_sampler_copies_each_update_into_it(tiny_model_dir, tmp_path, monkeypatch):
    """sampler.kind=vllm (a fake `vllm` module; no GPU here): the engine samples, the trainer recomputes
    pi_old, and after the run the engine's weights are the trained policy's."""
    from fake_servers import install_vllm_with_model

    from reasonloop.rollout.factory import SamplerConfig

    model, _ = load_model(ModelConfig(path=str(tiny_model_dir)))
    llms = install_vllm_with_model(monkeypatch, model)

    with pytest.raises(ValueError, match="old_logprobs=recompute"):
        tiny_cfg(tiny_model_dir, tmp_path, sampler=SamplerConfig(kind="vllm"))
    # the fake engine's samples differ in length: a length reward gives every group variance
    (tmp_path / "length_rewards.py").write_text("def length(problem, completion):\n    return len(completion) / 10\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = tiny_cfg(tiny_model_dir, tmp_path, sampler=SamplerConfig(kind="vllm"), old_logprobs="recompute",
                   eval_problems=0, optim=OptimConfig(lr=1e-2, schedule="constant"),
                   rewards={"length_rewards:length": 1.0})
    main(cfg)
    assert len(llms) == 1 and llms[0].calls  # the vLLM engine drew the samples
    trained, _ = load_model(ModelConfig(path=str(tmp_path / "run" / "final")))
    assert any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(), trained.state_dict().values()))
    assert all(torch.allclose(llms[0].inner_model.store[k], v) for k, v in trained.state_dict().items())
