"""Per-test records of code tasks reach every record a sample or an evaluation writes, not only GRPO's."""

from pathlib import Path

from reasonloop.evaluate.accuracy import evaluate_model
from reasonloop.evaluate.grade import selections_to_records
from reasonloop.evaluate.standard import evaluate_protocol
from reasonloop.rollout.groups import sample_and_verify
from reasonloop.search.common import Selection
from reasonloop.store.jsonl import read_jsonl, write_jsonl
from reasonloop.tasks.spec import TaskSpec
from reasonloop.types import EvalRecord, Sample

MBPP = Path(__file__).resolve().parents[1] / "fixtures" / "mbpp.jsonl"
WRONG = "```python\ndef is_not_prime(n):\n    return True\n```"


def _task():
    task = TaskSpec(name="mbpp", source=str(MBPP), split="test").build(split="test", size=None, seed=0)
    return task, [task[1]]


class RightThenWrong:
    """Per prompt: the reference solution first, then a wrong program, cycled (the greedy draw is right)."""

    model_id = "scripted"

    def __init__(self, task):
        self.solutions = {task[i].prompt: task[i].reference_solution for i in range(len(task))}

    def generate(self, prompts, samples_per_prompt=1, params=None, prefixes=None):
        return [[Sample("", p, self.solutions[p] if j % 2 == 0 else WRONG, token_ids=[1, 2], finish_reason="eos")
                 for j in range(samples_per_prompt)] for p in prompts]


def _check(tests, passed: bool):
    assert tests is not None and len(tests) == 3
    assert all(t["passed"] for t in tests) if passed else not all(t["passed"] for t in tests)
    assert set(tests[0]) >= {"name", "passed", "error"}


def test_sampled_code_carries_its_per_test_records_into_the_sample_file(tmp_path):
    task, problems = _task()
    right, wrong = sample_and_verify(RightThenWrong(task), task, problems, 2, None)
    assert right.rewards["correct"] == 1.0 and wrong.rewards["correct"] == 0.0
    _check(right.tests, True)
    _check(wrong.tests, False)
    write_jsonl(tmp_path / "samples.jsonl", [right, wrong])  # as `reasonloop sample` writes them
    assert [s.tests for s in read_jsonl(tmp_path / "samples.jsonl", Sample)] == [right.tests, wrong.tests]


def test_eval_records_keep_each_samples_tests(tmp_path):
    task, problems = _task()
    sampler = RightThenWrong(task)
    _, records = evaluate_model(sampler, task, problems, samples_per_prompt=2, temperature=1.0, max_new_tokens=8)
    greedy, vote = records
    assert greedy.sample_correct == [True] and len(greedy.meta["tests"]) == 1
    _check(greedy.meta["tests"][0], True)
    assert vote.sample_correct == [True, False]
    _check(vote.meta["tests"][0], True)
    _check(vote.meta["tests"][1], False)

    _, records = evaluate_protocol(sampler, task, problems, protocol="custom", temperature=1.0, top_p=1.0, k=2,
                                   max_new_tokens=8)
    assert records[0].sample_correct == [True, False]
    _check(records[0].meta["tests"][0], True)
    _check(records[0].meta["tests"][1], False)

    p = problems[0]
    selection = Selection(p.id, WRONG, None, candidates=[p.reference_solution, WRONG])
    (record,) = selections_to_records(task, problems, [selection], "best_of_n", "scripted")
    assert record.sample_correct == [True, False] and record.correct is False
    _check(record.meta["tests"][0], True)
    _check(record.meta["selected_tests"], False)
    write_jsonl(tmp_path / "records.jsonl", [greedy, vote, record])
    assert [r.meta for r in read_jsonl(tmp_path / "records.jsonl", EvalRecord)] == [greedy.meta, vote.meta, record.meta]


def test_tasks_without_code_tests_add_nothing():
    from reasonloop.tasks import make_task

    task = make_task("arithmetic", split="test", size=1, seed=0)

    class Echo:
        model_id = "scripted"

        def generate(self, prompts, samples_per_prompt=1, params=None, prefixes=None):
            return [[Sample("", p, "Answer: 0", token_ids=[1], finish_reason="eos")] * samples_per_prompt
                    for p in prompts]

    _, records = evaluate_model(Echo(), task, list(task), samples_per_prompt=1, temperature=1.0, max_new_tokens=4)
    assert all("tests" not in r.meta for r in records)
    assert sample_and_verify(Echo(), task, list(task), 1, None)[0].tests is None
