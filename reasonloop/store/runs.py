"""The run directory: everything one command writes, and what `--resume` reads back.

    runs/<name>/
      config.yaml          resolved config (defaults -> YAML -> overrides)
      metrics.jsonl        one JSON object per logged step/iteration
      samples/             JSONL sample files (same format everywhere)
      rollouts/            step-000123.jsonl: every sample of every training step, one file per step
      trackers.json        run ids of the W&B / MLflow runs (store.trackers), so a resume continues them
      checkpoints/         step-000123/ directories, written atomically; `latest` names the newest
      state.json           small resumable loop state (iteration, phase, data position)

Every file write is atomic (see `store.atomic`); metrics are appended and fsynced, and a
torn last line left by a kill is ignored on read. `log(metrics)` also feeds the trackers
chosen in the command's `log:` block (`store.trackers`: TensorBoard, W&B, MLflow).
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reasonloop.store.atomic import atomic_write_json, atomic_write_text
from reasonloop.store.jsonl import append_jsonl, iter_jsonl, write_jsonl
from reasonloop.store.trackers import LogConfig, Trackers
from reasonloop.types import Sample
from reasonloop.utils import peak_memory


@dataclass
class RunDir:
    root: Path
    log_config: LogConfig = field(default_factory=LogConfig)
    trackers: Trackers | None = None

    @classmethod
    def create(cls, root: str | Path, config_yaml: str | None = None, resume: bool = False,
               log: LogConfig | None = None) -> RunDir:
        """Open `root` for a new run (or an existing one when resuming) and save the config.

        A new run refuses a directory that already holds checkpoints, so results are never
        silently mixed: pass `resume=true` to continue, or pick another `run_name`. `log`
        chooses the trackers metrics also go to (default: metrics.jsonl only).
        """
        import yaml

        log = log or LogConfig()
        config = yaml.safe_load(config_yaml) if config_yaml else None
        run = cls(Path(root), log, Trackers(Path(root), log, config if isinstance(config, dict) else None))
        if not resume and run.latest_checkpoint() is not None:
            raise FileExistsError(
                f"{run.root} already holds checkpoints; pass --resume to continue it or choose another run_name"
            )
        for sub in ("samples", "checkpoints"):
            (run.root / sub).mkdir(parents=True, exist_ok=True)
        if config_yaml is not None:
            atomic_write_text(run.root / "config.yaml", config_yaml)
        return run

    # --- paths ---
    @property
    def samples_dir(self) -> Path:
        return self.root / "samples"

    @property
    def rollouts_dir(self) -> Path:
        return self.root / "rollouts"

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / "checkpoints"

    @property
    def metrics_path(self) -> Path:
        return self.root / "metrics.jsonl"

    def checkpoint_path(self, step: int) -> Path:
        return self.checkpoints_dir / f"step-{step:06d}"

    # --- metrics ---
    def log(self, metrics: dict[str, Any]) -> None:
        """Append one metrics row, with the process's peak memory so far (`utils.peak_memory`)."""
        row = {**metrics, **peak_memory()}
        append_jsonl(self.metrics_path, [{"time": round(time.time(), 3), **row}])
        if self.trackers is not None:
            self.trackers.log(row)  # the very row of metrics.jsonl: the same names in every tracker

    def close(self) -> None:
        """Finish the trackers' runs (W&B, MLflow); also done at interpreter exit."""
        if self.trackers is not None:
            self.trackers.close()

    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_path.exists():
            return []
        return [row for _, row in iter_jsonl(self.metrics_path, skip_torn_tail=True)]

    def truncate_metrics(self, keep: callable) -> None:
        """Drop metric rows logged after the checkpoint we resume from (they will be re-logged)."""
        rows = [r for r in self.read_metrics() if keep(r)]
        atomic_write_text(self.metrics_path, "".join(json.dumps(r) + "\n" for r in rows))
        steps = [r.get("step", r.get("iteration")) for r in rows]
        if self.trackers is not None and steps:
            self.trackers.resume_from(max((s for s in steps if isinstance(s, int)), default=-1))

    # --- rollouts ---
    def rollouts_path(self, step: int) -> Path:
        return self.rollouts_dir / f"step-{step:06d}.jsonl"

    def write_rollouts(self, step: int, samples: list[Sample], keep_tokens: bool = False) -> Path | None:
        """Keep every sample of training step `step` in its own file (never appended to another step's).

        A sample carries its prompt, completion, rewards, `steps` and what the loop put in `meta`
        (`step_verdicts`, `step_scores`, `steps_valid`, tool calls, ...). Token ids and logprobs are
        dropped unless `keep_tokens` (they are most of the bytes and nothing reads them back).
        A resumed run re-writes the steps it re-runs. No-op when `log.samples` is off.
        """
        if not self.log_config.samples:
            return None
        if not keep_tokens:
            samples = [dataclasses.replace(s, token_ids=[], logprobs=[]) for s in samples]
        path = self.rollouts_path(step)
        write_jsonl(path, samples)
        return path

    def rollout_steps(self) -> list[int]:
        """The steps whose rollouts were kept, in order."""
        if not self.rollouts_dir.is_dir():
            return []
        return sorted(int(p.stem.split("-")[1]) for p in self.rollouts_dir.glob("step-*.jsonl"))

    # --- loop state and checkpoints ---
    def save_state(self, state: dict[str, Any]) -> None:
        atomic_write_json(self.root / "state.json", state)

    def load_state(self) -> dict[str, Any] | None:
        p = self.root / "state.json"
        return json.loads(p.read_text()) if p.exists() else None

    def mark_latest(self, ckpt: Path, keep_last: int = 0) -> None:
        """Point `latest` at `ckpt`; then, with `keep_last` > 0, delete all but the newest `keep_last`
        `step-*` checkpoints (never `ckpt`: the newest resumable one is always kept)."""
        atomic_write_text(self.checkpoints_dir / "latest", ckpt.name + "\n")
        if keep_last:
            from reasonloop.store.checkpoint import prune_checkpoints  # imports torch: only when rotating

            prune_checkpoints(self.checkpoints_dir, keep_last, protect=ckpt)

    def latest_checkpoint(self) -> Path | None:
        pointer = self.checkpoints_dir / "latest"
        if not pointer.exists():
            return None
        path = self.checkpoints_dir / pointer.read_text().strip()
        return path if path.exists() else None

    def write_json(self, name: str, obj: Any) -> Path:
        path = self.root / name
        atomic_write_json(path, obj)
        return path
