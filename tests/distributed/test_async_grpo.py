"""GRPO with its rollouts on Ray workers: staleness 0 is the one-process run; staleness 1 is corrected and logged."""

import pytest
from run_metrics import metric_rows  # tests/run_metrics.py

from reasonloop.cli import main
from reasonloop.config import load_config

ARGS = ["steps=3", "prompts_per_step=2", "samples_per_prompt=3", "sampling.max_new_tokens=8", "overlong_cache=4",
        "eval_problems=2", "eval_max_new_tokens=4", "save_every=0", "dynamic_sampling=true", "max_refill_rounds=1",
        "curriculum.categories=[arithmetic|max_ops=2,arithmetic|max_ops=3]", "curriculum.strategy=sec",
        "model.device=cpu", "cluster.cpus_per_worker=0", "rewards={test_async_grpo:digit_share: 1.0}",
        "optim.lr=3e-3"]


def digit_share(problem, completion: str) -> float:
    """A reward an untrained model's samples differ in (the verifier alone gives zero variance, so no update)."""
    return sum(c.isdigit() for c in completion) / max(1, len(completion))


def grpo(model_dir, out, name, *extra):
    return ["grpo", f"model.path={model_dir}", f"output_dir={out}", f"run_name={name}", *ARGS, *extra]


def run(pool, model_dir, out, name, staleness=None, *extra):
    """grpo in this process, on the shared workers when `staleness` is given (what `cluster.workers=2` does)."""
    from reasonloop.algorithms import grpo as module
    from reasonloop.distributed.async_grpo import RayRollouts

    overrides = [a for a in grpo(model_dir, out, name, *extra)[1:] if not a.startswith("cluster.")]
    if staleness is not None:
        overrides.append(f"max_staleness={staleness}")
    cfg = load_config(module.GRPOConfig, None, overrides)
    if staleness is None:
        return module.main(cfg)
    return module.main(cfg, make_source=lambda recipe: RayRollouts(recipe, pool, staleness, cfg.steps, 120))


def test_staleness_0_on_two_workers_is_the_one_process_run(pool, tiny_model_dir, tmp_path):
    run(pool, tiny_model_dir, tmp_path, "one")
    run(pool, tiny_model_dir, tmp_path, "ray", 0)
    one, ray = metric_rows(tmp_path / "one/metrics.jsonl"), metric_rows(tmp_path / "ray/metrics.jsonl")
    assert [r["step"] for r in ray] == [0, 1, 2, 3]
    assert all(r["groups/kept"] > 0 for r in ray[1:])  # every step updated the policy: versions mattered
    for a, b in zip(one, ray):
        assert a.keys() == b.keys()
        for key in a:
            assert a[key] == pytest.approx(b[key], abs=1e-5), (a["step"], key)


def test_a_lora_policy_on_two_workers_at_staleness_0_is_the_one_process_lora_run(pool, tiny_model_dir, tmp_path):
    """The workers take the LoRA policy's merged weights every step, so they sample what it samples in-process."""
    lora = ("lora.r=4", "lora.alpha=32", "optim.lr=3e-2")
    run(pool, tiny_model_dir, tmp_path, "one", None, *lora)
    run(pool, tiny_model_dir, tmp_path, "ray", 0, *lora)
    one, ray = metric_rows(tmp_path / "one/metrics.jsonl"), metric_rows(tmp_path / "ray/metrics.jsonl")
    assert [r["step"] for r in ray] == [0, 1, 2, 3]
    assert all(r["groups/kept"] > 0 for r in ray[1:])
    assert ray[3]["reward/mean"] != ray[1]["reward/mean"]  # the adapters changed what was sampled
    for a, b in zip(one, ray):
        assert a.keys() == b.keys()
        for key in a:
            assert a[key] == pytest.approx(b[key], abs=1e-4), (a["step"], key)


def test_staleness_1_samples_one_update_behind_and_logs_the_correction(pool, tiny_model_dir, tmp_path):
    run(pool, tiny_model_dir, tmp_path, "async", 1, "old_logprobs=recompute", "offpolicy.mode=token_tis",
        "offpolicy.cap=2")
    rows = metric_rows(tmp_path / "async/metrics.jsonl")[1:]
    # step 1 is drawn by the first weights (0 behind); every later batch by the weights one update older
    assert rows[0]["offpolicy/staleness_0"] == 1.0 and rows[0]["offpolicy/staleness_max"] == 0.0
    for r in rows[1:]:
        assert r["offpolicy/staleness_1"] == 1.0 and r["offpolicy/staleness_mean"] == 1.0
    # a stale sampler differs from pi_old after the first update; never before it
    assert rows[0]["offpolicy/mismatch_kl"] == pytest.approx(0.0, abs=1e-6)
    assert all(r["offpolicy/mismatch_kl"] >= 0 and 0 <= r["offpolicy/clipped_share"] <= 1 for r in rows)
    assert any(r["offpolicy/mismatch_kl"] > 0 for r in rows[1:])


@pytest.mark.slow
def test_cli_grpo_with_cluster_workers_at_staleness_0_is_the_one_process_run(ray_cluster, tiny_model_dir, tmp_path):
    assert main(grpo(tiny_model_dir, tmp_path, "one", "cluster.workers=0")) == 0
    assert main(grpo(tiny_model_dir, tmp_path, "ray", "cluster.workers=2", "max_staleness=0")) == 0
    one, ray = metric_rows(tmp_path / "one/metrics.jsonl"), metric_rows(tmp_path / "ray/metrics.jsonl")
    assert len(one) == len(ray) == 4
    for a, b in zip(one, ray):
        for key in a:
            assert a[key] == pytest.approx(b[key], abs=1e-5), (a["step"], key)


def test_staleness_needs_workers_and_recompute(capsys):
    assert main(["grpo", "max_staleness=1"]) == 2
    assert "old_logprobs=recompute" in capsys.readouterr().err
    with pytest.raises(ValueError, match="cluster.workers"):
        main(["grpo", "max_staleness=1", "old_logprobs=recompute"])


def test_staleness_1_resumes_exactly_with_the_batch_in_flight(pool, tiny_model_dir, tmp_path):
    """The checkpoint after step 1 holds step 2's batch (drawn by the first weights); resuming from it gives
    the uninterrupted run's metrics."""
    import shutil

    extra = ("old_logprobs=recompute", "offpolicy.mode=token_tis", "save_every=1", "keep_last=0")
    run(pool, tiny_model_dir, tmp_path, "full", 1, *extra)
    full = tmp_path / "full"
    cut = tmp_path / "cut"
    shutil.copytree(full, cut)  # the run as a kill right after checkpoint 1 would have left it
    (cut / "checkpoints/latest").write_text("step-000001\n")
    for name in ("step-000002", "step-000003"):
        shutil.rmtree(cut / "checkpoints" / name)
    shutil.rmtree(cut / "final")
    (cut / "summary.json").unlink()
    run(pool, tiny_model_dir, tmp_path, "cut", 1, *extra, "resume=true")
    a, b = metric_rows(full / "metrics.jsonl"), metric_rows(cut / "metrics.jsonl")
    assert [r["step"] for r in b] == [0, 1, 2, 3]
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for key in x:
            assert x[key] == pytest.approx(y[key], abs=1e-5), (x["step"], key)
