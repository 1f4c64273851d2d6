"""Sampling commands on Ray rollout workers write what the single-process command writes."""

import json

import pytest
from run_metrics import metric_rows  # tests/run_metrics.py

from reasonloop.cli import main
from reasonloop.config import load_config
from reasonloop.rollout import sample
from reasonloop.store.jsonl import read_jsonl
from reasonloop.types import Sample

TINY_TASK = ["task.options={max_ops: 2, min_ops: 2}"]


def rows(path):
    """(sample without its logprobs, logprobs, policy version) per row."""
    out = []
    for s in read_jsonl(path, Sample):
        version = s.meta.pop("policy_version", None)
        logprobs, s.logprobs = s.logprobs, []
        out.append((s, logprobs, version))
    return out


def assert_same_samples(one, two):
    assert [r[0] for r in one] == [r[0] for r in two]
    for a, b in zip(one, two):  # another batch composition: float sums in another order
        assert a[1] == pytest.approx(b[1], abs=1e-5)
    assert {r[2] for r in one} == {None} and len({r[2] for r in two}) == 1  # tagged with the policy version


def test_sample_on_two_workers_equals_one_process(pool, tiny_model_dir, tmp_path):
    """`sample.main` with the workers as its sampler (what `cluster.workers=2` passes it)."""
    args = [f"model.path={tiny_model_dir}", "model.device=cpu", "num_problems=5", "samples_per_prompt=3",
            "sampling.max_new_tokens=10", *TINY_TASK]
    sample.main(load_config(sample.SampleConfig, None, [*args, f"output={tmp_path}/one.jsonl"]))
    sample.main(load_config(sample.SampleConfig, None, [*args, f"output={tmp_path}/two.jsonl"]),
                sampler_factory=lambda sampler, model: pool)
    one, two = rows(tmp_path / "one.jsonl"), rows(tmp_path / "two.jsonl")
    assert len(one) == 15
    assert_same_samples(one, two)


@pytest.mark.slow
def test_cli_sample_and_eval_with_cluster_workers_equal_one_process(ray_cluster, tiny_model_dir, tmp_path):
    common = [f"model.path={tiny_model_dir}", "model.device=cpu", "num_problems=5", *TINY_TASK]
    for workers in (0, 2):
        assert main(["sample", *common, "samples_per_prompt=3", "sampling.max_new_tokens=10",
                     f"output={tmp_path}/s{workers}.jsonl", f"cluster.workers={workers}",
                     "cluster.cpus_per_worker=0"]) == 0
        assert main(["eval", *common, "samples_per_prompt=3", "max_new_tokens=10", f"output_dir={tmp_path}",
                     f"run_name=e{workers}", f"cluster.workers={workers}", "cluster.cpus_per_worker=0"]) == 0
    assert_same_samples(rows(tmp_path / "s0.jsonl"), rows(tmp_path / "s2.jsonl"))
    results = [json.loads((tmp_path / f"e{w}/results.json").read_text()) for w in (0, 2)]
    assert [r.pop("eval_seconds") >= 0 for r in results] == [True, True] and results[0] == results[1]
    assert (tmp_path / "e0/records.jsonl").read_text() == (tmp_path / "e2/records.jsonl").read_text()


def test_cluster_keys_are_checked(capsys):
    assert main(["sample", "cluster.wrokers=2"]) == 2
    assert "did you mean cluster.'workers'" in capsys.readouterr().err
    assert main(["eval", "cluster.threads_per_worker=0"]) == 2
    assert "threads_per_worker >= 1" in capsys.readouterr().err


def test_selftrain_sampling_on_two_workers_is_the_one_process_run(pool, tiny_model_dir, tmp_path, monkeypatch):
    """Its samples drawn by the workers, which get the trained weights after every iteration (sync_weights)."""
    import reasonloop.algorithms.selftrain as st
    from reasonloop.rollout.factory import plain_weights

    real = st.sample_and_verify

    def every_sample_correct(*a, **k):  # an untrained tiny model is never right; the loop needs kept data
        samples = real(*a, **k)
        for i, s in enumerate(samples):
            s.rewards["correct"] = 1.0
            s.text = s.text or f"empty {i}"
        return samples

    monkeypatch.setattr(st, "sample_and_verify", every_sample_correct)
    args = [f"model.path={tiny_model_dir}", "model.device=cpu", "iterations=2", "problems_per_iteration=4",
            "samples_per_prompt=2", "sampling.max_new_tokens=8", "train.max_steps=2", "train.batch_size=4",
            "train.micro_batch_size=4", "train.optim.lr=1e-2", "eval_problems=2", "eval_max_new_tokens=4",
            f"output_dir={tmp_path}", *TINY_TASK]

    def on_workers(sampler, model, policy=None, tokenizer=None):  # what `cluster.workers=2` passes
        pool.load_weights(plain_weights(policy))
        return pool

    st.main(load_config(st.SelfTrainConfig, None, [*args, "run_name=one"]))
    st.main(load_config(st.SelfTrainConfig, None, [*args, "run_name=two"]), sampler_factory=on_workers)
    for it in (1, 2):  # iteration 2 is sampled by the weights iteration 1 trained
        one = rows(tmp_path / f"one/samples/iter_{it:03d}.jsonl")
        two = rows(tmp_path / f"two/samples/iter_{it:03d}.jsonl")
        assert len(one) == 8
        assert_same_samples(one, two)
    a, b = metric_rows(tmp_path / "one/metrics.jsonl"), metric_rows(tmp_path / "two/metrics.jsonl")
    assert len(a) == len(b) == 3
    for x, y in zip(a, b):
        for key in x:
            assert x[key] == pytest.approx(y[key], abs=1e-5), key
