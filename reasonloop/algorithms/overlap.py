"""Sampling the next step's batch while this step trains: one-step off-policy overlap.

Used by `grpo` (`overlap_sampling`): step t+1's batch is sampled on a worker thread while
step t trains. The worker samples with its own copy of the policy, loaded from the trained
weights only while it is idle (`load_weights`, at the start of each step), so batch t+1
comes from the weights step t starts from and is trained on one update later: one-step
off-policy, as in Noukhovitch et al. 2024 (Asynchronous RLHF, arXiv:2410.18252) and verl's
one-step-off-policy recipe. The sampler's logprobs are that behaviour policy's, so the PPO
ratio and its clipping correct for the lag. Every input of a batch (the weights, and the
arguments given to `submit`, which the caller copies) is fixed when it is submitted, so a
run is deterministic whatever the threads' timing; the caller checkpoints the batch in
flight to resume exactly.

Why a thread (not a process): the policy copy is shared memory for free, and torch releases
the GIL inside its kernels, so sampling and the update run on two cores at once with one torch
thread each (`OMP_NUM_THREADS=1`); with more threads they share torch's intra-op pool. The
measurements are in docs/grpo.md ("Overlapped sampling"). Multi-step staleness and other
machines are `reasonloop.distributed`'s.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import torch


class OverlappedSampling:
    """Runs `sample(sampler, step, *args)` one step ahead on a worker thread.

    `make_sampler(model_copy)` builds the worker's sampler over its own copy of `model`.
    """

    def __init__(self, model, make_sampler: Callable[[Any], Any], sample: Callable[..., Any]):
        self.model = copy.deepcopy(model).eval()
        self.model.requires_grad_(False)
        self.sampler = make_sampler(self.model)
        self.sample = sample
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="overlapped-sampling")
        self.future: Future | None = None
        self.future_step = 0

    def load_weights(self, model) -> None:
        """Copy the policy's current weights into the worker's copy (only while no batch is in flight)."""
        assert self.future is None, "weights may change only while the sampler is idle"
        with torch.no_grad():
            for mine, theirs in zip(self.model.state_dict().values(), model.state_dict().values()):
                mine.copy_(theirs)

    def submit(self, step: int, *args) -> None:
        """Start sampling step `step`'s batch; `args` must be the caller's copies (the worker reads them later)."""
        self.future_step = step
        self.future = self.pool.submit(self.sample, self.sampler, step, *args)

    def result(self, step: int, *args):
        """Step `step`'s batch: the one in flight, or (first step of a run) one sampled now."""
        if self.future is None:
            self.submit(step, *args)
        assert self.future_step == step, f"batch in flight is for step {self.future_step}, not {step}"
        future, self.future = self.future, None
        return future.result()

    def close(self) -> None:
        """Wait for a batch still in flight (its result is discarded) and stop the worker."""
        self.future = None
        self.pool.shutdown(wait=True)
