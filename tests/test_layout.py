"""The house plan holds: no import cycle in fer_core (module- and function-level imports alike), the
Streamlit helpers imported by the app alone, function-local imports only for optional heavy
dependencies (each with its reason), no oversized module, a docstring on every subpackage."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "fer_core"
#: Third-party packages a function may import locally (heavy, and needed by one path only).
LOCAL_IMPORTS_ALLOWED = {"opacus", "kymatio", "scipy", "ai_edge_litert"}  # ai_edge_litert: the runtime checks only
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    mods = {}
    for f in PACKAGE.rglob("*.py"):
        parts = list(f.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = f
    return mods


def _imports(f: Path, mods: dict[str, Path]) -> list[tuple[str, ast.AST]]:
    """(imported fer_core module, node) for every import in ``f``, at any depth."""
    out = []
    for node in ast.walk(ast.parse(f.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in mods else node.module
                     for a in node.names]
        else:
            continue
        for n in names:
            while n and n not in mods:
                n = n.rpartition(".")[0]
            if n:
                out.append((n, node))
    return out


def test_the_import_graph_has_no_cycle():
    mods = _modules()
    graph = {m: {t for t, _ in _imports(f, mods) if t != m} for m, f in mods.items()}
    state: dict[str, int] = {}  # 1: on the stack, 2: done

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in sorted(graph[m]):
            assert state.get(t) != 1, "import cycle: " + " -> ".join([*path, m, t])
            if t not in state:
                visit(t, [*path, m])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])


def test_only_the_app_imports_the_streamlit_helpers():
    mods = _modules()
    for m, f in mods.items():
        if m.startswith("fer_core.app"):
            continue
        bad = [t for t, _ in _imports(f, mods) if t.startswith("fer_core.app")]
        assert not bad, f"{f} imports {bad}: fer_core.app is for app.py and pages/ only"
        assert "import streamlit" not in f.read_text(), f"{f} imports streamlit"


def test_function_local_imports_are_heavy_optional_dependencies_with_a_reason():
    for f in PACKAGE.rglob("*.py"):
        lines = f.read_text().splitlines()
        tree = ast.parse(f.read_text())
        top = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in top:
                mod = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
                where = f"{f.relative_to(REPO)}:{node.lineno}"
                assert mod.split(".")[0] in LOCAL_IMPORTS_ALLOWED, f"{where}: import {mod} at module level"
                assert "#" in lines[node.end_lineno - 1], f"{where}: say why {mod} is imported here"


def test_no_module_is_oversized_and_every_subpackage_says_what_it_holds():
    for f in PACKAGE.rglob("*.py"):
        n = len(f.read_text().splitlines())
        assert n <= MAX_LINES, f"{f.relative_to(REPO)} has {n} lines (> {MAX_LINES}): split it by concept"
    for init in PACKAGE.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc) > 60, f"{init.relative_to(REPO)} needs a docstring saying what the package is for"
