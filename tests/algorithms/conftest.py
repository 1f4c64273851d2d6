"""Fixtures shared by the algorithm tests."""

import pytest


@pytest.fixture()
def every_sample_correct(monkeypatch):
    """selftrain's sampling marks every sample correct: an untrained tiny model rarely answers
    correctly, and the loops under test need kept data (empty completions get a placeholder text)."""
    import reasonloop.algorithms.selftrain as st

    real = st.sample_and_verify

    def wrapped(*a, **k):
        samples = real(*a, **k)
        for i, s in enumerate(samples):
            s.rewards["correct"] = 1.0
            s.text = s.text or f"empty {i}"
        return samples

    monkeypatch.setattr(st, "sample_and_verify", wrapped)
