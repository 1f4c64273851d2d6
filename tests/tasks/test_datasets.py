"""Dataset tasks: each format's rows, every source kind, errors that name file/row/field, TaskSpec."""

import json
import pathlib

import pytest

from reasonloop.config import ConfigError, load_config
from reasonloop.tasks import DatasetError, ProblemCursor, describe_tasks, is_dataset_task, make_task
from reasonloop.tasks.spec import TaskSpec

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures"


def fixture(name: str) -> str:
    return str(FIXTURES / name)


def rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (FIXTURES / name).read_text().splitlines() if line.strip()]


def task(name, source, **options):
    return make_task(name, source=source, **options)


# --- the formats -------------------------------------------------------------------------------


def test_gsm8k():
    t = task("gsm8k", fixture("gsm8k.jsonl"))
    assert len(t) == 4  # the blank line is skipped
    p = t[0]
    assert p.answer == "72" and p.id == "gsm8k/gsm8k.jsonl:1"
    assert p.prompt.startswith("Natalia sold clips") and p.prompt.endswith(r"final answer within \boxed{}.")
    assert p.steps == ["Natalia sold 48/2 = 24 clips in May.", "Natalia sold 48+24 = 72 clips altogether in April and May."]
    assert t[3].answer == "3000"  # thousands separator in the gold
    assert t[2].id.endswith(":4")  # line numbers count the blank line
    assert t.verify(p, "... so she sold 72 clips.\n#### 72") == 1.0
    assert t.verify(p, r"\boxed{72.0}") == 1.0
    assert t.verify(p, "#### 71") == 0.0
    assert t.verify(p, p.reference_solution) == 1.0 and p.reference_solution.endswith(r"\boxed{72}$.")


@pytest.mark.parametrize("name, message", [
    ("gsm8k_bad.jsonl", r"gsm8k_bad.jsonl:2: field 'answer' has no '#### <number>' line"),
    ("gsm8k_missing_field.jsonl", r"gsm8k_missing_field.jsonl:2: missing field 'question'"),
    ("gsm8k_bad_json.jsonl", r"gsm8k_bad_json.jsonl:2: not valid JSON"),
])
def test_gsm8k_errors_name_file_line_and_field(name, message):
    with pytest.raises(DatasetError) as error:
        task("gsm8k", fixture(name))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_every_bad_row_is_counted_and_skip_bad_rows_skips_them(tmp_path, capsys):
    good, = rows("gsm8k.jsonl")[:1]
    lines = [good, {"question": "q"}, good, {"question": "q", "answer": "no final line"}, good]
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    with pytest.raises(DatasetError, match=r"mixed.jsonl:2: missing field 'answer' \(and 1 more bad row; "
                                           r"task.skip_bad_rows=true skips them\)"):
        task("gsm8k", str(path))
    t = task("gsm8k", str(path), skip_bad_rows=True)
    assert len(t) == 3 and len(t.skipped) == 2 and "mixed.jsonl:4: field 'answer'" in t.skipped[1]
    assert "skipped 2 bad rows" in capsys.readouterr().err
    bad_json = task("gsm8k", fixture("gsm8k_bad_json.jsonl"), skip_bad_rows=True)  # unreadable lines skip too
    assert len(bad_json) >= 1 and "gsm8k_bad_json.jsonl:2: not valid JSON" in bad_json.skipped[0]


def test_math_gold_from_boxed_with_nested_braces():
    t = task("math", fixture("math.jsonl"))
    assert [p.answer for p in t] == [r"\frac{3}{4}", r"\{-1, 1\}", r"2\sqrt{3}", r"(1, \infty)"]
    assert t[0].meta["level"] == "Level 1"
    assert t.verify(t[0], r"The sum is $\boxed{0.75}$.") == 1.0
    assert t.verify(t[1], r"\boxed{\{1,-1\}}") == 1.0
    assert t.verify(t[2], r"\boxed{\sqrt{12}}") == 1.0
    assert t.verify(t[3], r"\boxed{[1, \infty)}") == 0.0


def test_math500_uses_the_answer_field():
    t = task("math", fixture("math500.jsonl"))
    assert t[0].answer == r"\left( 3, \frac{\pi}{2} \right)"
    assert t[0].id == "math/test/precalculus/807.json" and t[0].meta["subject"] == "Precalculus"
    assert t.verify(t[0], r"\boxed{(3, \frac{\pi}{2})}") == 1.0


def test_math_without_boxed_answer_is_an_error():
    with pytest.raises(DatasetError, match=r"math_no_boxed.jsonl:2: field 'solution' has no \\boxed"):
        task("math", fixture("math_no_boxed.jsonl"))


def test_aime_and_amc(tmp_path):
    t = task("aime", fixture("aime.jsonl"))
    assert [p.answer for p in t] == ["401", "33", "25"]
    assert t[0].id == "aime/2024-I-1" and t[2].id == "aime/2023-II-5"
    assert t.verify(t[1], r"\boxed{033}") == 1.0 and t.verify(t[1], r"\boxed{34}") == 0.0
    with pytest.raises(DatasetError, match=r"aime_bad.jsonl:2: field 'answer' should be an integer 0-999"):
        task("aime", fixture("aime_bad.jsonl"))
    amc = tmp_path / "amc.jsonl"
    amc.write_text(json.dumps({"id": 0, "problem": "Compute 1/2 + 1/3.", "answer": r"\frac{5}{6}"}) + "\n"
                   + json.dumps({"id": 1, "problem": "How many?", "answer": 142.0}) + "\n")
    t = task("amc", str(amc))
    assert [p.answer for p in t] == [r"\frac{5}{6}", "142"] and t[1].id == "amc/1"
    assert t.verify(t[0], r"\boxed{5/6}") == 1.0 and t.verify(t[1], r"\boxed{142}") == 1.0


def test_humaneval_runs_the_tests_in_the_sandbox():
    t = task("humaneval", fixture("humaneval.jsonl"))
    p = t[0]
    assert p.id == "humaneval/HumanEval/0" and "def has_close_elements" in p.prompt and "```python" in p.prompt
    assert p.meta["entry_point"] == "has_close_elements" and "def check(candidate)" in p.meta["test"]
    assert t.verify(p, p.reference_solution) == 1.0  # prompt + canonical solution
    body_only = "```python\n" + rows("humaneval.jsonl")[0]["canonical_solution"] + "```"
    assert t.verify(p, body_only) == 1.0  # the usual completion protocol: appended to the prompt
    # a whole function without the prompt's `from typing import List`: the imports are prepended
    whole = ("```python\ndef has_close_elements(numbers: List[float], threshold: float) -> bool:\n"
             "    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])\n```")
    assert t.verify(p, whole) == 1.0
    assert t.verify(p, "```python\ndef has_close_elements(numbers, threshold):\n    return False\n```") == 0.0
    assert t.verify(p, "no code at all") == 0.0
    # the verdict needs per-test evidence: a program that ends the process early passes nothing
    assert t.verify(p, "```python\nimport sys\nsys.exit(0)\n```") == 0.0
    score, records = t.verify_details(p, p.reference_solution)
    assert score == 1.0 and records and all(r["passed"] for r in records)


def test_mbpp_tests_and_reference_code():
    t = task("mbpp", fixture("mbpp.jsonl"))
    p = t[1]
    assert p.id == "mbpp/3" and "Your code should pass these tests:" in p.prompt
    assert "assert is_not_prime(10) == True" in p.prompt and len(p.meta["tests"]) == 3
    assert t.verify(p, p.reference_solution) == 1.0
    assert t.verify(p, "```python\ndef is_not_prime(n):\n    return True\n```") == 0.0


def test_prm800k_steps_and_ratings():
    t = task("prm800k", fixture("prm800k.jsonl"))
    first, stopped, human = t[0], t[1], t[2]
    assert first.answer == "30"
    assert first.steps[1] == "720 = 2^4 * 3^2 * 5."  # the chosen completion
    assert first.meta["step_ratings"] == [1, 1, 1, 1] and first.meta["first_error"] is None
    assert stopped.steps[-1].startswith("With n = 10")  # no chosen completion: labelling stopped here
    assert stopped.meta["step_ratings"] == [1, -1] and stopped.meta["first_error"] == 1
    assert stopped.meta["step_labels"] == [True, False] and stopped.meta["finish_reason"] == "found_error"
    assert human.steps[0] == "2 + 3 = 5." and human.meta["step_ratings"] == [None, 1]
    assert t.verify(first, r"\boxed{30}") == 1.0
    with pytest.raises(DatasetError, match=r"prm800k_bad.jsonl:1: label.steps\[1\]: field 'rating' should be -1, 0 or 1"):
        task("prm800k", fixture("prm800k_bad.jsonl"))


def test_processbench_first_error_labels():
    t = task("processbench", fixture("processbench.jsonl"))
    wrong, right = t[0], t[1]
    assert wrong.id == "processbench/gsm8k-0" and wrong.steps[1] == "She buys 4 more, so 3 + 4 = 8."
    assert wrong.meta["first_error"] == 1 and wrong.meta["step_labels"] == [True, False, False]
    assert right.meta["first_error"] is None and right.meta["step_labels"] == [True, True]
    assert right.meta["final_answer_correct"] is True and right.answer is None
    with pytest.raises(DatasetError, match="no gold answers"):
        t.verify(right, r"\boxed{42}")


def test_processbench_label_out_of_range(tmp_path):
    path = tmp_path / "pb.jsonl"
    path.write_text(json.dumps({"problem": "p", "steps": ["a", "b"], "label": 2}) + "\n")
    with pytest.raises(DatasetError, match=r"pb.jsonl:1: field 'label' should be -1 \(no error\) or a step index below 2"):
        task("processbench", str(path))


# --- the generic dataset task ------------------------------------------------------------------


def test_generic_field_mapping_with_dotted_paths():
    t = task("dataset", fixture("generic.jsonl"), fields={"prompt": "input.text", "answer": "target", "id": "uid"})
    assert t.name == "dataset" and t[0].id == "dataset/17" and t[1].answer == "1024"
    assert t[0].prompt.startswith("What is 6 * 7?\n")
    assert t.verify(t[1], r"\boxed{2^{10}}") == 1.0
    with pytest.raises(DatasetError, match=r"generic.jsonl:1: missing field 'input.question'"):
        task("dataset", fixture("generic.jsonl"), fields={"prompt": "input.question", "answer": "target"})


def test_generic_number_kind_checks_the_gold(tmp_path):
    path = tmp_path / "n.jsonl"
    path.write_text(json.dumps({"prompt": "How many?", "answer": "1,200"}) + "\n"
                    + json.dumps({"prompt": "Which?", "answer": "x + 1"}) + "\n")
    with pytest.raises(DatasetError, match=r"n.jsonl:2: field 'answer' should be a number, got 'x \+ 1'"):
        task("dataset", str(path), answer="number")
    t = task("dataset", str(path), answer="number", skip_bad_rows=True)
    assert t[0].answer == "1200" and t.verify(t[0], r"\boxed{1200}") == 1.0


def test_generic_multiple_choice(tmp_path):
    path = tmp_path / "mc.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [
        {"question": "2 + 2 = ?", "options": ["3", "4", "5"], "gold": 1},  # a 0-based index (MMLU)
        {"question": "Sky colour?", "options": {"text": ["green", "blue"], "label": ["A", "B"]}, "gold": "B"},  # ARC
        {"question": "Largest?", "options": ["1", "9"], "gold": "9"},  # the option's text
    ]))
    t = task("dataset", str(path), answer="choice", fields={"prompt": "question", "choices": "options", "answer": "gold"})
    assert [p.answer for p in t] == ["B", "B", "B"]
    assert "A. 3\nB. 4\nC. 5" in t[0].prompt and r"within \boxed{}" in t[0].prompt
    assert t.verify(t[0], r"\boxed{B}") == 1.0 and t.verify(t[0], "Answer: (b)") == 1.0
    assert t.verify(t[0], r"\boxed{4}") == 1.0  # the option's text
    assert t.verify(t[0], r"\boxed{A}") == 0.0 and t.verify(t[0], r"\boxed{A} or \boxed{B}") == 0.0
    path.write_text(json.dumps({"question": "q", "options": ["a", "b"], "gold": 5}) + "\n")
    with pytest.raises(DatasetError, match="option index 5 is out of range"):
        task("dataset", str(path), answer="choice", fields={"prompt": "question", "choices": "options", "answer": "gold"})


def test_generic_code_tests(tmp_path):
    path = tmp_path / "code.csv"
    path.write_text('prompt,tests\nWrite double(x).,"[""assert double(2) == 4"", ""assert double(0) == 0""]"\n')
    t = task("dataset", str(path), answer="code")
    assert t[0].meta["tests"] == ["assert double(2) == 4", "assert double(0) == 0"]
    assert t.verify(t[0], "```python\ndef double(x):\n    return 2 * x\n```") == 1.0
    assert t.verify(t[0], "```python\ndef double(x):\n    return x\n```") == 0.0


def test_answer_kind_is_only_for_the_generic_task():
    with pytest.raises(DatasetError, match="answer= is for the `dataset` task"):
        task("gsm8k", fixture("gsm8k.jsonl"), answer="number")
    with pytest.raises(ValueError, match="answer kind must be one of"):
        task("dataset", fixture("generic.jsonl"), answer="fraction")


# --- templates ---------------------------------------------------------------------------------


def test_template_override_with_row_fields_and_literal_braces():
    t = task("gsm8k", fixture("gsm8k.jsonl"), template=r"Q: {question}\nA (in \boxed{{}}):")
    assert t[0].prompt == r"Q: " + rows("gsm8k.jsonl")[0]["question"] + r"\nA (in \boxed{}):"
    t = task("math", fixture("math.jsonl"), template="[{type}] {problem} \\boxed{}")
    assert t[0].prompt.startswith("[Prealgebra] What is") and t[0].prompt.endswith(r"\boxed{}")
    with pytest.raises(DatasetError, match=r"math.jsonl:1: the template's \{topic\} is not a field of this row"):
        task("math", fixture("math.jsonl"), template="{topic}: {problem}")


# --- sources -----------------------------------------------------------------------------------


def _write_parquet(path, records):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(records), path)


def test_parquet(tmp_path):
    path = tmp_path / "gsm8k.parquet"
    _write_parquet(path, rows("gsm8k.jsonl"))
    t = task("gsm8k", str(path))
    assert [p.answer for p in t] == ["72", "10", "600", "3000"]
    assert t[1].id == "gsm8k/gsm8k.parquet:row 1"
    bad = tmp_path / "bad.parquet"
    _write_parquet(bad, rows("gsm8k_bad.jsonl"))
    with pytest.raises(DatasetError, match=r"bad.parquet:row 1: field 'answer'"):
        task("gsm8k", str(bad))


def test_parquet_nested_prm800k_and_humaneval(tmp_path):
    _write_parquet(tmp_path / "prm.parquet", rows("prm800k.jsonl"))
    t = task("prm800k", str(tmp_path / "prm.parquet"))
    assert [p.meta["first_error"] for p in t] == [None, 1, None]
    _write_parquet(tmp_path / "he.parquet", rows("humaneval.jsonl"))
    assert task("humaneval", str(tmp_path / "he.parquet"))[1].meta["entry_point"] == "truncate_number"


def test_csv_and_tsv(tmp_path):
    import csv

    for name, delimiter in (("math.csv", ","), ("math.tsv", "\t")):
        with open(tmp_path / name, "w", newline="") as f:
            writer = csv.DictWriter(f, ["problem", "solution", "level", "type"], delimiter=delimiter)
            writer.writeheader()
            writer.writerows(rows("math.jsonl"))
        t = task("math", str(tmp_path / name))
        assert [p.answer for p in t] == [r"\frac{3}{4}", r"\{-1, 1\}", r"2\sqrt{3}", r"(1, \infty)"]
        assert t[2].id == f"math/{name}:row 2"
    # MBPP as pandas writes it: the test list is a Python literal in a cell
    (tmp_path / "mbpp.csv").write_text(
        'task_id,text,test_list\n3,Write is_not_prime(n).,"[\'assert is_not_prime(2) == False\', '
        '\'assert is_not_prime(10) == True\']"\n4,Broken row.,not a list\n')
    with pytest.raises(DatasetError, match=r"mbpp.csv:row 1: field 'test_list' should be a list, got str"):
        task("mbpp", str(tmp_path / "mbpp.csv"))
    t = task("mbpp", str(tmp_path / "mbpp.csv"), skip_bad_rows=True)
    assert t[0].meta["tests"] == ["assert is_not_prime(2) == False", "assert is_not_prime(10) == True"]


def test_json_array(tmp_path):
    (tmp_path / "aime.json").write_text(json.dumps(rows("aime.jsonl")))
    t = task("aime", str(tmp_path / "aime.json"))
    assert [p.answer for p in t] == ["401", "33", "25"]
    (tmp_path / "bad.json").write_text(json.dumps([{"problem": "p", "answer": "1"}, ["not", "an", "object"]]))
    with pytest.raises(DatasetError, match=r"bad.json:row 1: expected a JSON object, got list"):
        task("aime", str(tmp_path / "bad.json"))


def test_save_to_disk_dataset_and_dataset_dict(tmp_path):
    from datasets import Dataset, DatasetDict

    Dataset.from_list(rows("math500.jsonl")).save_to_disk(str(tmp_path / "math500"))
    t = task("math", str(tmp_path / "math500"))
    assert [p.answer for p in t] == [r"\left( 3, \frac{\pi}{2} \right)", "2"]
    splits = DatasetDict({"train": Dataset.from_list(rows("gsm8k.jsonl")[:3]),
                          "test": Dataset.from_list(rows("gsm8k.jsonl")[3:])})
    splits.save_to_disk(str(tmp_path / "dict"))
    assert len(task("gsm8k", str(tmp_path / "dict"), split="train")) == 3
    test = task("gsm8k", str(tmp_path / "dict"), split="test")
    assert [p.answer for p in test] == ["3000"] and test[0].meta["source"].endswith("dict[test]:row 0")
    with pytest.raises(DatasetError, match=r"no split 'validation'; its splits are train, test"):
        task("gsm8k", str(tmp_path / "dict"), split="validation")
    bad = DatasetDict({"test": Dataset.from_list(rows("gsm8k_bad.jsonl"))})
    bad.save_to_disk(str(tmp_path / "bad"))
    with pytest.raises(DatasetError, match=r"bad\[test\]:row 1: field 'answer'"):
        task("gsm8k", str(tmp_path / "bad"), split="test")


def test_split_placeholder_and_folder_of_split_files(tmp_path):
    data = rows("gsm8k.jsonl")
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in data[:3]))
    _write_parquet(tmp_path / "test-00000-of-00001.parquet", data[3:])
    assert len(task("gsm8k", str(tmp_path / "{split}.jsonl"), split="train")) == 3
    assert len(task("gsm8k", str(tmp_path), split="train")) == 3
    assert [p.answer for p in task("gsm8k", str(tmp_path), split="test")] == ["3000"]
    with pytest.raises(DatasetError, match=r"no data for split 'validation'"):
        task("gsm8k", str(tmp_path), split="validation")
    with pytest.raises(DatasetError, match=r"dataset file .*test.jsonl does not exist"):
        task("gsm8k", str(tmp_path / "{split}.jsonl"), split="test")


def test_missing_file_and_unknown_kind(tmp_path):
    with pytest.raises(DatasetError, match=r"dataset file .*nope.jsonl does not exist"):
        task("gsm8k", str(tmp_path / "nope.jsonl"))
    (tmp_path / "data.xlsx").write_text("x")
    with pytest.raises(DatasetError, match="unknown file kind"):
        task("gsm8k", str(tmp_path / "data.xlsx"))
    with pytest.raises(DatasetError, match="needs a source"):
        make_task("prm800k")


def test_hub_dataset_goes_through_load_dataset(monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(name, config=None, split=None, revision=None):
        calls.append((name, config, split, revision))
        # (the third AIME fixture row spells its columns differently: Arrow would drop them)
        return datasets.Dataset.from_list(rows("aime.jsonl")[:2] if "aime" in name else rows("gsm8k.jsonl"))

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    t = task("gsm8k", "someone/gsm8k-copy", config="main", split="train", revision="v1")
    assert calls == [("someone/gsm8k-copy", "main", "train", "v1")] and len(t) == 4
    assert t[0].id == "gsm8k/gsm8k-copy[train]:row 0"
    make_task("gsm8k", split="test")  # no source: the task's default Hub dataset
    make_task("aime", split="test")  # ... whose one split is named train
    assert calls[1:] == [("openai/gsm8k", "main", "test", None), ("HuggingFaceH4/aime_2024", None, "train", None)]


def test_hub_dataset_offline_and_not_cached_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    with pytest.raises(DatasetError) as error:
        task("gsm8k", "reasonloop-tests/no-such-dataset", split="test")
    message = str(error.value)
    assert "'reasonloop-tests/no-such-dataset'" in message and "offline" in message and "\n" not in message


# --- size, cursor, TaskSpec ----------------------------------------------------------------------


def test_size_is_a_seeded_sample_not_the_first_rows(tmp_path):
    path = tmp_path / "many.jsonl"
    path.write_text("".join(json.dumps({"question": f"q{i}", "answer": f"#### {i}"}) + "\n" for i in range(50)))
    a = task("gsm8k", str(path), size=10, seed=1)
    assert len(a) == 10 and [p.answer for p in a] != [str(i) for i in range(10)]
    assert [p.id for p in a] == [p.id for p in task("gsm8k", str(path), size=10, seed=1)]
    assert [p.id for p in a] != [p.id for p in task("gsm8k", str(path), size=10, seed=2)]
    assert len(task("gsm8k", str(path), size=500)) == 50


def test_dataset_tasks_are_finite_for_the_cursor():
    t = task("gsm8k", fixture("gsm8k.jsonl"))
    cursor = ProblemCursor(t, seed=0)
    assert cursor.shuffle
    assert sorted(p.id for p in cursor.take(4)) == sorted(p.id for p in t)


def test_taskspec_builds_dataset_tasks(tmp_path):
    spec = load_config(TaskSpec, None, ["name=gsm8k", f"source={fixture('gsm8k.jsonl')}", "skip_bad_rows=true"])
    t = spec.build(split="test", size=2, seed=0)
    assert t.name == "gsm8k" and len(t) == 2
    assert len(spec.build(split="train", size=None, seed=0)) == 4  # None: every row
    from datasets import Dataset, DatasetDict

    DatasetDict({"train": Dataset.from_list(rows("gsm8k.jsonl")[:3]),
                 "validation": Dataset.from_list(rows("gsm8k.jsonl")[3:])}).save_to_disk(str(tmp_path / "d"))
    spec = TaskSpec("gsm8k", source=str(tmp_path / "d"), split="validation")  # task.split overrides the command's
    assert len(spec.build(split="test", size=None, seed=0)) == 1
    assert TaskSpec("gsm8k", source=str(tmp_path / "d")).build(split="train", size=None, seed=0).config.split == "train"


def test_taskspec_rejects_dataset_keys_on_procedural_tasks_and_unknown_names():
    with pytest.raises(ConfigError, match="task 'arithmetic' is procedural; source, skip_bad_rows only apply"):
        load_config(TaskSpec, None, ["source=x.jsonl", "skip_bad_rows=true"])
    with pytest.raises(ConfigError, match="split must be train or test"):
        load_config(TaskSpec, None, ["split=validation"])
    with pytest.raises(ConfigError, match="unknown task 'gsm8kk'; did you mean 'gsm8k'"):
        load_config(TaskSpec, None, ["name=gsm8kk"])
    assert TaskSpec("arithmetic").build(split="train", size=None, seed=0).config.size == 10_000_000


def test_every_dataset_task_is_registered_and_listed():
    listed = dict(describe_tasks())
    for name in ("gsm8k", "math", "aime", "amc", "humaneval", "mbpp", "prm800k", "processbench", "dataset"):
        assert is_dataset_task(name) and "[dataset;" in listed[name]
    assert not is_dataset_task("arithmetic")


def test_round_problems_walk_a_dataset_by_epochs_and_procedural_tasks_fresh():
    spec = TaskSpec("gsm8k", source=fixture("gsm8k.jsonl"))
    rounds = [spec.round_problems("train", r, per_round=3, seed=5, round_seed=100 + r)[1] for r in range(4)]
    ids = [p.id for problems in rounds for p in problems]
    assert sorted(ids[:4]) == sorted(ids[4:8]) == sorted(p.id for p in make_task("gsm8k", source=fixture("gsm8k.jsonl")))
    assert ids == [p.id for p in ProblemCursor(spec.build("train", None, 0), seed=5).take(12)]
    procedural = TaskSpec("arithmetic")
    a, b = (procedural.round_problems("train", r, 4, seed=5, round_seed=100 + r)[1] for r in range(2))
    assert [p.id for p in a] == [f"arithmetic/train/100/{i}" for i in range(4)] and b[0].id == "arithmetic/train/101/0"


def test_taskspec_label_tells_specs_of_one_task_apart():
    labels = {TaskSpec("gsm8k").label, TaskSpec("gsm8k", source="a.jsonl").label, TaskSpec("gsm8k", source="b.jsonl").label,
              TaskSpec("gsm8k", source="a.jsonl", split="validation").label, TaskSpec("arithmetic").label,
              TaskSpec("arithmetic", {"max_ops": 2}).label}
    assert len(labels) == 6
    assert TaskSpec("math", source="HuggingFaceH4/MATH-500").label == "math(HuggingFaceH4/MATH-500)"
    assert TaskSpec("arithmetic", {"max_ops": 2}).label == "arithmetic{max_ops=2}"


def _write_csv(path, records):
    import csv

    columns = list(dict.fromkeys(k for r in records for k in r))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        for r in records:  # nested values as JSON in their cells
            writer.writerow({k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in r.items()})


@pytest.mark.parametrize("kind", ["jsonl", "parquet", "csv", "save_to_disk"])
@pytest.mark.parametrize("name, fixture_file", [("gsm8k", "gsm8k.jsonl"), ("math", "math.jsonl"),
                                                ("humaneval", "humaneval.jsonl"), ("prm800k", "prm800k.jsonl")])
def test_each_format_loads_the_same_from_every_file_kind(tmp_path, kind, name, fixture_file):
    records = rows(fixture_file)
    if kind == "jsonl":
        path = fixture(fixture_file)
    elif kind == "parquet":
        path = str(tmp_path / "data.parquet")
        _write_parquet(path, records)
    elif kind == "csv":
        path = str(tmp_path / "data.csv")
        _write_csv(path, records)
    else:
        from datasets import Dataset

        path = str(tmp_path / "saved")
        Dataset.from_list(records).save_to_disk(path)
    reference = task(name, fixture(fixture_file))
    loaded = task(name, path)
    assert [(p.prompt, p.answer, p.steps) for p in loaded] == [(p.prompt, p.answer, p.steps) for p in reference]
    assert [p.meta.get("tests") for p in loaded] == [p.meta.get("tests") for p in reference]
    assert [p.meta.get("step_ratings") for p in loaded] == [p.meta.get("step_ratings") for p in reference]
