import json

import pytest

from reasonloop.store.jsonl import RecordError, append_jsonl, iter_jsonl, read_jsonl, write_jsonl
from reasonloop.types import EvalRecord, Problem, Sample


def test_round_trip_every_record_kind(tmp_path):
    records = [
        Problem(id="p1", prompt="1+1?", answer="2", steps=["1 + 1 = 2"], meta={"k": [1, 2]}),
        Sample(problem_id="p1", prompt="1+1?", text="Answer: 2", token_ids=[5, 6], logprobs=[-0.1, -0.2],
               finish_reason="eos", steps=["Answer: 2"], rewards={"correct": 1.0, "format": None}),
        EvalRecord(problem_id="p1", task="t", strategy="greedy", answer="2", selected="2", correct=True),
    ]
    path = tmp_path / "a.jsonl"
    assert write_jsonl(path, records) == 3
    assert read_jsonl(path) == records
    row = json.loads(path.read_text().splitlines()[1])
    assert row["schema"] == 1 and row["kind"] == "sample"


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", r"a.jsonl:2: not valid JSON"),
        ("[1, 2]", r"a.jsonl:2: expected a JSON object"),
        ('{"kind": "sample", "prompt": "x", "text": "y"}', r"a.jsonl:2: missing required field\(s\) 'problem_id'"),
        ('{"kind": "sample", "problem_id": "p", "prompt": "x", "text": 3}', r"a.jsonl:2: field 'text': expected str"),
        ('{"kind": "sample", "problem_id": "p", "prompt": "x", "text": "y", "logprobs": ["a"]}',
         r"a.jsonl:2: field 'logprobs'"),
        ('{"kind": "sample", "problem_id": "p", "prompt": "x", "text": "y", "finish_reason": "done"}',
         r"a.jsonl:2: field 'finish_reason'"),
        ('{"kind": "sample", "problem_id": "p", "prompt": "x", "text": "y", "colour": 1}',
         r"a.jsonl:2: unknown field 'colour'"),
        ('{"schema": 99, "kind": "sample", "problem_id": "p", "prompt": "x", "text": "y"}',
         r"a.jsonl:2: schema version 99"),
        ('{"kind": "banana"}', r"a.jsonl:2: field 'kind'"),
    ],
)
def test_malformed_rows_name_file_line_and_field(tmp_path, line, message):
    path = tmp_path / "a.jsonl"
    good = json.dumps({"kind": "sample", "problem_id": "p", "prompt": "x", "text": "y"})
    path.write_text(good + "\n" + line + "\n")
    with pytest.raises(RecordError, match=message):
        read_jsonl(path)


def test_reading_a_kind_mismatch_is_an_error(tmp_path):
    path = tmp_path / "a.jsonl"
    write_jsonl(path, [Problem(id="p", prompt="q")])
    with pytest.raises(RecordError, match="expected 'sample' rows, got 'problem'"):
        read_jsonl(path, Sample)


def test_torn_tail_is_tolerated_only_when_asked(tmp_path):
    path = tmp_path / "m.jsonl"
    append_jsonl(path, [{"step": 1}, {"step": 2}])
    with open(path, "a") as f:
        f.write('{"step": 3, "lo')  # a killed writer
    assert [r for _, r in iter_jsonl(path, skip_torn_tail=True)] == [{"step": 1}, {"step": 2}]
    with pytest.raises(RecordError, match="m.jsonl:3"):
        list(iter_jsonl(path))


def test_write_is_atomic_on_failure(tmp_path):
    path = tmp_path / "a.jsonl"
    write_jsonl(path, [Problem(id="old", prompt="q")])

    def rows():
        yield Problem(id="new", prompt="q")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        write_jsonl(path, rows())
    assert [p.id for p in read_jsonl(path)] == ["old"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
