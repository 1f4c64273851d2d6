import pytest

from reasonloop.algorithms.pretrain import PretrainConfig, make_pretraining_pairs
from reasonloop.tasks import first_error, make_task


def test_slip_pairs_have_the_requested_fraction_of_flawed_solutions():
    task = make_task("arithmetic", split="train", size=400, seed=3)
    pairs = make_pretraining_pairs(task, wrong_step_fraction=0.3, seed=0, flaw="slip")
    flawed = [task.verify(p, text) == 0.0 for p, (_, text) in zip(task, pairs)]
    assert 0.2 < sum(flawed) / len(flawed) < 0.4
    assert all(prompt == p.prompt for p, (prompt, _) in zip(task, pairs))
    assert pairs == make_pretraining_pairs(task, wrong_step_fraction=0.3, seed=0, flaw="slip")


def test_misconception_drops_every_carry_and_borrow():
    task = make_task("arithmetic", split="train", size=200, seed=1)
    pairs = make_pretraining_pairs(task, wrong_step_fraction=1.0, seed=0, flaw="misconception")
    for problem, (_, text) in zip(task, pairs):
        steps = text.split("\n")
        if task.misconception(problem) is None:  # nothing to carry: the solution is the correct one
            assert text == problem.reference_solution
            continue
        assert first_error(task, problem, steps) is not None
        for step in steps[:-1]:
            a, op, b, _, c = step.split()
            a, b, c = int(a), int(b), int(c)
            if op == "+":
                assert c == a + b - (10 if a % 10 + b % 10 >= 10 else 0)
            else:
                assert c == a - b + (10 if a >= 10 and a % 10 < b % 10 else 0)


def test_misconception_by_hand():
    task = make_task("arithmetic", split="train", size=1)
    problem = task[0]
    problem.meta.update(start=47, operations=[["+", 5], ["-", 8], ["+", 1]])
    steps, first = task.misconception(problem)
    # 47 + 5: carry dropped -> 42; 42 - 8: borrow dropped -> 44; 44 + 1 = 45
    assert steps == ["47 + 5 = 42", "42 - 8 = 44", "44 + 1 = 45", "Answer: 45"] and first == 0


def test_config_validation():
    with pytest.raises(ValueError, match="wrong_step_fraction"):
        PretrainConfig(wrong_step_fraction=1.0)


def test_pretraining_pairs_from_a_dataset_task():
    """A dataset's reference solutions train as they are; flaws and missing solutions are clear errors."""
    import pathlib

    from reasonloop.config import ConfigError

    fixtures = pathlib.Path(__file__).resolve().parents[1] / "fixtures"
    gsm8k = make_task("gsm8k", source=str(fixtures / "gsm8k.jsonl"))
    pairs = make_pretraining_pairs(gsm8k, 0.0, seed=0)
    assert [p for p, _ in pairs] == [p.prompt for p in gsm8k] and pairs[0][1].endswith(r"\boxed{72}$.")
    with pytest.raises(ConfigError, match="cannot corrupt steps; set wrong_step_fraction=0"):
        make_pretraining_pairs(gsm8k, 0.2, seed=0)
    with pytest.raises(ConfigError, match="has no reference solution"):
        make_pretraining_pairs(make_task("aime", source=str(fixtures / "aime.jsonl")), 0.0, seed=0)
