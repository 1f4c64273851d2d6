import pytest

from reasonloop.store.runs import RunDir


def test_run_dir_layout_metrics_and_state(tmp_path):
    run = RunDir.create(tmp_path / "r", config_yaml="a: 1\n")
    assert (run.root / "config.yaml").read_text() == "a: 1\n"
    assert run.samples_dir.is_dir() and run.checkpoints_dir.is_dir()
    run.log({"step": 1, "loss": 2.0})
    run.log({"step": 2, "loss": 1.0})
    assert [r["loss"] for r in run.read_metrics()] == [2.0, 1.0]
    run.truncate_metrics(lambda r: r["step"] <= 1)
    assert [r["step"] for r in run.read_metrics()] == [1]
    run.save_state({"iteration": 2})
    assert run.load_state() == {"iteration": 2}


def test_new_run_refuses_a_directory_with_checkpoints(tmp_path):
    run = RunDir.create(tmp_path / "r")
    ckpt = run.checkpoint_path(3)
    ckpt.mkdir()
    run.mark_latest(ckpt)
    assert run.latest_checkpoint() == ckpt
    with pytest.raises(FileExistsError, match="--resume"):
        RunDir.create(tmp_path / "r")
    assert RunDir.create(tmp_path / "r", resume=True).latest_checkpoint() == ckpt


def test_atomic_writes_get_ordinary_permissions(tmp_path):
    import os

    from reasonloop.store.atomic import atomic_write_text

    atomic_write_text(tmp_path / "a.txt", "x")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~umask


def test_keep_last_rotates_step_checkpoints_and_keeps_the_latest(tmp_path):
    run = RunDir.create(tmp_path / "r")
    (run.checkpoints_dir / "iter-001-step-000002").mkdir()  # other names are not step checkpoints: left alone
    for step in (1, 2, 3, 10):
        run.checkpoint_path(step).mkdir()
        run.mark_latest(run.checkpoint_path(step), keep_last=2)
    assert sorted(p.name for p in run.checkpoints_dir.iterdir() if p.is_dir()) == [
        "iter-001-step-000002", "step-000003", "step-000010"]
    assert run.latest_checkpoint() == run.checkpoint_path(10)
    # a resumed run that marks an older step latest keeps it even when higher steps exist
    run.mark_latest(run.checkpoint_path(3), keep_last=1)
    assert run.latest_checkpoint() == run.checkpoint_path(3) and run.checkpoint_path(10).exists()
    run.mark_latest(run.checkpoint_path(10), keep_last=0)  # 0: keep everything
    assert run.checkpoint_path(3).exists()


def test_every_metrics_row_carries_peak_memory(tmp_path):
    run = RunDir.create(tmp_path / "r")
    run.log({"step": 1})
    row = run.read_metrics()[0]
    assert row["step"] == 1 and 0.01 < row["mem/peak_rss_gb"] < 1024
