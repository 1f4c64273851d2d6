"""selftrain killed in the middle of an iteration's training resumes from its last step checkpoint
and ends with exactly the weights of an uninterrupted run."""

import pytest
import torch
from safetensors.torch import load_file

import reasonloop.algorithms.selftrain as st
from reasonloop.algorithms.sft import TrainConfig
from reasonloop.models.lora import LoRAConfig
from reasonloop.models.policy import ModelConfig
from reasonloop.rollout.sampler import SamplingParams
from reasonloop.tasks.spec import TaskSpec


class Killed(Exception):
    pass


def _cfg(tmp_path, model_dir, run_name, **kw):
    return st.SelfTrainConfig(**{
        "model": ModelConfig(path=str(model_dir), use_chat_template=False),
        "task": TaskSpec("arithmetic", {"min_ops": 2, "max_ops": 2}),
        "iterations": 2, "problems_per_iteration": 6, "samples_per_prompt": 2,
        "sampling": SamplingParams(temperature=1.0, max_new_tokens=8), "max_kept_per_problem": 2,
        "train": TrainConfig(max_steps=5, batch_size=4, micro_batch_size=2), "train_save_every": 2,
        "eval_problems": 2, "eval_max_new_tokens": 4, "output_dir": str(tmp_path), "run_name": run_name, **kw,
    })



def _weights(run_dir):
    return load_file(str(run_dir / "final" / "model.safetensors"))


@pytest.mark.parametrize("kill_iteration,init,lora_r", [(1, "continue", 0), (2, "base", 0), (2, "continue", 4)])
def test_killed_mid_training_resumes_to_the_uninterrupted_weights(tiny_model_dir, tmp_path, monkeypatch,
                                                                   kill_iteration, init, lora_r, every_sample_correct):
    """Also with LoRA: step and iteration checkpoints hold the adapter, the final model is merged."""
    lora = LoRAConfig(r=lora_r, alpha=8)
    st.main(_cfg(tmp_path, tiny_model_dir, "uninterrupted", init_each_iteration=init, lora=lora, keep_last=1))
    assert [p.name for p in (tmp_path / "uninterrupted" / "checkpoints").glob("step-*")] == ["step-000002"]

    # kill right after optimizer step 3 of `kill_iteration`: the last step checkpoint is step 2
    real_fit, calls = st.fit, []

    def killing_fit(*a, on_step=None, **k):
        calls.append(1)

        def step_then_die(step, metrics):
            on_step(step, metrics)
            if len(calls) == kill_iteration and step == 3:
                raise Killed
        return real_fit(*a, on_step=step_then_die, **k)

    monkeypatch.setattr(st, "fit", killing_fit)
    cfg = _cfg(tmp_path, tiny_model_dir, "killed", init_each_iteration=init, lora=lora, keep_last=1)
    with pytest.raises(Killed):
        st.main(cfg)
    run = tmp_path / "killed"
    state = __import__("json").loads((run / "state.json").read_text())
    assert state == {"iteration": kill_iteration - 1, "phase": "training", "step": 2,
                     "checkpoint": f"iter-{kill_iteration:03d}-step-000002"}
    samples = (run / "samples" / f"iter_{kill_iteration:03d}.jsonl").read_bytes()

    resumed_from = []
    monkeypatch.setattr(st, "fit", lambda *a, start_step=0, **k: resumed_from.append(start_step) or real_fit(
        *a, start_step=start_step, **k))
    cfg.resume = True
    out = st.main(cfg)
    assert resumed_from[0] == 2  # the killed iteration continued at its checkpoint, not from step 0
    assert (run / "samples" / f"iter_{kill_iteration:03d}.jsonl").read_bytes() == samples
    assert [m["iteration"] for m in out["iterations"]] == [0, 1, 2]
    ref, got = _weights(tmp_path / "uninterrupted"), _weights(run)
    assert ref.keys() == got.keys() and all(torch.equal(ref[k], got[k]) for k in ref)
    # training moved the weights, so the equality above is not trivially true
    base = load_file(str(tiny_model_dir / "model.safetensors"))
    assert any(not torch.equal(base[k], ref[k]) for k in ref)
    assert not list((run / "checkpoints").glob("iter-*-step-*"))  # step checkpoints go once an iteration ends
