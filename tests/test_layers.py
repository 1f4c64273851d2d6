"""The layers import one way: a module may import only its own package and the layers below it.

Every import counts, module-level, function-level and `TYPE_CHECKING` ones alike, because a
function-level import against the direction is the same coupling, only hidden. The order
is the one `docs/architecture.md` draws; this test is what keeps it true.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "reasonloop"

LAYERS: list[set[str]] = [
    {"types", "utils", "config"},
    {"store"},
    {"verify"},
    {"tasks"},
    {"envs"},
    {"models"},
    {"rollout"},
    {"search"},
    {"evaluate"},
    {"algorithms"},
    {"distributed"},
    {"cli", "quickstart", "view", "__main__"},
]
"""Low to high. Each name is a top-level module or package of `reasonloop`."""

RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}

TORCH_FREE = {"types", "config", "verify", "tasks", "envs", "cli"}
"""Layers that must not import torch or transformers at all (fast start-up, pure Python)."""


def unit_of(module: str) -> str | None:
    """'reasonloop.tasks.base' -> 'tasks'; None for modules outside the package."""
    parts = module.split(".")
    return parts[1] if parts[0] == "reasonloop" and len(parts) > 1 else None


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file, at any depth."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against the file's package
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.append((node.lineno, target))
            # `from reasonloop import tasks` imports the subpackage
            if target == "reasonloop":
                out += [(node.lineno, f"reasonloop.{alias.name}") for alias in node.names]
    return out


def all_files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_unit_has_a_layer():
    units = {unit_of(module_name(p)) for p in all_files()} - {None}
    missing = sorted(u for u in units if u not in RANK)
    assert not missing, f"give these a layer in tests/test_layers.py and docs/architecture.md: {missing}"


@pytest.mark.parametrize("path", all_files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_flow_down(path: Path):
    unit = unit_of(module_name(path))
    if unit is None:
        return
    bad = []
    for line, target in imported_modules(path):
        other = unit_of(target)
        if other is None or other == unit:
            top = target.split(".")[0]
            if unit in TORCH_FREE and top in ("torch", "transformers"):
                bad.append(f"line {line}: {target} (layer {unit!r} is torch-free)")
            continue
        if other not in RANK:
            bad.append(f"line {line}: {target} (unknown unit {other!r})")
        elif RANK[other] > RANK[unit]:
            bad.append(f"line {line}: {target} (layer {other!r} is above {unit!r})")
    assert not bad, f"{path.relative_to(PACKAGE)} imports against the layering:\n" + "\n".join(bad)


def test_no_import_cycles_between_modules():
    """Within a layer too: no module imports (at any depth) a module that imports it back."""
    graph: dict[str, set[str]] = {}
    names = {module_name(p) for p in all_files()}
    for path in all_files():
        edges = set()
        for _, target in imported_modules(path):
            # `from reasonloop.x import y` where y is a module counts as importing that module
            while target and target not in names:
                target = target.rpartition(".")[0]
            if target and target != module_name(path):
                edges.add(target)
        graph[module_name(path)] = edges
    # a package's __init__ re-exporting its modules is not a cycle with them
    def is_reexport(a: str, b: str) -> bool:
        return b.startswith(a + ".")

    cycles = []
    for a, edges in graph.items():
        for b in edges:
            if not is_reexport(a, b) and not is_reexport(b, a) and reaches(graph, b, a, is_reexport):
                cycles.append(f"{a} -> {b} -> ... -> {a}")
    assert not cycles, "import cycles:\n" + "\n".join(sorted(set(cycles)))


def reaches(graph: dict[str, set[str]], start: str, goal: str, skip) -> bool:
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        if node == goal:
            return True
        if node in seen:
            continue
        seen.add(node)
        todo += [n for n in graph.get(node, ()) if not skip(node, n) and not skip(n, node)]
    return False


def test_the_checker_finds_hidden_imports_against_the_direction(tmp_path):
    """The rule is only as good as the parser: imports inside functions, under TYPE_CHECKING and
    relative ones are all found and judged."""
    root = tmp_path / "reasonloop"
    (root / "tasks").mkdir(parents=True)
    probe = root / "tasks" / "probe.py"
    probe.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from reasonloop.models import policy\n"
        "def f():\n    from ..algorithms import grpo\n    import torch\n    return grpo\n"
        "from reasonloop.verify import extract\n"
    )
    globals()["PACKAGE"] = root
    try:
        found = imported_modules(probe)
        assert (3, "reasonloop.models") in found and (5, "reasonloop.algorithms") in found
        with pytest.raises(AssertionError, match="algorithms.*above 'tasks'"):
            test_imports_flow_down(probe)
        with pytest.raises(AssertionError, match="torch-free"):
            test_imports_flow_down(probe)
    finally:
        globals()["PACKAGE"] = Path(__file__).resolve().parents[1] / "reasonloop"
