"""Importing the envs package pulls in no torch/transformers (its doctests run in tests/test_doctests.py)."""

import subprocess
import sys


def test_importing_envs_loads_no_torch_or_transformers():
    code = "import sys, reasonloop.envs; print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
