"""Experiment trackers: every metric a run logs goes to `metrics.jsonl` and, if asked, to
TensorBoard, Weights & Biases and MLflow, under the same names.

    log:
      to: [tensorboard, wandb]     # jsonl is always on
      project: my-project          # W&B project / MLflow experiment

A command config includes `log: LogConfig` and passes it to `RunDir.create(..., log=cfg.log)`;
`RunDir.log(metrics)` then writes the JSONL row and forwards every finite number to each
tracker at `step` (the row's `step`, else `iteration`, else a counter). Each tracker's
package is an optional extra, imported only when it is chosen (`pip install
'reasonloop[tensorboard]'`, `[wandb]`, `[mlflow]`); choosing one that is not installed is a
one-line error naming the extra.

Names: the JSONL key is the metric name everywhere. MLflow alone rejects some characters
(`@` of `pass@k`, `maj@k`): it gets `@` written as `_at_` and any other character outside
its set as `_` (`mlflow_name`); nothing else is renamed.

Resume: tracker run ids are kept in `trackers.json` in the run directory, so a resumed run
continues the same W&B / MLflow run, and TensorBoard's writer purges events at or after the
first re-logged step (`purge_step`), as metrics.jsonl drops the rows after the checkpoint.

Hand-written glue, not a library: each tracker is a few calls of its own client; what is
ours is one place that maps our metric rows onto all of them with the same names and the
resume rules of our run directory.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from reasonloop.store.atomic import atomic_write_json

EXTRAS = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}
"""tracker name -> the reasonloop extra that installs it"""


@dataclass
class LogConfig:
    to: list[str] = field(default_factory=lambda: ["jsonl"])
    """where metrics go: jsonl (always on) plus any of tensorboard, wandb, mlflow"""
    project: str = "reasonloop"
    """W&B project and MLflow experiment name"""
    wandb_mode: str = ""
    """online, offline or disabled ("": wandb's own default, i.e. WANDB_MODE or online)"""
    mlflow_uri: str = ""
    """MLflow tracking URI ("": a file store in <run>/mlruns)"""
    samples: bool = True
    """keep every step's rollouts in samples/step-NNNNNN.jsonl (what `reasonloop view` shows)"""

    def __post_init__(self):
        unknown = [t for t in self.to if t != "jsonl" and t not in TRACKERS]
        if unknown:
            raise ValueError(f"log.to: unknown tracker(s) {unknown}; choose from jsonl, {', '.join(TRACKERS)}")
        if self.wandb_mode not in ("", "online", "offline", "disabled"):
            raise ValueError(f"log.wandb_mode must be online, offline or disabled, got {self.wandb_mode!r}")


class Tracker(Protocol):
    def log(self, step: int, metrics: dict[str, float]) -> None: ...

    def close(self) -> None: ...


def numeric_metrics(row: dict[str, Any]) -> dict[str, float]:
    """The trackable part of a metrics row: finite numbers (bools as 0/1), minus the step keys and wall time.

    >>> numeric_metrics({"step": 3, "time": 1.5, "loss": 0.5, "ok": True, "name": "x", "bad": float("nan")})
    {'loss': 0.5, 'ok': 1.0}
    """
    out = {}
    for key, value in row.items():
        if key in ("step", "iteration", "time") or not isinstance(value, (int, float)):
            continue
        if math.isfinite(value):
            out[key] = float(value)
    return out


def mlflow_name(name: str) -> str:
    """A metric name MLflow accepts: `@` -> `_at_`, other characters outside [/\\w.\\- :] -> `_`.

    >>> mlflow_name("pass@8"), mlflow_name("reward/correct"), mlflow_name("a+b")
    ('pass_at_8', 'reward/correct', 'a_b')
    """
    return re.sub(r"[^/\w.\- :]", "_", name.replace("@", "_at_"))


def _require(module: str, tracker: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"log.to includes {tracker!r} but {module} is not installed: "
                          f"pip install 'reasonloop[{EXTRAS[tracker]}]'") from None


class TensorBoardTracker:
    """Scalars through torch's `SummaryWriter` into `<run>/tensorboard`; the config as a text summary."""

    def __init__(self, root: Path, cfg: LogConfig, config: dict, ids: dict, purge_step: int | None):
        _require("tensorboard", "tensorboard")
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(root / "tensorboard"), purge_step=purge_step)
        if config and purge_step is None:
            import yaml

            self.writer.add_text("config", "```\n" + yaml.safe_dump(config, sort_keys=False) + "```", 0)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandbTracker:
    """A W&B run in `<run>/wandb` (offline with `log.wandb_mode=offline`; `wandb sync` uploads it later)."""

    def __init__(self, root: Path, cfg: LogConfig, config: dict, ids: dict, purge_step: int | None):
        wandb = _require("wandb", "wandb")
        (root / "wandb").mkdir(parents=True, exist_ok=True)
        ids.setdefault("wandb", secrets.token_hex(4))  # our id, so a resume reopens this run
        self.run = wandb.init(project=cfg.project, name=root.name, id=ids["wandb"], resume="allow", dir=str(root),
                              config=config, mode=cfg.wandb_mode or None, reinit="create_new")
        self.run.define_metric("step")
        self.run.define_metric("*", step_metric="step")  # charts against our step, as in the other trackers

    def log(self, step: int, metrics: dict[str, float]) -> None:
        # our step, not wandb's own counter: a resumed run re-logs steps wandb already saw
        self.run.log({**metrics, "step": step})

    def close(self) -> None:
        import wandb

        self.run.finish()
        wandb.teardown()  # finish() leaves the offline file to the service process; teardown waits for it


class MlflowTracker:
    """An MLflow run (file store in `<run>/mlruns` unless `log.mlflow_uri`); the config as an artifact."""

    def __init__(self, root: Path, cfg: LogConfig, config: dict, ids: dict, purge_step: int | None):
        _require("mlflow", "mlflow")
        from mlflow.tracking import MlflowClient

        uri = cfg.mlflow_uri or (root / "mlruns").resolve().as_uri()
        if not cfg.mlflow_uri:
            # MLflow 3 keeps file stores working behind this opt-in (the store is in maintenance mode); a
            # database or server backend is one `log.mlflow_uri` away (sqlite:///..., http://...)
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(tracking_uri=uri)
        if "mlflow" not in ids:
            experiment = self.client.get_experiment_by_name(cfg.project)
            experiment_id = (experiment.experiment_id if experiment is not None
                             else self.client.create_experiment(cfg.project))
            ids["mlflow"] = self.client.create_run(experiment_id, run_name=root.name).info.run_id
            if config:
                import yaml

                self.client.log_text(ids["mlflow"], yaml.safe_dump(config, sort_keys=False), "config.yaml")
        self.run_id = ids["mlflow"]

    def log(self, step: int, metrics: dict[str, float]) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(mlflow_name(k), v, now, step) for k, v in metrics.items()])

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


TRACKERS: dict[str, type] = {"tensorboard": TensorBoardTracker, "wandb": WandbTracker, "mlflow": MlflowTracker}


class Trackers:
    """The chosen trackers of one run directory, opened on the first `log` (so a resume can purge first)."""

    def __init__(self, root: Path, cfg: LogConfig, config: dict | None):
        self.root, self.cfg, self.config = root, cfg, config or {}
        self.open: list[Tracker] | None = None
        self.purge_step: int | None = None
        self.counter = 0
        self._registered = False

    @property
    def ids_path(self) -> Path:
        return self.root / "trackers.json"

    def resume_from(self, step: int) -> None:
        """Steps after `step` will be logged again: trackers that can drop them do (TensorBoard)."""
        self.purge_step = step + 1

    def log(self, row: dict[str, Any]) -> None:
        names = [t for t in self.cfg.to if t != "jsonl"]
        if not names:
            return
        if self.open is None:
            ids = json.loads(self.ids_path.read_text()) if self.ids_path.exists() else {}
            self.open = [TRACKERS[name](self.root, self.cfg, self.config, ids, self.purge_step) for name in names]
            atomic_write_json(self.ids_path, ids)
            if not self._registered:
                atexit.register(self.close)  # a command that never closes its run still flushes W&B / MLflow
                self._registered = True
        step = row.get("step", row.get("iteration", self.counter))
        self.counter = int(step) + 1
        metrics = numeric_metrics(row)
        for tracker in self.open:
            tracker.log(int(step), metrics)

    def close(self) -> None:
        for tracker in self.open or []:
            tracker.close()
        self.open = None
