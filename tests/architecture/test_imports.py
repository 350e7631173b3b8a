"""The layering the Lambda zip depends on, checked on the source: no import cycle under functions/, and nothing
there imports the CLI, the build-time packages, torch or the local stack."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.paths import ROOT

PACKAGE_ROOT = ROOT / "functions"
FORBIDDEN = ("categorizer_cli", "model_build", "infra", "tests", "torch", "transformers", "sentence_transformers",
             "sklearn", "moto")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module imported anywhere in the file (function-local imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE_ROOT.rglob("*.py")}
    return {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}


def test_nothing_under_functions_imports_build_time_or_local_only_code():
    offenders = {(_module_name(path), imported) for path in PACKAGE_ROOT.rglob("*.py") for imported in _imports(path)
                 if imported.split(".")[0] in FORBIDDEN}
    assert offenders == set()


def test_no_import_cycle_under_functions():
    graph = _graph()
    # A package's __init__ re-exporting its own modules is not a cycle between modules.
    graph = {name: {m for m in deps if not name.startswith(m + ".") and not m.startswith(name + ".")}
             for name, deps in graph.items()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []
