"""One Ray session for all distributed tests (starting Ray costs seconds), sized like this 2-core machine."""

import os
from contextlib import ExitStack
from pathlib import Path

import pytest

FAKE_VLLM = str(Path(__file__).resolve().parent.parent / "fake_vllm")

pytest.importorskip("ray")


@pytest.fixture(scope="session")
def ray_cluster():
    """Ray with 2 CPUs for the test session; pools in tests reserve 0 CPUs each so several fit.

    The workers (only they) can import the fake `vllm` in tests/fake_vllm; a worker whose sampler.kind
    is torch never imports it. The driver's PYTHONPATH is put back at once, so subprocesses do not see it."""
    from reasonloop.distributed.cluster import ClusterConfig, ray_session

    session = ExitStack()
    with pytest.MonkeyPatch.context() as mp:  # ray_session hands PYTHONPATH to the workers at start
        mp.setenv("PYTHONPATH", os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), FAKE_VLLM])))
        ray = session.enter_context(ray_session(ClusterConfig(workers=2)))
    with session:
        yield ray


@pytest.fixture(scope="session")
def cluster():
    from reasonloop.distributed.cluster import ClusterConfig

    return ClusterConfig(workers=2, cpus_per_worker=0, timeout_s=120, max_restarts=2)


@pytest.fixture(scope="session")
def shared_pool(ray_cluster, cluster, tiny_model_dir):
    """Two rollout workers over the tiny model, shared by the tests (a worker's start-up costs seconds)."""
    from reasonloop.distributed.workers import RolloutPool
    from reasonloop.models.policy import ModelConfig, load_model

    model = ModelConfig(path=str(tiny_model_dir), device="cpu")
    pool = RolloutPool(model, cluster)
    pool.base_state = load_model(model)[0].state_dict()
    yield pool
    pool.close()


@pytest.fixture()
def pool(shared_pool):
    """The shared workers holding the model directory's weights (a test before may have published others)."""
    shared_pool.push_weights(shared_pool.base_state)
    return shared_pool
