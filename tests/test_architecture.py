"""The package's layers: every import (function-local ones too) points down, and none closes a
circle. Read with ``ast`` from the source, so a lazy import inside a function counts as well."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

PACKAGE = Path(__file__).resolve().parent.parent / "emessi_pipeline"
NAME = PACKAGE.name

# Higher imports lower, never the reverse. runs and evaluation share a rank but not each other.
# serve (the browser workbench) is a view like cli, over dataset; cli starts it.
LAYERS = {"config": 0, "version": 0, "stages": 1, "dataset": 2, "runs": 3, "evaluation": 3, "serve": 4,
          "cli": 5, "__init__": 6, "__main__": 6}  # fmt: skip


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        found[".".join([NAME, *parts])] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package modules *name* imports, anywhere in its body."""
    is_package = path.name == "__init__.py"
    package = name.split(".") if is_package else name.split(".")[:-1]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                targets.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {t for t in targets if t in known and t != name}


def graph() -> nx.DiGraph:
    known = modules()
    g = nx.DiGraph()
    g.add_nodes_from(known)
    for name, path in known.items():
        g.add_edges_from((name, target) for target in imports(name, path, known))
    return g


def layer(module: str) -> tuple[int, str]:
    parts = module.split(".")[1:] or ["__init__"]
    return LAYERS[parts[0]], parts[0]


def test_every_module_is_in_a_layer():
    assert all(layer(m) for m in modules())


def test_no_import_circle():
    cycles = [sorted(c) for c in nx.strongly_connected_components(graph()) if len(c) > 1]
    assert not cycles, f"import circles: {cycles}"


def test_layers_import_downward_only():
    upward = []
    for source, target in graph().edges:
        (rank_s, group_s), (rank_t, group_t) = layer(source), layer(target)
        if rank_t > rank_s or (rank_t == rank_s and group_t != group_s):
            upward.append(f"{source} -> {target}")
    assert not upward, "imports against the layers:\n" + "\n".join(sorted(upward))


def test_no_module_imports_another_modules_private_names():
    known = modules()
    private = []
    for name, path in known.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith(NAME)):
                private += [f"{name}: {alias.name}" for alias in node.names
                            if alias.name.startswith("_") and not alias.name.startswith("__")]  # fmt: skip
    assert not private, "private names imported across modules:\n" + "\n".join(private)


def test_the_checker_sees_a_circle_and_an_upward_import():
    g = nx.DiGraph([("emessi_pipeline.stages.a", "emessi_pipeline.dataset.b"),
                    ("emessi_pipeline.dataset.b", "emessi_pipeline.stages.a")])  # fmt: skip
    assert any(len(c) > 1 for c in nx.strongly_connected_components(g))
    assert layer("emessi_pipeline.stages.a")[0] < layer("emessi_pipeline.dataset.b")[0]
    here = modules()
    assert "emessi_pipeline.runs.ingest" in imports("emessi_pipeline", PACKAGE / "__init__.py", here)
    local = imports("emessi_pipeline.cli.ingest", PACKAGE / "cli" / "ingest.py", here)
    assert "emessi_pipeline.runs.clean" in local  # imported inside a function
