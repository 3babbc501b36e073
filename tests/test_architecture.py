"""The package's shape: no import cycles, small modules, Feast-free modules that must stay so."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from course_lib.config import REPO_ROOT

PACKAGES = ("course_lib", "feature_repo")
MAX_LINES = 400


def module_name(path: Path) -> str:
    """`course_lib/checks/common.py` -> `course_lib.checks.common`; a package's `__init__` is the package."""
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    """Every module of the course's packages, by dotted name."""
    return {module_name(path): path for package in PACKAGES for path in sorted((REPO_ROOT / package).rglob("*.py"))}


def imports(path: Path, known: set[str]) -> set[str]:
    """The course modules a file imports anywhere (module level, functions, TYPE_CHECKING blocks)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        found |= {name for name in names if name in known}
    return found


def import_graph() -> dict[str, set[str]]:
    """module -> the course modules it imports (a package's own submodules excluded from its `__init__`)."""
    known = modules()
    return {name: {target for target in imports(path, set(known))
                   if target != name and not target.startswith(f"{name}.")} for name, path in known.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_function_level_imports() -> None:
    graph = import_graph()
    assert "course_lib.config" in graph["course_lib.cli"]  # imported at module level
    assert "course_lib.api" in graph["course_lib.cli"]  # imported inside cmd_serve only


def test_no_import_cycles() -> None:
    assert cycles(import_graph()) == []


def test_no_module_is_longer_than_the_limit() -> None:
    long = {name: n for name, path in modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}, f"split these modules by concern (at most {MAX_LINES} lines): {long}"


@pytest.mark.parametrize("module", ["course_lib.doctor", "course_lib.health", "course_lib.config", "course_lib.cli",
                                    "feature_repo.names"])
def test_modules_that_run_before_feast_is_known_to_work_do_not_import_it(module: str) -> None:
    """`course doctor` reports a broken install instead of failing on an import; the CLI starts fast."""
    heavy = ("feast", "redis", "psycopg", "pandas")
    probe = f"import sys, {module}; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", f"{module} imports {out.stdout.strip()} at import time"


def test_the_architecture_map_names_every_module() -> None:
    text = (REPO_ROOT / "docs" / "architecture.md").read_text()
    files = {path.relative_to(REPO_ROOT).as_posix() for path in modules().values()}
    subpackages = {f.rsplit("/", 1)[0] + "/" for f in files if f.count("/") > 1}  # e.g. course_lib/checks/
    unnamed = sorted(f for f in files if f not in text and not f.endswith(("__init__.py", "__main__.py"))
                     and not any(f.startswith(sub) and sub in text for sub in subpackages))
    assert unnamed == [], f"add these modules to docs/architecture.md: {unnamed}"
