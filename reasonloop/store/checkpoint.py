"""Checkpoints that resume exactly: model weights, optimizer, LR scheduler, RNG states, loop state.

A checkpoint is a directory `step-000123/` holding a `save_pretrained` model in safetensors
(`model.safetensors`, loadable by any HF tool; a LoRA run saves its peft adapter,
`adapter_model.safetensors`, over the configured base model), the tokenizer, and
`trainer_state.pt` with optimizer/scheduler/RNG state. It is written to a temp directory
and renamed into place, so a kill during the save leaves the previous checkpoint intact.

Rotation (`keep_last`, what transformers calls `save_total_limit`): after a new checkpoint
is marked latest, `prune_checkpoints` deletes the older `step-*` directories beyond the
newest `keep_last`. The one just marked latest is never deleted, so a kill at any moment
leaves a resumable checkpoint: the pointer moves first, the deletions follow.
"""

from __future__ import annotations

import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reasonloop.store.atomic import atomic_replace_dir


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    path: str | Path,
    model,
    tokenizer=None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler=None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a resumable checkpoint atomically to `path` (a directory)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp, safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(tmp)
    torch.save(
        {
            "optimizer": optimizer.state_dict() if optimizer is not None else None,
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "rng": rng_state(),
            "extra": extra or {},
        },
        tmp / "trainer_state.pt",
    )
    atomic_replace_dir(tmp, path)
    return path


def save_model(path: str | Path, model, tokenizer=None) -> Path:
    """Atomically write a `from_pretrained`-loadable model (and tokenizer) directory."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(tmp)
    atomic_replace_dir(tmp, path)
    return path


def load_trainer_state(path: str | Path, optimizer=None, scheduler=None, restore_rng: bool = True) -> dict:
    """Restore optimizer/scheduler/RNG from a checkpoint; returns its `extra` dict."""
    state = torch.load(Path(path) / "trainer_state.pt", map_location="cpu", weights_only=False)
    if optimizer is not None and state["optimizer"] is not None:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    if restore_rng:
        set_rng_state(state["rng"])
    return state["extra"]


_STEP_DIR = re.compile(r"step-(\d+)")


def prune_checkpoints(checkpoints_dir: str | Path, keep_last: int, protect: str | Path | None = None) -> list[Path]:
    """Delete `step-<n>` checkpoint directories beyond the newest `keep_last` (by n); `protect` (the
    checkpoint `latest` names) is always kept. Returns the deleted paths. Other names are left alone."""
    if keep_last < 1:
        raise ValueError(f"keep_last must be >= 1, got {keep_last}")
    steps = sorted((int(m.group(1)), p) for p in Path(checkpoints_dir).iterdir()
                   if p.is_dir() and (m := _STEP_DIR.fullmatch(p.name)))
    keep = {p.name for _, p in steps[-keep_last:]} | ({Path(protect).name} if protect is not None else set())
    deleted = [p for _, p in steps if p.name not in keep]
    for p in deleted:
        shutil.rmtree(p, ignore_errors=True)
    return deleted
