"""Where a run's Ray workers live: `ClusterConfig` and the session that starts or joins Ray.

    with ray_session(ClusterConfig(workers=2)):      # embedded: a local Ray for this run only
        ...
    ray_session(ClusterConfig(address="10.0.0.1:6379", workers=16))   # joins `ray start --head`

An empty `address` starts one local Ray instance sized for the run (`workers x cpus_per_worker`
CPUs, no dashboard) and shuts it down afterwards; an address joins an existing cluster, which
outlives the run. A Ray already initialised in this process (a test fixture, a notebook) is
used as it is and left running. Ray is imported here only, inside functions, so `import
reasonloop.distributed` and the CLI stay fast and Ray stays optional (the `distributed` extra).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class ClusterConfig:
    workers: int = 0
    """rollout workers (Ray actors); 0 = single process, no Ray (the default, unchanged behaviour)"""
    address: str = ""
    """empty: start an embedded local Ray for the run; else join this cluster ("auto", "host:6379")"""
    cpus_per_worker: float = 1.0
    """Ray CPUs reserved per worker"""
    threads_per_worker: int = 1
    """torch intra-op threads in each worker"""
    gpus_per_worker: float = 0.0
    """Ray GPUs per worker (what each worker runs is the command's `sampler.kind`: torch or vllm)"""
    timeout_s: float = 600.0
    """a worker call that has not answered after this many seconds fails the run with a message"""
    max_restarts: int = 3
    """times a killed worker is restarted (its in-flight call is redone) before the run fails"""

    def __post_init__(self):
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")
        if self.cpus_per_worker < 0 or self.gpus_per_worker < 0 or self.threads_per_worker < 1:
            raise ValueError("cpus_per_worker and gpus_per_worker must be >= 0, threads_per_worker >= 1")
        if self.timeout_s <= 0 or self.max_restarts < 0:
            raise ValueError("timeout_s must be > 0 and max_restarts >= 0")

    @property
    def enabled(self) -> bool:
        return self.workers > 0


def import_ray():
    """Ray, or one clear line telling how to install it."""
    try:
        import ray
    except ImportError:
        raise SystemExit("cluster.workers > 0 needs Ray: pip install 'reasonloop[distributed]'") from None
    return ray


@contextmanager
def ray_session(cfg: ClusterConfig):
    """Ray initialised for the block: embedded (started and shut down here), joined, or already up."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    # workers import reasonloop from the driver's path (a worktree, an editable install)
    env = {"env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")])),
                        "TOKENIZERS_PARALLELISM": "false"}}
    if cfg.address:
        ray.init(address=cfg.address, runtime_env=env, log_to_driver=False)
    else:
        # Ray starts workers at nice 15; a run's rollout workers are its main compute, and niced they
        # starve beside any other busy process (measured: 2 workers no faster than 1 on a loaded machine)
        os.environ.setdefault("RAY_worker_niceness", "0")
        cpus = max(1, round(cfg.workers * cfg.cpus_per_worker))
        ray.init(num_cpus=cpus, num_gpus=int(cfg.workers * cfg.gpus_per_worker) or None, include_dashboard=False,
                 runtime_env=env, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()
