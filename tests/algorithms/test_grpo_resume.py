"""Exact resume: SIGKILL a `reasonloop grpo` run after a checkpoint, resume it, and get the
same metrics (loss, rewards, entropy, ...) as an uninterrupted run, row by row, on CPU.

In the default run: 4 steps on budgets small enough for seconds per run; every feature the
checkpoint must carry (refill, SEC curriculum, minibatches, the overlapped batch in flight) stays on."""

import os
import signal
import subprocess
import sys
import time

import pytest
from run_metrics import metric_rows  # tests/run_metrics.py

from reasonloop.cli import main

ARGS = ["steps=4", "prompts_per_step=2", "samples_per_prompt=3", "sampling.max_new_tokens=8", "overlong_cache=4",
        "eval_problems=2", "eval_max_new_tokens=4", "save_every=2", "num_iterations=2", "minibatches=2",
        "dynamic_sampling=true", "max_refill_rounds=1", "clip_eps_high=0.28", "optim.schedule=cosine",
        "curriculum.categories=[arithmetic|max_ops=2,arithmetic|max_ops=3]", "curriculum.strategy=sec"]


def command(model_dir, out, name, extra=()):
    return [sys.executable, "-m", "reasonloop", "grpo", f"model.path={model_dir}", f"output_dir={out}",
            f"run_name={name}", *ARGS, *extra]


@pytest.mark.parametrize("extra", [(), ("overlap_sampling=true",)], ids=["sync", "overlap"])
def test_sigkill_then_resume_matches_uninterrupted_run(tiny_model_dir, tmp_path, extra):
    """With `overlap_sampling` the checkpoint also holds the batch sampled during its step."""
    env = {**os.environ, "REASONLOOP_QUIET": "1", "OMP_NUM_THREADS": "1"}
    # only the run that is killed needs its own process; the others run in this one (no second start-up)
    assert main(command(tiny_model_dir, tmp_path, "full", extra)[3:]) == 0

    proc = subprocess.Popen(command(tiny_model_dir, tmp_path, "killed", extra), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    latest = tmp_path / "killed" / "checkpoints" / "latest"
    deadline = time.time() + 300
    while not (latest.exists() and latest.read_text().strip() == "step-000002"):
        assert proc.poll() is None and time.time() < deadline, "run ended before checkpoint 2 appeared"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "summary.json").exists()  # it really was cut short

    assert main(command(tiny_model_dir, tmp_path, "killed", extra)[3:] + ["--resume"]) == 0
    full, resumed = metric_rows(tmp_path / "full" / "metrics.jsonl"), metric_rows(tmp_path / "killed" / "metrics.jsonl")
    assert [r["step"] for r in resumed] == [r["step"] for r in full] == [0, 1, 2, 3, 4]
    for a, b in zip(full, resumed):
        assert a.keys() == b.keys()
        for key in a:
            assert a[key] == pytest.approx(b[key], abs=1e-6), (a["step"], key)
