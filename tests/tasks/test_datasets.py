"""Loaders for local dataset files: formats, file kinds, and errors that name file:line and field."""

import json
import pathlib

import pytest

from reasonloop.tasks.datasets import (
    DatasetError,
    load_aime,
    load_generic,
    load_gsm8k,
    load_math,
    load_prm800k,
    read_rows,
)

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures"


def fixture(name: str) -> str:
    return str(FIXTURES / name)


def test_gsm8k():
    task = load_gsm8k(fixture("gsm8k.jsonl"))
    assert len(task) == 4  # the blank line is skipped
    p = task[0]
    assert p.answer == "72" and p.id == "gsm8k/gsm8k.jsonl:1"
    assert p.steps == ["Natalia sold 48/2 = 24 clips in May.", "Natalia sold 48+24 = 72 clips altogether in April and May."]
    assert task[3].answer == "3000"  # thousands separator in the gold
    assert task[2].id.endswith(":4")  # line numbers count the blank line
    assert task.verify(p, "... so she sold 72 clips.\n#### 72") == 1.0
    assert task.verify(p, r"\boxed{72.0}") == 1.0
    assert task.verify(p, "#### 71") == 0.0
    assert task.verify(p, p.meta["solution"]) == 1.0


@pytest.mark.parametrize("name, message", [
    ("gsm8k_bad.jsonl", r"gsm8k_bad.jsonl:2: field 'answer' has no '#### <number>' line"),
    ("gsm8k_missing_field.jsonl", r"gsm8k_missing_field.jsonl:2: missing field 'question'"),
    ("gsm8k_bad_json.jsonl", r"gsm8k_bad_json.jsonl:2: not valid JSON"),
])
def test_gsm8k_errors_name_file_line_and_field(name, message):
    with pytest.raises(DatasetError) as error:
        load_gsm8k(fixture(name))
    assert message in str(error.value)


def test_math_gold_from_boxed_with_nested_braces():
    task = load_math(fixture("math.jsonl"))
    assert [p.answer for p in task] == [r"\frac{3}{4}", r"\{-1, 1\}", r"2\sqrt{3}", r"(1, \infty)"]
    assert task[0].meta["level"] == "Level 1"
    assert task.verify(task[0], r"The sum is $\boxed{0.75}$.") == 1.0
    assert task.verify(task[1], r"\boxed{\{1,-1\}}") == 1.0
    assert task.verify(task[2], r"\boxed{\sqrt{12}}") == 1.0
    assert task.verify(task[3], r"\boxed{[1, \infty)}") == 0.0


def test_math500_uses_the_answer_field():
    task = load_math(fixture("math500.jsonl"))
    assert task[0].answer == r"\left( 3, \frac{\pi}{2} \right)"
    assert task[0].id == "math/test/precalculus/807.json"
    assert task.verify(task[0], r"\boxed{(3, \frac{\pi}{2})}") == 1.0


def test_math_without_boxed_answer_is_an_error():
    with pytest.raises(DatasetError, match=r"math_no_boxed.jsonl:2: field 'solution' has no \\boxed"):
        load_math(fixture("math_no_boxed.jsonl"))


def test_aime():
    task = load_aime(fixture("aime.jsonl"))
    assert [p.answer for p in task] == ["401", "33", "25"]
    assert task[0].id == "aime/2024-I-1" and task[2].id == "aime/2023-II-5"
    assert task.verify(task[1], r"\boxed{033}") == 1.0 and task.verify(task[1], r"\boxed{34}") == 0.0
    with pytest.raises(DatasetError, match=r"aime_bad.jsonl:2: field 'answer' should be an integer 0-999"):
        load_aime(fixture("aime_bad.jsonl"))


def test_prm800k_steps_and_ratings():
    task = load_prm800k(fixture("prm800k.jsonl"))
    first, stopped, human = task[0], task[1], task[2]
    assert first.answer == "30"
    assert first.steps[1] == "720 = 2^4 * 3^2 * 5."  # the chosen completion
    assert first.meta["step_ratings"] == [1, 1, 1, 1] and first.meta["first_error"] is None
    assert stopped.steps[-1].startswith("With n = 10")  # no chosen completion: labelling stopped here
    assert stopped.meta["step_ratings"] == [1, -1] and stopped.meta["first_error"] == 1
    assert stopped.meta["finish_reason"] == "found_error"
    assert human.steps[0] == "2 + 3 = 5." and human.meta["step_ratings"] == [None, 1]
    with pytest.raises(DatasetError, match=r"prm800k_bad.jsonl:1: label.steps\[1\]: field 'rating' should be -1, 0 or 1"):
        load_prm800k(fixture("prm800k_bad.jsonl"))


def test_generic_field_mapping_with_dotted_paths():
    task = load_generic(fixture("generic.jsonl"), prompt_field="input.text", answer_field="target", id_field="uid")
    assert task.name == "generic" and task[0].id == "17" and task[1].answer == "1024"
    assert task.verify(task[1], r"\boxed{2^{10}}") == 1.0
    with pytest.raises(DatasetError, match=r"generic.jsonl:1: missing field 'input.question'"):
        load_generic(fixture("generic.jsonl"), prompt_field="input.question")


def _rows(name):
    return [json.loads(line) for line in (FIXTURES / name).read_text().splitlines() if line.strip()]


def test_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "gsm8k.parquet"
    pq.write_table(pa.Table.from_pylist(_rows("gsm8k.jsonl")), path)
    task = load_gsm8k(str(path))
    assert [p.answer for p in task] == ["72", "10", "600", "3000"]
    assert task[1].id == "gsm8k/gsm8k.parquet:row 1"
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.Table.from_pylist(_rows("gsm8k_bad.jsonl")), bad)
    with pytest.raises(DatasetError, match=r"bad.parquet:row 1: field 'answer'"):
        load_gsm8k(str(bad))


def test_save_to_disk(tmp_path):
    from datasets import Dataset, DatasetDict

    Dataset.from_list(_rows("math500.jsonl")).save_to_disk(str(tmp_path / "math500"))
    task = load_math(str(tmp_path / "math500"))
    assert [p.answer for p in task] == [r"\left( 3, \frac{\pi}{2} \right)", "2"]
    DatasetDict({"test": Dataset.from_list(_rows("math500.jsonl"))}).save_to_disk(str(tmp_path / "dict"))
    with pytest.raises(DatasetError, match="DatasetDict"):
        list(read_rows(str(tmp_path / "dict")))
    assert len(load_math(str(tmp_path / "dict" / "test"))) == 2
