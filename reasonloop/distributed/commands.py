"""Sampling commands (sample, eval, search, label, selftrain) and GRPO's rollouts on Ray rollout workers.

The CLI gives these commands a `cluster` section (`with_cluster`): `cluster.workers=0` (the
default) runs the command exactly as before, in one process; `cluster.workers=N` runs it with
a `RolloutPool` of N workers in place of the in-process engine. Problems are spread over the
workers and come back in problem order, and each worker's random stream is keyed by the global
problem index, so the output files equal the single-process ones (tests/distributed).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from dataclasses import field
from typing import Any

from reasonloop.distributed.cluster import ClusterConfig, ray_session
from reasonloop.models.policy import ModelConfig
from reasonloop.rollout.factory import SamplerConfig, plain_weights


def with_cluster(config_cls: type) -> type:
    """`config_cls` plus a `cluster: ClusterConfig` field (same name, same keys otherwise)."""
    if any(f.name == "cluster" for f in dataclasses.fields(config_cls)):
        return config_cls
    cls = dataclasses.make_dataclass(
        config_cls.__name__, [("cluster", ClusterConfig, field(default_factory=ClusterConfig))],
        bases=(config_cls,), namespace={"__doc__": config_cls.__doc__, "__module__": __name__})
    return cls


def run(main: Callable[..., Any], cfg: Any) -> Any:
    """`main(cfg)` in one process, or over `cfg.cluster.workers` workers: `main(cfg, sampler_factory=...)` for
    the sampling commands, `main(cfg, make_source=...)` for grpo (`async_grpo.RayRollouts`)."""
    cluster: ClusterConfig = cfg.cluster
    if not cluster.enabled:
        return main(cfg)
    from reasonloop.distributed.workers import RolloutPool

    if "make_source" in inspect.signature(main).parameters:
        return run_grpo(main, cfg)
    with ray_session(cluster):
        pools: list[RolloutPool] = []

        def sampler_factory(sampler: SamplerConfig, model: ModelConfig, policy=None, tokenizer=None) -> RolloutPool:
            # one model at a time (eval grids go model by model): free the last pool's CPUs first
            while pools:
                pools.pop().close()
            pools.append(RolloutPool(model, cluster, sampler))
            if policy is not None:  # a loop that trains what it samples (selftrain): its weights, now
                pools[-1].load_weights(plain_weights(policy))
            return pools[-1]

        try:
            return main(cfg, sampler_factory=sampler_factory)
        finally:
            for pool in pools:
                pool.close()


def run_grpo(main: Callable[..., Any], cfg: Any) -> Any:
    """GRPO with its batches sampled on Ray rollout workers, `cfg.max_staleness` steps ahead at most."""
    from reasonloop.distributed.async_grpo import RayRollouts
    from reasonloop.distributed.workers import RolloutPool

    cluster: ClusterConfig = cfg.cluster
    with ray_session(cluster):  # a LoRA policy reaches the workers merged (`RolloutPool.publish`)
        pool = RolloutPool(cfg.model, cluster, getattr(cfg, "sampler", None))
        try:
            return main(cfg, make_source=lambda recipe: RayRollouts(recipe, pool, cfg.max_staleness, cfg.steps,
                                                                    cluster.timeout_s))
        finally:
            pool.close()
