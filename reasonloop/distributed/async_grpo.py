"""Asynchronous GRPO on Ray rollout workers: `max_staleness=k`, rollouts for step t+k drawn while step t trains.

    reasonloop grpo cluster.workers=2 max_staleness=1 old_logprobs=recompute offpolicy.mode=token_tis

`RayRollouts` is a GRPO batch source (`algorithms.grpo_batches.BatchSource`). A producer thread
makes batches in step order with `grpo_batches.sample_batch` (the same draw, sampling, scoring,
repair and filters as the in-process sources), sampling on a `RolloutPool`. Batch s is sampled by
the policy after s-1-k updates (clamped to the run's first weights), with the curriculum bandit as
it was then; so the producer runs at most k batches ahead of the trainer, which is the staleness
bound (admission control, as in SkyRL's fully-async trainer and AReaL). Each step publishes the
weights it starts from to the object store as version `step` (= updates + 1; version 0 is the
workers' own checkpoint weights) and every sample carries the version that drew it, so the
trainer logs how stale each one was (`algorithms.offpolicy`).

k = 0 is the synchronous algorithm exactly: batch t waits for the weights after step t-1, the
step's random stream is handed over to the update afterwards as the on-policy source does, and
the workers draw what one process draws (tests/distributed/test_async_grpo.py compares the
metrics row by row). With k >= 1 the samples' log-probs are the stale behaviour policy mu: run
with `old_logprobs=recompute` (pi_old from the trainer) and the `offpolicy` correction.

Resume is exact: a checkpoint after step t holds the (at most k) batches already made for steps
t+1..t+k; they depend only on weights older than the checkpoint, so they are finished first and
saved, and the resumed producer continues after them.
"""

from __future__ import annotations

import copy
import random
import threading
import time

from reasonloop.algorithms.grpo_batches import BatchRecipe, Rollouts, sample_batch
from reasonloop.distributed.workers import RolloutPool


class RayRollouts:
    """Batches made ahead on Ray rollout workers, at most `max_staleness` steps ahead (module docstring)."""

    def __init__(self, recipe: BatchRecipe, pool: RolloutPool, max_staleness: int, last_step: int,
                 timeout_s: float):
        if max_staleness < 0:
            raise ValueError(f"max_staleness must be >= 0, got {max_staleness}")
        self.recipe, self.pool, self.k, self.last_step, self.timeout_s = recipe, pool, max_staleness, last_step, timeout_s
        self.cond = threading.Condition()
        self.snapshots: dict[int, object] = {}  # updates done -> the bandit as it was then
        self.first_snapshot: int | None = None
        self.ready: dict[int, tuple[Rollouts, object]] = {}  # step -> (batch, its random stream's end state)
        self.next_step: int | None = None  # the step the producer makes next
        self.cursors: list | None = None
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.closing = False

    # --- the producer thread

    def _needed(self, step: int) -> int:
        """The snapshot (updates done) batch `step` is sampled by."""
        return max(step - 1 - self.k, self.first_snapshot)

    def _produce(self) -> None:
        try:
            while True:
                with self.cond:
                    step = self.next_step
                    if step > self.last_step:
                        return
                    while not self.closing and self._needed(step) not in self.snapshots:
                        self.cond.wait()
                    if self.closing:
                        return
                    updates = self._needed(step)
                    bandit, cursors = copy.deepcopy(self.snapshots[updates]), copy.deepcopy(self.cursors)
                rng = random.Random(f"{self.recipe.seed}/{step}")  # the step's stream, as main() seeds it
                batch = sample_batch(self.recipe, self.pool.at(updates + 1), bandit, cursors, step, rng)
                with self.cond:
                    self.ready[step] = (batch, rng.getstate())
                    self.cursors = batch.cursors
                    self.next_step = step + 1
                    self.cond.notify_all()
        except BaseException as e:  # noqa: BLE001 - handed to the trainer thread, which raises it
            with self.cond:
                self.error = e
                self.cond.notify_all()

    def _wait_for(self, step: int) -> tuple[Rollouts, object]:
        deadline = time.monotonic() + self.timeout_s
        with self.cond:
            while step not in self.ready:
                if self.error is not None:
                    raise RuntimeError(f"async rollouts for step {step} failed: {self.error}") from self.error
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no batch for step {step} within cluster.timeout_s={self.timeout_s:g} s")
                self.cond.wait(left)
            return self.ready.pop(step)

    # --- BatchSource

    def next(self, step, bandit, cursors, rng, model):
        t_wait = time.perf_counter()
        # the weights and bandit this step starts from: snapshot step-1, published as version `step`
        self.pool.publish(model, version=step)
        with self.cond:
            if self.first_snapshot is None:
                self.first_snapshot = step - 1
            self.snapshots[step - 1] = copy.deepcopy(bandit)
            if self.thread is None:
                if self.next_step is None:  # nothing carried over from a checkpoint
                    self.next_step, self.cursors = step, copy.deepcopy(cursors)
                self.thread = threading.Thread(target=self._produce, name="async-rollouts", daemon=True)
                self.thread.start()
            self.cond.notify_all()
        batch, rng_state = self._wait_for(step)
        rng.setstate(rng_state)  # the update continues the step's stream where sampling left it
        with self.cond:  # snapshots and weights no later batch can ask for
            for old in [v for v in self.snapshots if v < self._needed(step + 1)]:
                del self.snapshots[old]
        self.pool.release(below=self._needed(step + 1) + 1)
        return batch, time.perf_counter() - t_wait

    def in_flight(self, step, bandit, cursors):
        """The batches for steps step+1 .. step+k (they need only older weights): finished and returned."""
        pending = []
        for s in range(step + 1, min(step + self.k, self.last_step) + 1):
            batch, rng_state = self._wait_for(s)
            pending.append((s, batch, rng_state))
        with self.cond:
            for s, batch, rng_state in pending:
                self.ready[s] = (batch, rng_state)
        return pending or None

    def resume(self, pending) -> None:
        for s, batch, rng_state in pending or []:
            self.ready[s] = (batch, rng_state)
            self.next_step, self.cursors = s + 1, copy.deepcopy(batch.cursors)

    def close(self) -> None:
        with self.cond:
            self.closing = True
            self.cond.notify_all()
        if self.thread is not None:
            self.thread.join()
