import pytest

from reasonloop.algorithms.selftrain import SelfTrainConfig, passing_keep_rule, select_correct
from reasonloop.tasks import make_task
from reasonloop.types import Sample


def lucky_problem():
    task = make_task("arithmetic", split="train", size=1)
    problem = task[0]
    problem.meta.update(start=47, operations=[["+", 5], ["-", 8]], solution="47 + 5 = 52\n52 - 8 = 44\nAnswer: 44")
    problem.answer = "44"
    return task, problem


def test_keep_steps_drops_right_answers_reached_through_wrong_steps():
    task, problem = lucky_problem()
    # dropping the carry (-10) and then the borrow (+10) cancel: the answer verifies, the steps do not
    lucky = "47 + 5 = 42\n42 - 8 = 44\nAnswer: 44"
    honest = problem.meta["solution"]
    samples = [Sample(problem_id=problem.id, prompt=problem.prompt, text=t, rewards={"correct": task.verify(problem, t)})
               for t in (lucky, honest)]
    assert [s.correct for s in samples] == [True, True]
    assert select_correct(passing_keep_rule(task, [problem], samples, "answer"), 4) == samples
    assert select_correct(passing_keep_rule(task, [problem], samples, "steps"), 4) == [samples[1]]


def test_keep_steps_is_validated():
    with pytest.raises(ValueError, match="not one of"):
        from reasonloop.config import load_config

        load_config(SelfTrainConfig, None, ["keep=stepz"])


def test_correct_step_precision_measures_what_the_outcome_verifier_let_through():
    from reasonloop.algorithms.selftrain import explore_exploit

    task, problem = lucky_problem()
    texts = ("47 + 5 = 42\n42 - 8 = 44\nAnswer: 44", problem.meta["solution"], "47 + 5 = 52\n52 - 8 = 45\nAnswer: 45")
    samples = [Sample(problem_id=problem.id, prompt=problem.prompt, text=t, rewards={"correct": task.verify(problem, t)})
               for t in texts]
    by_answer = explore_exploit(task, [problem], samples, select_correct(samples, 4), k=3, target_correct=1)
    kept = select_correct(passing_keep_rule(task, [problem], samples, "steps"), 4)
    by_steps = explore_exploit(task, [problem], samples, kept, k=3, target_correct=1)
    # 2 verified-correct samples, 1 with sound steps; keep=steps trains only on the sound one
    assert by_answer["exploit/correct_step_precision"] == by_steps["exploit/correct_step_precision"] == 0.5
    assert by_answer["exploit/kept_step_precision"] == 0.5 and by_steps["exploit/kept_step_precision"] == 1.0
