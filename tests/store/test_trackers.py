"""Trackers: what a run logs is read back from each tracker's own files (no network)."""

import glob
import json
import struct
import sys

import pytest

from reasonloop.config import ConfigError, load_config
from reasonloop.store.runs import RunDir
from reasonloop.store.trackers import LogConfig, mlflow_name

ROWS = [{"step": 0, "eval/greedy_accuracy": 0.25},
        {"step": 1, "loss": 1.0, "pass@2": 0.5, "name": "x", "bad": float("nan")},
        {"step": 2, "loss": 0.5, "pass@2": 0.75, "health/kl_blowup": 0}]


def log_rows(tmp_path, to, rows=ROWS, **kw):
    run = RunDir.create(tmp_path / "r", "lr: 0.1\nmodel: {path: m}\n", log=LogConfig(to=to, **kw))
    for row in rows:
        run.log(row)
    run.close()
    return run


def test_jsonl_only_by_default_and_unknown_trackers_are_config_errors(tmp_path):
    run = log_rows(tmp_path, ["jsonl"])
    assert [r["step"] for r in run.read_metrics()] == [0, 1, 2]
    assert not (run.root / "trackers.json").exists() and not (run.root / "tensorboard").exists()
    with pytest.raises(ValueError, match="unknown tracker.*'tensorbord'"):
        LogConfig(to=["tensorbord"])

    from dataclasses import dataclass, field

    @dataclass
    class Cmd:
        log: LogConfig = field(default_factory=LogConfig)

    assert load_config(Cmd, overrides=["log.to=jsonl,tensorboard"]).log.to == ["jsonl", "tensorboard"]
    with pytest.raises(ConfigError, match="log"):
        load_config(Cmd, overrides=["log.to=jsonl,neptune"])


def test_a_tracker_that_is_not_installed_names_its_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb -> ImportError
    run = RunDir.create(tmp_path / "r", log=LogConfig(to=["wandb"]))
    with pytest.raises(ImportError, match=r"pip install 'reasonloop\[wandb\]'"):
        run.log({"step": 1, "loss": 1.0})


def scalars(logdir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir))
    acc.Reload()
    return {tag: [(e.step, round(e.value, 6)) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}, acc


def test_tensorboard_gets_every_number_under_its_own_name(tmp_path):
    pytest.importorskip("tensorboard")
    run = log_rows(tmp_path, ["jsonl", "tensorboard"])
    got, acc = scalars(run.root / "tensorboard")
    assert [step for step, _ in got.pop("mem/peak_rss_gb")] == [0, 1, 2]  # what RunDir.log adds, here too
    assert got == {"eval/greedy_accuracy": [(0, 0.25)], "loss": [(1, 1.0), (2, 0.5)],
                   "pass@2": [(1, 0.5), (2, 0.75)], "health/kl_blowup": [(2, 0.0)]}
    assert "config/text_summary" in acc.Tags()["tensors"]  # the config as a text summary


def test_tensorboard_resume_drops_the_steps_that_are_run_again(tmp_path):
    pytest.importorskip("tensorboard")
    run = log_rows(tmp_path, ["tensorboard"])
    resumed = RunDir.create(run.root, resume=True, log=LogConfig(to=["tensorboard"]))
    resumed.truncate_metrics(lambda r: r["step"] <= 1)  # resume from the step-1 checkpoint
    resumed.log({"step": 2, "loss": 0.4})
    resumed.log({"step": 3, "loss": 0.3})
    resumed.close()
    got, _ = scalars(run.root / "tensorboard")
    assert got["loss"] == [(1, 1.0), (2, 0.4), (3, 0.3)]
    assert [step for step, _ in got["mem/peak_rss_gb"]] == [0, 1, 2, 3]
    assert [r["step"] for r in resumed.read_metrics()] == [0, 1, 2, 3]


def wandb_records(path):
    """Records of a W&B offline `.wandb` file: a LevelDB-style log (7-byte header, 32 KiB blocks) of protobufs."""
    from pathlib import Path

    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B"
    pos, block, buf = 7, 32768, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # block trailer padding
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        buf, pos = buf + data[pos + 7: pos + 7 + length], pos + 7 + length
        if kind in (1, 4):  # FULL or LAST fragment: a whole record
            record = pb.Record()
            record.ParseFromString(buf)
            buf = b""
            yield record


def test_wandb_offline_run_holds_the_same_metrics_and_the_config(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = log_rows(tmp_path, ["wandb"], wandb_mode="offline", project="proj")
    (path,) = glob.glob(str(run.root / "wandb" / "offline-run-*" / "run-*.wandb"))
    history, config = [], None
    for record in wandb_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            items = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item}
            assert items.pop("mem/peak_rss_gb") > 0  # what RunDir.log adds to every row, here too
            history.append({k: v for k, v in items.items() if not k.startswith("_")})
        elif kind == "run":
            config = {i.key: json.loads(i.value_json) for i in record.run.config.update}
            assert record.run.project == "proj" and record.run.run_id == json.loads(
                (run.root / "trackers.json").read_text())["wandb"]
    assert history == [{"step": 0, "eval/greedy_accuracy": 0.25}, {"step": 1, "loss": 1, "pass@2": 0.5},
                       {"step": 2, "loss": 0.5, "pass@2": 0.75, "health/kl_blowup": 0}]
    assert config["lr"] == 0.1 and config["model"] == {"path": "m"}


def test_mlflow_file_store_holds_the_same_metrics_and_resume_continues_the_run(tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    run = log_rows(tmp_path, ["mlflow"], project="proj")
    client = MlflowClient(tracking_uri=(run.root / "mlruns").as_uri())
    (experiment,) = [e for e in client.search_experiments() if e.name == "proj"]
    (found,) = client.search_runs([experiment.experiment_id])
    assert found.info.run_name == "r" and found.info.status == "FINISHED"
    history = {k: [(m.step, m.value) for m in client.get_metric_history(found.info.run_id, k)]
               for k in ("loss", mlflow_name("pass@2"), "eval/greedy_accuracy", "mem/peak_rss_gb")}
    assert [step for step, _ in history.pop("mem/peak_rss_gb")] == [0, 1, 2]
    assert history == {"loss": [(1, 1.0), (2, 0.5)], "pass_at_2": [(1, 0.5), (2, 0.75)],
                       "eval/greedy_accuracy": [(0, 0.25)]}
    resumed = RunDir.create(run.root, resume=True, log=LogConfig(to=["mlflow"], project="proj"))
    resumed.log({"step": 3, "loss": 0.25})
    resumed.close()
    assert len(client.search_runs([experiment.experiment_id])) == 1
    assert [m.step for m in client.get_metric_history(found.info.run_id, "loss")] == [1, 2, 3]
