"""Every module's docstring examples run (the house style puts hand-computed numbers there).

The modules are found by walking the source tree, so a new module's examples run without anyone
adding it to a list. `verify/zygote.py` is left out: it is a standalone script that the sandbox
runs in a fresh interpreter, and importing it reads its command line.
"""

import doctest
import importlib
from pathlib import Path

import pytest

import reasonloop

ROOT = Path(reasonloop.__file__).parent
SKIP = {"reasonloop.__main__", "reasonloop.verify.zygote"}
MODULES = sorted(
    name for name in (
        "reasonloop." + ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for p in ROOT.rglob("*.py")
    ) if name not in SKIP
)


def test_the_walk_finds_the_packages_without_init_files():
    assert "reasonloop.algorithms.grpo" in MODULES and "reasonloop.verify.math" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
