"""Shared fixtures: tiny models built locally (never downloaded), quiet progress bars."""

import os

import pytest

os.environ.setdefault("REASONLOOP_QUIET", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tiny-model tests gain nothing from a second intra-op thread, and OpenMP threads spin-wait
# badly whenever the machine is oversubscribed (measured 10x slower steps under load).
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A ~70k-parameter char-level Llama: fast enough for every smoke test."""
    from reasonloop.models.tiny import TinyModelConfig, init_model
    from reasonloop.utils import quiet_hf

    quiet_hf()
    path = tmp_path_factory.mktemp("models") / "tiny"
    init_model(TinyModelConfig(path=str(path), hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2,
                               intermediate_size=128, max_position_embeddings=256))
    return path
