"""selftrain on a multi-turn environment: verified trajectories are kept and trained on their exact
tokens (environment tokens masked), eval reports turns and tool calls, and a resume stays exact."""

import json
import subprocess
import sys
from typing import ClassVar

import pytest
import torch
from safetensors.torch import load_file

import reasonloop.algorithms.selftrain as st
from reasonloop.algorithms.sft import TrainConfig
from reasonloop.envs import ENVS, EnvSpec, Limits, LongArithmeticTask, Step
from reasonloop.envs.tool_env import LongArithmeticConfig
from reasonloop.models.policy import ModelConfig
from reasonloop.rollout.sampler import SamplingParams
from reasonloop.store.jsonl import read_jsonl
from reasonloop.types import Sample


class Killed(Exception):
    pass


class TwoTurnEnv:
    """Turn 1 gets a tool message back; turn 2 ends the episode, reward 1 iff its text has even length
    (a deterministic rule a random model meets about half the time, so keeping is selective)."""

    tools: ClassVar[list] = []

    def reset(self, problem):
        self.turn = 0
        return [{"role": "user", "content": problem.prompt}]

    def step(self, text):
        self.turn += 1
        if self.turn == 1:
            return Step(observation=[{"role": "tool", "name": "echo", "content": f"seen {len(text)}"}],
                        info={"tool_calls": 1})
        return Step(reward=float(len(text) % 2 == 0), done=True)


@pytest.fixture
def two_turn_env(monkeypatch):
    def build(options):
        return LongArithmeticTask(LongArithmeticConfig(**options, max_digits=6)), TwoTurnEnv

    monkeypatch.setitem(ENVS, "two_turn", build)


def _cfg(tmp_path, model_dir, run_name, **kw):
    return st.SelfTrainConfig(**{
        "model": ModelConfig(path=str(model_dir), use_chat_template=False),
        "env": EnvSpec("two_turn"), "turn_limits": Limits(max_turns=3, max_tokens=400),
        "iterations": 2, "problems_per_iteration": 4, "samples_per_prompt": 2,
        "sampling": SamplingParams(temperature=1.0, max_new_tokens=8), "max_kept_per_problem": 2,
        "train": TrainConfig(max_steps=5, batch_size=2, micro_batch_size=2), "train_save_every": 2,
        "eval_problems": 2, "eval_max_new_tokens": 6, "output_dir": str(tmp_path), "run_name": run_name, **kw,
    })


def test_keeps_verified_trajectories_and_trains_on_their_exact_tokens(tiny_model_dir, tmp_path, monkeypatch,
                                                                      two_turn_env):
    real_fit, trained = st.fit, []
    monkeypatch.setattr(st, "fit", lambda *a, examples=None, **k: trained.append(examples) or real_fit(
        *a, examples=examples, **k))
    out = st.main(_cfg(tmp_path, tiny_model_dir, "env", iterations=1))
    run = tmp_path / "env"
    sampled = read_jsonl(run / "samples" / "iter_001.jsonl", Sample)
    assert len(sampled) == 8 and all(len(s.meta["turns"]) == 2 for s in sampled)
    kept = [s for s in sampled if s.rewards["reward"] >= 1.0]
    assert 0 < len(kept) < len(sampled)  # selective
    assert trained[0] == [(s.meta["prompt_ids"], s.token_ids, s.meta["loss_mask"]) for s in kept]
    assert all(0 in m and 1 in m for _, _, m in trained[0])  # the tool message's tokens are masked
    assert [s.token_ids for s in read_jsonl(run / "samples" / "iter_001_train.jsonl", Sample)] == \
        [s.token_ids for s in kept]
    it1 = out["iterations"][1]
    assert it1["kept"] == len(kept) and it1["env/turns"] == 2.0 and it1["env/tool_calls"] == 1.0
    assert it1["train/tokens"] > 0
    assert it1["tokens_generated"] == sum(sum(s.meta["loss_mask"]) for s in sampled)
    for row in out["iterations"]:  # the environment's greedy eval: accuracy, turns and tool calls per problem
        assert row["eval/turns"] == 2.0 and row["eval/tool_calls_per_trajectory"] == 1.0
        assert 0.0 <= row["eval/greedy_accuracy"] <= 1.0


def test_killed_mid_training_resumes_to_the_uninterrupted_weights(tiny_model_dir, tmp_path, monkeypatch,
                                                                   two_turn_env):
    st.main(_cfg(tmp_path, tiny_model_dir, "uninterrupted"))
    real_fit, calls = st.fit, []

    def killing_fit(*a, on_step=None, **k):
        calls.append(1)

        def step_then_die(step, metrics):
            on_step(step, metrics)
            if len(calls) == 2 and step == 3:
                raise Killed
        return real_fit(*a, on_step=step_then_die, **k)

    monkeypatch.setattr(st, "fit", killing_fit)
    cfg = _cfg(tmp_path, tiny_model_dir, "killed")
    with pytest.raises(Killed):
        st.main(cfg)
    state = json.loads((tmp_path / "killed" / "state.json").read_text())
    assert state == {"iteration": 1, "phase": "training", "step": 2, "checkpoint": "iter-002-step-000002"}
    monkeypatch.setattr(st, "fit", real_fit)
    cfg.resume = True
    st.main(cfg)
    ref = load_file(str(tmp_path / "uninterrupted" / "final" / "model.safetensors"))
    got = load_file(str(tmp_path / "killed" / "final" / "model.safetensors"))
    assert all(torch.equal(ref[k], got[k]) for k in ref)
    base = load_file(str(tiny_model_dir / "model.safetensors"))
    assert any(not torch.equal(base[k], ref[k]) for k in ref)


def test_options_that_read_text_prompts_are_rejected_with_an_environment():
    for bad in ({"rationalize": True}, {"partial_solutions": True}, {"adapt": "bstar"}, {"keep": "steps"}):
        with pytest.raises(ValueError, match="env:"):
            st.SelfTrainConfig(env=EnvSpec("long_arithmetic", {"tools": ["python"]}), **bad)


def test_cli_takes_the_environment_shape_grpo_uses(tiny_model_dir, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "reasonloop", "selftrain", f"model.path={tiny_model_dir}", "env.name=long_arithmetic",
         "env.options.tools=[python]", "turn_limits.max_turns=2", "iterations=1", "problems_per_iteration=2",
         "samples_per_prompt=1", "sampling.max_new_tokens=4", "eval_problems=1", "eval_max_new_tokens=4",
         f"output_dir={tmp_path}", "run_name=cli"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in (tmp_path / "cli" / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [0, 1] and "eval/turns" in rows[0] and "env/turns" in rows[1]
