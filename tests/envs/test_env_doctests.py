"""The envs package's docstring examples run, and importing it pulls in no torch/transformers."""

import doctest
import importlib
import subprocess
import sys

import pytest

MODULES = ["reasonloop.envs.tools", "reasonloop.envs.tool_env", "reasonloop.envs.code_repair"]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    assert doctest.testmod(importlib.import_module(name)).failed == 0


def test_importing_envs_loads_no_torch_or_transformers():
    code = "import sys, reasonloop.envs; print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
