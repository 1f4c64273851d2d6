"""Rollout and verifier workers as Ray actors, and the pools that spread work over them.

    with ray_session(cluster):
        pool = RolloutPool(ModelConfig(path=...), cluster)       # a `Sampler`: drop-in for TorchEngine
        groups = pool.generate(prompts, 8, params)               # problem order, same samples as 1 process
        ...  # a training step
        pool.push_weights(policy)                                # version += 1, through the object store
                                                                 # (a LoRA policy: merged weights)
        verifier = VerifierPool(task, cluster); verifier.score(problems, texts)

Same results as one process. A pool splits a call's prompts into contiguous shards, one per
worker, and tells each worker where its shard starts (`prompt_offset`): the engine's random
stream is keyed by the prompt's index in the whole list, so the samples do not depend on how
many workers there are. A seedless call draws its seed here, from torch's global RNG, exactly
as `TorchEngine.generate` would, so `torch.manual_seed` controls a distributed run too.

Weight sync. `push_weights` puts the policy's state dict into Ray's object store once (numpy
arrays, zero-copy for workers on the same node) and every worker loads it. Each call also
carries the current version and the reference to its weights, so a worker that was restarted
after a crash (it comes back with the checkpoint's weights) catches up before it samples.
Every sample records the version that drew it in `meta["policy_version"]`. On GPU the same
call is a host copy; NCCL broadcast into vLLM is not implemented (docs/scaling.md).

Faults. Actors are created with `max_restarts` and `max_task_retries`: a killed worker is
restarted by Ray and its in-flight call runs again on the new process (deterministic sampling
makes the redo identical). A call that does not answer within `timeout_s`, or a worker that
dies more often than `max_restarts`, fails the run with one message naming the worker and the
phase, instead of hanging.

Ray is used as is (actors, object store, restarts); nothing here re-implements RPC or pooling.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from reasonloop.config import ConfigError
from reasonloop.distributed.cluster import ClusterConfig, import_ray
from reasonloop.models.policy import ModelConfig
from reasonloop.rollout.factory import SamplerConfig
from reasonloop.rollout.sampler import SamplingParams
from reasonloop.types import Problem, Sample


def shard_bounds(n: int, shards: int) -> list[tuple[int, int]]:
    """Contiguous [start, end) ranges covering range(n), sizes differing by at most one.

    >>> shard_bounds(5, 2)
    [(0, 3), (3, 5)]
    >>> shard_bounds(1, 3)
    [(0, 1), (1, 1), (1, 1)]
    """
    base, extra = divmod(n, shards)
    bounds, start = [], 0
    for k in range(shards):
        end = start + base + (k < extra)
        bounds.append((start, end))
        start = end
    return bounds


def pack_state(state: dict[str, Any]) -> dict[str, tuple[Any, str]]:
    """A torch state dict as {name: (numpy array, torch dtype name)}: the object store's zero-copy form.

    bfloat16 has no numpy dtype, so it travels as its int16 bit pattern.
    """
    import torch

    out = {}
    for name, t in state.items():
        t = t.detach().to("cpu").contiguous()
        dtype = str(t.dtype).removeprefix("torch.")
        out[name] = ((t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy(), dtype)
    return out


def unpack_state(packed: dict[str, tuple[Any, str]]) -> dict[str, Any]:
    import torch

    out = {}
    with warnings.catch_warnings():  # object-store arrays are read-only; they are only copied from
        warnings.simplefilter("ignore", UserWarning)
        for name, (array, dtype) in packed.items():
            t = torch.from_numpy(array)
            out[name] = t.view(torch.bfloat16) if dtype == "bfloat16" else t
    return out


class _Worker:
    def pid(self) -> int:
        """The worker's process id (fault tests kill it)."""
        import os

        return os.getpid()


class RolloutWorker(_Worker):
    """One sampler in its own process; made a Ray actor by `RolloutPool`."""

    def __init__(self, model: ModelConfig, sampler: SamplerConfig | None, threads: int):
        import torch

        from reasonloop.rollout.factory import make_sampler

        torch.set_num_threads(threads)
        self.engine = make_sampler(sampler or SamplerConfig(), model)  # TorchEngine or VLLMEngine
        self.version = 0
        self.loaded: str | None = None  # object id of the weights loaded last; None: the model directory's

    def load(self, version: int, box: list | None) -> int:
        """Take weights `version` from the object store (`box` = [ref]); a no-op when already there.

        Weights are told apart by their object (not only the number), so a pool reused by a second run,
        which publishes its own version 1, is never served the first run's."""
        if box is None:
            if version != 0 or self.loaded is not None:
                raise RuntimeError(f"asked for policy version {version} without its weights "
                                   f"(worker holds {self.version})")
            return self.version
        if box[0].hex() != self.loaded:
            import ray
            import torch

            state = unpack_state(ray.get(box[0]))
            if hasattr(self.engine, "load_weights"):  # vLLM: its own weight-loading API
                self.engine.load_weights(state)
            else:
                with torch.no_grad():
                    self.engine.model.load_state_dict(state, strict=True)
            self.loaded = box[0].hex()
        self.version = version
        return self.version

    def generate(self, prompts, samples_per_prompt, params, prefixes, offset, version, box) -> list[list[Sample]]:
        self.load(version, box)
        groups = self.engine.generate(prompts, samples_per_prompt, params, prefixes, prompt_offset=offset)
        for group in groups:
            for s in group:
                s.meta["policy_version"] = self.version
        return groups


class VerifierWorker(_Worker):
    """A task's verifier in its own process (slow or crashy checkers stay off the trainer)."""

    def __init__(self, task):
        self.task = task

    def score(self, problems: list[Problem], texts: list[str]) -> list[float]:
        return [float(self.task.verify(p, t)) for p, t in zip(problems, texts)]


class _Pool:
    """Actors of one class plus the call discipline: timeouts and restarts that fail loudly."""

    role = "worker"

    def __init__(self, cls, args: tuple, cluster: ClusterConfig, count: int, gpus: float = 0.0):
        if count < 1:
            raise ValueError(f"a {self.role} pool needs at least one worker, got {count}")
        self.ray = import_ray()
        self.cluster = cluster
        actor = self.ray.remote(cls).options(
            num_cpus=cluster.cpus_per_worker, num_gpus=gpus,
            max_restarts=cluster.max_restarts, max_task_retries=cluster.max_restarts)
        self.workers = [actor.remote(*args) for _ in range(count)]

    def gather(self, refs: list, phase: str) -> list:
        """ray.get with the cluster's timeout; a stuck or dead worker becomes one clear error."""
        ray = self.ray
        try:
            return ray.get(refs, timeout=self.cluster.timeout_s)
        except ray.exceptions.GetTimeoutError:
            raise TimeoutError(f"{self.role}s did not finish {phase} within cluster.timeout_s="
                               f"{self.cluster.timeout_s:g} s; a worker is stuck or the cluster is overloaded") from None
        except ray.exceptions.RayActorError as e:
            raise RuntimeError(f"a {self.role} died during {phase} more than cluster.max_restarts="
                               f"{self.cluster.max_restarts} times; last cause: {str(e).splitlines()[0]}") from None

    def pids(self) -> list[int]:
        return self.gather([w.pid.remote() for w in self.workers], "pid")

    def close(self) -> None:
        for w in self.workers:
            self.ray.kill(w, no_restart=True)
        self.workers = []


class RolloutPool(_Pool):
    """`Sampler` over `cluster.workers` rollout workers; see the module docstring."""

    role = "rollout worker"

    def __init__(self, model: ModelConfig, cluster: ClusterConfig, sampler: SamplerConfig | None = None,
                 count: int | None = None):
        if sampler is not None and sampler.kind == "openai":
            raise ConfigError("cluster.workers > 0 with sampler.kind=openai: the server already serves requests in "
                              "parallel (sampler.max_concurrency); use cluster.workers=0")
        super().__init__(RolloutWorker, (model, sampler, cluster.threads_per_worker), cluster,
                         count or cluster.workers, gpus=cluster.gpus_per_worker)
        self.model_id = model.path
        self.version = 0
        self._box: list | None = None
        self._boxes: dict[int, list | None] = {0: None}  # published versions still in use (async rollouts)

    def submit(self, prompts: list[str], samples_per_prompt: int = 1, params: SamplingParams | None = None,
               prefixes: list[str] | None = None, version: int | None = None) -> PendingGroups:
        """Start a `generate` without waiting for it (async rollouts); `.result()` collects it.

        `version` samples with an older published version (`publish`) instead of the current one."""
        import torch

        version = self.version if version is None else version
        if version not in self._boxes:
            raise KeyError(f"policy version {version} was never published or was already released")
        box = self._boxes[version]

        params = params or SamplingParams()
        if params.seed is None:  # drawn like TorchEngine.generate does, so one seed covers every shard
            params = SamplingParams(**{**vars(params), "seed": int(torch.randint(0, 2**62, ()).item())})
        if prefixes is not None and len(prefixes) != len(prompts):
            raise ValueError(f"got {len(prefixes)} prefixes for {len(prompts)} prompts")
        refs = []
        for w, (a, b) in zip(self.workers, shard_bounds(len(prompts), len(self.workers))):
            if b > a:
                refs.append(w.generate.remote(prompts[a:b], samples_per_prompt, params,
                                              None if prefixes is None else prefixes[a:b], a, version, box))
        return PendingGroups(self, refs)

    def generate(self, prompts: list[str], samples_per_prompt: int = 1, params: SamplingParams | None = None,
                 prefixes: list[str] | None = None) -> list[list[Sample]]:
        return self.submit(prompts, samples_per_prompt, params, prefixes).result()

    def push_weights(self, model_or_state, version: int | None = None, wait: bool = True) -> int:
        """Publish new policy weights (a module or a state dict) as `version` (default: current + 1)."""
        self.publish(model_or_state, version)
        refs = [w.load.remote(self.version, self._box) for w in self.workers]
        if wait:
            self.gather(refs, f"weight sync to version {self.version}")
        return self.version

    def load_weights(self, weights) -> None:
        """`rollout.factory.sync_weights`'s hook: the workers take `weights` (a state dict) as the next version."""
        self.push_weights(weights)

    def publish(self, model_or_state, version: int | None = None) -> int:
        """Put weights in the object store as `version` (default: current + 1) and make it current; workers
        load it when a call asks for it. Older versions stay available to `submit` until `release`d.

        A peft (LoRA) policy is sent merged under the base model's names (`rollout.factory.plain_weights`):
        the workers hold the plain base model, and one full copy is what vLLM's weight loading takes too."""
        from reasonloop.rollout.factory import plain_weights

        state = plain_weights(model_or_state) if hasattr(model_or_state, "state_dict") else model_or_state
        self.version = self.version + 1 if version is None else version
        self._box = [self.ray.put(pack_state(state))]
        self._boxes[self.version] = self._box
        return self.version

    def release(self, below: int) -> None:
        """Forget published versions older than `below` (their object-store copies are freed)."""
        for v in [v for v in self._boxes if v < below and v != self.version]:
            del self._boxes[v]

    def at(self, version: int) -> VersionedSampler:
        """A `Sampler` view that always samples with published `version` (async rollouts)."""
        return VersionedSampler(self, version)


class VersionedSampler:
    """`RolloutPool` pinned to one policy version."""

    def __init__(self, pool: RolloutPool, version: int):
        self.pool, self.version, self.model_id = pool, version, pool.model_id

    def generate(self, prompts, samples_per_prompt=1, params=None, prefixes=None) -> list[list[Sample]]:
        return self.pool.submit(prompts, samples_per_prompt, params, prefixes, version=self.version).result()


class PendingGroups:
    """Rollouts in flight on the workers; `result()` returns them in prompt order."""

    def __init__(self, pool: RolloutPool, refs: list):
        self.pool, self.refs = pool, refs

    def result(self) -> list[list[Sample]]:
        return [group for shard in self.pool.gather(self.refs, "sampling") for group in shard]


class VerifierPool(_Pool):
    """Verification spread over `count` verifier workers; scores come back in input order."""

    role = "verifier worker"

    def __init__(self, task, cluster: ClusterConfig, count: int | None = None):
        super().__init__(VerifierWorker, (task,), cluster, count or max(1, cluster.workers))

    def score(self, problems: Sequence[Problem], texts: Sequence[str]) -> list[float]:
        if len(problems) != len(texts):
            raise ValueError(f"got {len(texts)} texts for {len(problems)} problems")
        refs = [w.score.remote(list(problems[a:b]), list(texts[a:b]))
                for w, (a, b) in zip(self.workers, shard_bounds(len(texts), len(self.workers))) if b > a]
        return [x for shard in self.gather(refs, "verification") for x in shard]
