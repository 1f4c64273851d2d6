"""Small helpers used everywhere: seeding, the console, progress bars, timing."""

from __future__ import annotations

import os
import random
import time
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:
        pass
    import torch

    torch.manual_seed(seed)


def progress() -> Progress:
    """A rich progress bar on stderr (quiet when not a terminal and REASONLOOP_QUIET is set)."""
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
        console=console, transient=False, disable=bool(os.environ.get("REASONLOOP_QUIET")),
    )


def peak_rss_gb() -> float:
    """This process's peak resident set size in GiB: Linux's VmHWM (the high-water mark of this program's
    own memory; getrusage's ru_maxrss would also count a large parent's memory at fork, which survives exec),
    else getrusage."""
    import resource
    import sys

    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**20  # kB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / (2**30 if sys.platform == "darwin" else 2**20)


def peak_memory() -> dict[str, float]:
    """This process's peak memory so far, in GiB: resident set (`mem/peak_rss_gb`, `peak_rss_gb`) and, when
    CUDA is in use, the caching allocator's maximum allocated (`mem/cuda_max_allocated_gb`)."""
    import sys

    out = {"mem/peak_rss_gb": round(peak_rss_gb(), 4)}
    torch = sys.modules.get("torch")  # never imports torch itself: the CLI start-up stays light
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        out["mem/cuda_max_allocated_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 4)
    return out


@contextmanager
def timed(into: dict, key: str):
    """Add the wall seconds of the block to `into[key]`."""
    start = time.perf_counter()
    try:
        yield
    finally:
        into[key] = into.get(key, 0.0) + time.perf_counter() - start


def quiet_hf() -> None:
    """Silence transformers' weight-loading progress bars and info logs (we draw our own).

    Hub access is left to the user's own `HF_HUB_OFFLINE` / `HF_DATASETS_OFFLINE`: commands load
    Hub models and datasets like any Hugging Face tool (tests set offline mode in conftest; the
    quickstart loads only directories it wrote, which never touches the Hub).
    """
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:
        pass


@contextmanager
def optional_progress(total: int, description: str, min_total: int = 64):
    """A progress bar over `total` items that yields `advance(n)`; silent below `min_total` items
    (step-level search makes many small calls) or when another bar is already live."""
    from rich.errors import LiveError

    bar = progress() if total >= min_total else None
    if bar is not None:
        try:
            bar.start()
        except LiveError:  # rich allows one live display at a time; the outer one wins
            bar = None
    if bar is None:
        yield lambda n=1: None
        return
    task = bar.add_task(description, total=total, info="")
    try:
        yield lambda n=1: bar.advance(task, n)
    finally:
        bar.stop()
