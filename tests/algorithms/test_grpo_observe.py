"""What a GRPO run leaves to look at: every step's rollouts, and a stop by a health alarm with a checkpoint."""

from run_metrics import metric_rows  # tests/run_metrics.py

from reasonloop.algorithms.grpo import GRPOConfig, main
from reasonloop.algorithms.health import HealthConfig
from reasonloop.models.policy import ModelConfig
from reasonloop.rollout.sampler import SamplingParams
from reasonloop.store.jsonl import read_jsonl
from reasonloop.store.runs import RunDir
from reasonloop.types import Sample, split_steps


def test_an_alarm_in_stop_on_checkpoints_and_ends_the_run_and_every_step_keeps_its_rollouts(tiny_model_dir,
                                                                                          tmp_path):
    cfg = GRPOConfig(model=ModelConfig(path=str(tiny_model_dir)), steps=5, prompts_per_step=2, samples_per_prompt=3,
                     sampling=SamplingParams(temperature=1.0, max_new_tokens=12), eval_problems=2,
                     eval_max_new_tokens=8, save_every=0, output_dir=str(tmp_path), run_name="run",
                     health=HealthConfig(patience=2, stop_on=["zero_variance"]))
    # an untrained tiny model gets every arithmetic problem wrong: every group has zero reward variance
    summary = main(cfg)
    rows = [r for r in metric_rows(tmp_path / "run" / "metrics.jsonl") if "reward/mean" in r]
    fired = [r["step"] for r in rows if r["health/zero_variance"]]
    assert fired and rows[-1]["step"] == fired[0] < 5  # stopped at the first alarm, not at `steps`
    assert summary["steps"] == fired[0] and "by health alarm zero_variance (health.stop_on)" in summary["stopped"]
    run = RunDir(tmp_path / "run")
    assert run.latest_checkpoint() == run.checkpoint_path(fired[0])  # save_every=0: the stop saved it
    assert run.rollout_steps() == list(range(1, fired[0] + 1))
    samples = read_jsonl(run.rollouts_path(1), Sample)
    assert len(samples) == 2 * 3 and all(s.prompt and "correct" in s.rewards and not s.token_ids for s in samples)
    for s in samples:  # arithmetic checks steps: one verdict per step, and validity agrees with them
        assert len(s.meta["step_verdicts"]) == len(split_steps(s.text))
        assert s.meta["steps_valid"] == all(s.meta["step_verdicts"])
