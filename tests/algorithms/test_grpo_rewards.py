"""grpo's extra rewards: custom callables by name or import path, and PRM step scores in three modes."""

import json
import random

import pytest
import torch

from reasonloop.algorithms.grpo import GRPOConfig, main
from reasonloop.algorithms.grpo_rewards import RewardSources, score_samples, token_process_advantages
from reasonloop.algorithms.grpo_update import TrainRow, make_batch, update_policy
from reasonloop.models.policy import ModelConfig, load_model
from reasonloop.models.reward_model import RewardModel
from reasonloop.rollout.engine import TorchEngine
from reasonloop.rollout.sampler import SamplingParams
from reasonloop.tasks import make_task
from reasonloop.types import Sample

SOLUTION_WRONG = "34 + 5 = 39\n39 + 9 = 47\nAnswer: 47"


@pytest.fixture()
def reward_module(tmp_path, monkeypatch):
    """A user's reward module on sys.path: `my_rewards:short` = 1 for completions under 20 characters."""
    (tmp_path / "my_rewards.py").write_text("def short(problem, completion):\n    return float(len(completion) < 20)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return "my_rewards:short"


@pytest.fixture(scope="module")
def prm_dir(tiny_model_dir, tmp_path_factory):
    """An untrained PRM (random head) saved as a `reasonloop prm` directory: scores are arbitrary but fixed."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("prm") / "prm"
    RewardModel.from_backbone(tiny_model_dir, device="cpu").save_pretrained(path)
    return path


def problem_and_samples():
    task = make_task("arithmetic", size=1, seed=0, min_ops=2, max_ops=2, ops=["+"])
    p = task[0]
    right = p.meta["solution"]
    wrong = right.rsplit("Answer:", 1)[0] + "Answer: " + str(int(p.answer) + 1)
    return task, p, [Sample(p.id, p.prompt, text) for text in (right, wrong, "x" * 3)]


def test_config_rejects_unknown_or_clashing_rewards(reward_module):
    with pytest.raises(KeyError, match="nope"):
        GRPOConfig(rewards={"nope": 1.0})
    with pytest.raises(KeyError, match="cannot import module 'no_such_module'"):
        GRPOConfig(rewards={"no_such_module:f": 1.0})
    with pytest.raises(ValueError, match="rewards.format"):
        GRPOConfig(rewards={"format": 1.0})
    with pytest.raises(ValueError, match="process_weight"):
        GRPOConfig(process_weight=-1.0)
    GRPOConfig(rewards={reward_module: 0.5, "format_think": 0.1})


def test_custom_rewards_are_weighted_into_the_total(reward_module):
    task, p, samples = problem_and_samples()
    cfg = GRPOConfig(rewards={reward_module: 0.5}, format_weight=0.0)
    score_samples(cfg, task, [p] * 3, samples, RewardSources.load(cfg))
    for s in samples:
        short = float(len(s.text) < 20)
        assert s.rewards[reward_module] == short
        assert s.rewards["total"] == pytest.approx(s.rewards["correct"] + 0.5 * short)
    assert [s.rewards["correct"] for s in samples] == [1.0, 0.0, 0.0]


@pytest.mark.parametrize("mode", ["posterior", "additive", "step"])
def test_process_rewards_enter_the_total_as_the_mode_says(prm_dir, mode):
    task, p, samples = problem_and_samples()
    cfg = GRPOConfig(process_reward=str(prm_dir), process_mode=mode, process_weight=0.5, process_aggregate="min")
    sources = RewardSources.load(cfg)
    score_samples(cfg, task, [p] * 3, samples, sources)
    for s in samples:
        expected_steps = sources.prm.score_steps(p, s.text.split("\n"))
        assert s.meta["step_scores"] == pytest.approx(expected_steps, abs=1e-6)
        assert s.rewards["prm"] == pytest.approx(min(expected_steps), abs=1e-6)
        bonus = {"posterior": 0.5 * s.rewards["prm"] * s.rewards["correct"],
                 "additive": 0.5 * s.rewards["prm"], "step": 0.0}[mode]
        assert s.rewards["total"] == pytest.approx(s.rewards["correct"] + bonus, abs=1e-6)
    assert 0 < samples[0].rewards["prm"] < 1


def test_token_process_advantages_by_hand():
    """DeepSeekMath process advantages for step scores [[1, 0], [0]] are [[.7071, -.7071], [-.7071]]."""
    group = [Sample("p", "q", "a\nb", token_ids=[ord(c) for c in "a\nb"], meta={"step_scores": [1.0, 0.0]}),
             Sample("p", "q", "c", token_ids=[ord("c"), 0], meta={"step_scores": [0.0]})]  # 0 = EOS, decodes to ""
    cfg = GRPOConfig(process_weight=0.5)
    out = token_process_advantages(cfg, group, [1.0, -1.0], lambda t: chr(t) if t else "", "\n")
    a = 0.5 * 2 ** -0.5
    assert out[0] == pytest.approx([1 + a, 1 + a, 1 - a], abs=1e-4)  # "\n" closes step 0
    assert out[1] == pytest.approx([-1 - a, -1 - a], abs=1e-4)


def test_make_batch_aligns_token_advantages_to_completion_tokens():
    rows = [TrainRow(arm=0, context=[1, 5, 6], sample_context=[1, 5, 6], completion=[7, 8], old_logprobs=[-0.1, -0.2],
                     reward=0.0, advantage=2.0, token_advantages=[0.5, -0.5], masked=False),
            TrainRow(arm=0, context=[1, 5], sample_context=[1, 5], completion=[9, 9, 9], old_logprobs=[-0.3] * 3,
                     reward=0.0, advantage=-1.0, masked=True)]
    batch = make_batch(rows, device="cpu")
    assert batch.advantages.tolist() == [[0.5, -0.5, 0.0], [-1.0, -1.0, -1.0]]
    assert batch.loss_mask.tolist() == [[1, 1, 0], [1, 1, 1]]
    assert batch.train_mask.tolist() == [[1, 1, 0], [0, 0, 0]]  # the masked (overlong-filtered) row
    assert batch.old_logprobs[0].tolist() == pytest.approx([-0.1, -0.2, 0.0])


def test_constant_token_advantages_give_the_sequence_update(tiny_model_dir):
    """(B, T-1) advantages equal to the row's advantage on every token == the (B, 1) path."""
    task = make_task("arithmetic", size=2, seed=0)
    finals = []
    for per_token in (False, True):
        model, tok = load_model(ModelConfig(path=str(tiny_model_dir)), for_training=True)
        engine = TorchEngine(model, tok)
        groups = engine.generate([task[0].prompt, task[1].prompt], 3,
                                 SamplingParams(temperature=0.7, max_new_tokens=10, seed=3))
        rows = []
        for p, g in zip([task[0], task[1]], groups):
            for k, s in enumerate(g):
                context = engine.encode_context(p.prompt)
                row = TrainRow(arm=0, context=context, sample_context=context, completion=s.token_ids,
                               old_logprobs=list(s.logprobs), reward=0.0, advantage=float(k - 1), masked=False)
                if per_token:
                    row.token_advantages = [float(k - 1)] * len(s.token_ids)
                rows.append(row)
        cfg = GRPOConfig(sampling=SamplingParams(temperature=0.7, max_new_tokens=10), overlong_cache=4,
                         prompts_per_step=2, samples_per_prompt=3)
        opt = torch.optim.SGD(model.parameters(), lr=1e-2)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
        update_policy(cfg, model, None, opt, sched, rows, 2, tok.pad_token_id, "cpu", random.Random(0))
        finals.append([p.detach().clone() for p in model.parameters()])
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(*finals))


@pytest.mark.parametrize("mode", ["posterior", "step"])
def test_run_with_a_process_reward_logs_it(tiny_model_dir, prm_dir, tmp_path, mode):
    cfg = GRPOConfig(model=ModelConfig(path=str(tiny_model_dir)), steps=2, prompts_per_step=2, samples_per_prompt=3,
                     sampling=SamplingParams(temperature=1.0, max_new_tokens=12), overlong_cache=4, eval_problems=0,
                     save_every=0, output_dir=str(tmp_path), run_name="run", process_reward=str(prm_dir),
                     process_mode=mode)
    main(cfg)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "reward/prm" in r]
    assert len(steps) == 2
    assert all(0 <= r["reward/prm"] <= 1 and torch.isfinite(torch.tensor(r["loss"])) for r in steps if "loss" in r)


def test_step_validity_metrics_count_lucky_answers():
    from reasonloop.algorithms.grpo import step_validity_metrics

    def sample(correct, valid):
        return Sample("p", "q", "t", rewards={"correct": correct}, meta={"steps_valid": valid})

    samples = [sample(1.0, True), sample(1.0, False), sample(0.0, False), sample(1.0, True), sample(0.0, None)]
    assert step_validity_metrics(samples) == {"process/steps_valid": 0.5, "process/lucky_frac": pytest.approx(1 / 3)}
    assert step_validity_metrics([sample(0.0, None)]) == {}


def test_steps_all_verify_separates_lucky_answers():
    from reasonloop.tasks.base import steps_all_verify

    task = make_task("arithmetic", size=1, seed=0, min_ops=2, max_ops=2, ops=["+"])
    p = task[0]
    assert steps_all_verify(task, p, p.meta["solution"]) is True
    first, rest = p.meta["solution"].split("\n", 1)
    broken = first.rsplit("=", 1)[0] + "= " + str(int(first.rsplit("=", 1)[1]) + 1) + "\n" + rest
    assert steps_all_verify(task, p, broken) is False
    assert task.verify(p, broken) == 1.0  # same final line: the verifier alone is fooled
    assert steps_all_verify(object(), p, p.meta["solution"]) is None


def test_exact_process_reward_from_the_task():
    """process_reward=task: step scores are the task's check_step (1 before the first wrong step)."""
    task, p, samples = problem_and_samples()
    first, rest = p.meta["solution"].split("\n", 1)
    lucky = first.rsplit("=", 1)[0] + "= " + str(int(first.rsplit("=", 1)[1]) + 1) + "\n" + rest
    samples.append(Sample(p.id, p.prompt, lucky))
    cfg = GRPOConfig(process_reward="task", process_mode="posterior", process_weight=0.5)
    score_samples(cfg, task, [p] * 4, samples, RewardSources.load(cfg))
    right, wrong, junk, lucky_s = samples
    assert right.meta["step_scores"] == [1.0] * len(right.text.split("\n")) and right.rewards["total"] == 1.5
    assert lucky_s.meta["step_scores"][0] == 0.0 and lucky_s.rewards["correct"] == 1.0
    assert lucky_s.rewards["total"] == 1.0  # right answer, wrong step: no process bonus
    assert wrong.rewards["total"] == 0.0 and junk.rewards["prm"] == 0.0


def test_exact_process_reward_needs_a_step_task(tmp_path, tiny_model_dir):
    cfg = GRPOConfig(model=ModelConfig(path=str(tiny_model_dir)), task=__import__(
        "reasonloop.tasks.spec", fromlist=["TaskSpec"]).TaskSpec("reasoning_gym:chain_sum"), process_reward="task",
        output_dir=str(tmp_path), run_name="run", eval_problems=0)
    with pytest.raises(ValueError, match="check_step"):
        main(cfg)


def test_code_samples_keep_their_per_test_verdicts():
    """On a code task, each scored sample carries the sandbox's per-test records (`Sample.tests`)."""
    from pathlib import Path

    from reasonloop.tasks.spec import TaskSpec

    source = Path(__file__).resolve().parents[1] / "fixtures" / "mbpp.jsonl"
    task = TaskSpec(name="mbpp", source=str(source), split="test").build(split="test", size=None, seed=0)
    p = task[1]
    right = Sample(p.id, p.prompt, p.reference_solution, token_ids=[1, 2])
    wrong = Sample(p.id, p.prompt, "```python\ndef is_not_prime(n):\n    return True\n```", token_ids=[1, 2])
    score_samples(GRPOConfig(), task, [p, p], [right, wrong])
    assert right.rewards["correct"] == 1.0 and len(right.tests) == 3 and all(t["passed"] for t in right.tests)
    assert wrong.rewards["correct"] == 0.0 and len(wrong.tests) == 3 and not all(t["passed"] for t in wrong.tests)
