"""Every reward and verifier docstring example runs (the house style: rewards carry doctests)."""

import doctest
import importlib

import pytest

MODULES = ["reasonloop.verify.extract", "reasonloop.verify.math", "reasonloop.verify.rewards",
           "reasonloop.verify.code", "reasonloop.tasks.countdown", "reasonloop.tasks.linear",
           "reasonloop.tasks.multiplication", "reasonloop.tasks.ordering", "reasonloop.tasks.gym",
           "reasonloop.tasks.arithmetic", "reasonloop.tasks.datasets", "reasonloop.tasks.cursor"]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module)
    assert result.failed == 0


def test_no_torch_in_tasks_or_verify():
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[2] / "reasonloop"
    for path in list((root / "tasks").rglob("*.py")) + list((root / "verify").rglob("*.py")):
        text = path.read_text()
        assert "import torch" not in text and "from torch" not in text, path
