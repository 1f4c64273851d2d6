"""Contract tests over the TASKS registry: every procedural task obeys the same promises
(dataset tasks have theirs in test_datasets.py)."""

import dataclasses
import random

import pytest

from reasonloop.tasks import (
    TASKS,
    StepTask,
    Task,
    UnknownTaskError,
    describe_tasks,
    first_error,
    is_dataset_task,
    make_task,
    split_steps,
)

N = 60  # items per task and split: enough to hit every form/branch, fast on 2 cores


@pytest.fixture(scope="module", params=sorted(n for n in TASKS if not is_dataset_task(n)))
def name(request):
    return request.param


def test_registry_and_descriptions(name):
    task = make_task(name, size=5)
    assert isinstance(task, Task) and isinstance(task, StepTask)
    assert task.name == name
    described = dict(describe_tasks())
    assert described[name] and "\n" not in described[name]


def test_reference_solution_scores_one_and_passes_every_step(name):
    task = make_task(name, size=N, seed=1)
    for i in range(N):
        problem = task[i]
        solution = problem.reference_solution
        assert solution.splitlines()[-1].startswith("Answer:"), solution
        assert task.verify(problem, solution) == 1.0, (problem.prompt, solution)
        steps = split_steps(solution)
        assert steps[:-1] == problem.steps
        assert first_error(task, problem, steps) is None, (problem.prompt, solution)


def test_a_wrong_final_answer_scores_zero(name):
    task = make_task(name, size=N, seed=2)
    for i in range(N):
        problem = task[i]
        assert task.verify(problem, "Answer: 987654321") == 0.0
        assert task.verify(problem, "") == 0.0


def test_corrupted_step_is_located_exactly(name):
    task = make_task(name, size=N, seed=3)
    rng = random.Random(0)
    seen = set()
    for i in range(N):
        problem = task[i]
        steps, bad = task.corrupt(problem, rng)
        assert 0 <= bad < len(steps)
        assert first_error(task, problem, steps) == bad, (problem.prompt, steps, bad)
        assert task.verify(problem, "\n".join(steps)) == 0.0, steps
        seen.add(bad)
    assert len(seen) > 1  # corruption is spread over positions, not always step 0


def test_deterministic_given_seed(name):
    a, b = make_task(name, size=20, seed=7), make_task(name, size=20, seed=7)
    other = make_task(name, size=20, seed=8)
    assert [dataclasses.asdict(a[i]) for i in range(20)] == [dataclasses.asdict(b[i]) for i in range(20)]
    assert [a[i].prompt for i in range(20)] != [other[i].prompt for i in range(20)]
    assert a[5].prompt == make_task(name, size=1000, seed=7)[5].prompt  # item i does not depend on size
    assert len({a[i].id for i in range(20)}) == 20


def test_train_and_test_are_disjoint(name):
    train = {make_task(name, size=300, split="train")[i].prompt for i in range(300)}
    test = {make_task(name, size=100, split="test")[i].prompt for i in range(100)}
    assert not train & test


def test_config_validation_and_unknown_options(name):
    with pytest.raises(ValueError):
        make_task(name, size=0)
    with pytest.raises(ValueError, match="no option"):
        make_task(name, no_such_knob=1)
    with pytest.raises(IndexError):
        make_task(name, size=3)[3]


def test_unknown_task_lists_known_names():
    with pytest.raises(UnknownTaskError, match="arithmetic"):
        make_task("no_such_task")
