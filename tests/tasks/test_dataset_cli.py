"""End to end from the CLI: `reasonloop eval task.name=gsm8k task.source=<file>` on the tiny model."""

import json
import pathlib

from reasonloop.cli import main
from reasonloop.store.jsonl import read_jsonl

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures"


def test_eval_on_a_gsm8k_file(tmp_path, tiny_model_dir):
    runs = tmp_path / "runs"
    assert main(["eval", f"model.path={tiny_model_dir}", "task.name=gsm8k", f"task.source={FIXTURES / 'gsm8k.jsonl'}",
                 "num_problems=3", "samples_per_prompt=2", "max_new_tokens=8", f"output_dir={runs}"]) == 0
    results = json.loads((runs / "eval/results.json").read_text())
    assert results["task"] == "gsm8k" and results["num_problems"] == 3
    assert {"greedy_accuracy", "maj@2", "pass@2"} <= set(results)
    records = read_jsonl(runs / "eval/records.jsonl")
    assert len(records) == 6 and {r.task for r in records} == {"gsm8k"}
    golds = {"72", "10", "600", "3000"}
    assert all(r.problem_id.startswith("gsm8k/gsm8k.jsonl:") and r.answer in golds for r in records)


def test_eval_on_a_math_parquet_with_a_template(tmp_path, tiny_model_dir):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [json.loads(line) for line in (FIXTURES / "math500.jsonl").read_text().splitlines()]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "test.parquet")
    runs = tmp_path / "runs"
    assert main(["eval", f"model.path={tiny_model_dir}", "task.name=math", f"task.source={tmp_path}/{{split}}.parquet",
                 "task.template='Problem: {problem}'", "samples_per_prompt=0", "max_new_tokens=4",
                 f"output_dir={runs}"]) == 0
    records = read_jsonl(runs / "eval/records.jsonl")
    assert sorted(r.problem_id for r in records) == ["math/test/prealgebra/1.json", "math/test/precalculus/807.json"]


def test_eval_grid_keeps_two_sources_of_one_task_apart(tmp_path, tiny_model_dir):
    import shutil

    shutil.copy(FIXTURES / "gsm8k.jsonl", tmp_path / "a.jsonl")
    (tmp_path / "b.jsonl").write_text((FIXTURES / "gsm8k.jsonl").read_text().splitlines()[0] + "\n")
    (tmp_path / "grid.yaml").write_text(
        "strategies: [{name: greedy, options: {max_new_tokens: 4}}]\n"
        f"tasks: [{{name: gsm8k, source: {tmp_path / 'a.jsonl'}}}, {{name: gsm8k, source: {tmp_path / 'b.jsonl'}}}]\n")
    assert main(["eval", "--config", str(tmp_path / "grid.yaml"), f"model.path={tiny_model_dir}", "num_problems=2",
                 f"output_dir={tmp_path / 'runs'}"]) == 0
    results = json.loads((tmp_path / "runs/eval/results.json").read_text())
    assert [c["task"] for c in results["cells"]] == [f"gsm8k({tmp_path / 'a.jsonl'})", f"gsm8k({tmp_path / 'b.jsonl'})"]
    assert [c["num_problems"] for c in results["cells"]] == [2, 1]
    assert len(list((tmp_path / "runs/eval/cells").glob("*.jsonl"))) == 2


def test_commands_leave_hub_access_to_the_user(monkeypatch):
    """`quiet_hf` (run before every command) must not switch the Hub off: `task.name=gsm8k` with no
    source, or a Hub model id, has to download like any Hugging Face tool unless the user says offline."""
    from reasonloop.utils import quiet_hf

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    quiet_hf()
    import os

    assert "HF_HUB_OFFLINE" not in os.environ


def test_bad_rows_and_sources_are_one_line_and_exit_2(tmp_path, tiny_model_dir, capsys):
    def run(*overrides):
        code = main(["eval", f"model.path={tiny_model_dir}", "task.name=gsm8k", "samples_per_prompt=0",
                     "max_new_tokens=4", f"output_dir={tmp_path / 'runs'}", *overrides])
        err = capsys.readouterr().err.strip()
        return code, err

    code, err = run(f"task.source={FIXTURES / 'gsm8k_bad.jsonl'}")
    assert code == 2 and "\n" not in err and "Traceback" not in err
    assert err.endswith("gsm8k_bad.jsonl:2: field 'answer' has no '#### <number>' line")
    code, err = run(f"task.source={tmp_path / 'missing.jsonl'}")
    assert code == 2 and err.endswith(f"dataset file {tmp_path / 'missing.jsonl'} does not exist")
    code, err = run(f"task.source={FIXTURES / 'gsm8k_bad.jsonl'}", "task.skip_bad_rows=true")
    assert code == 0 and "gsm8k: skipped 1 bad row of" in err
