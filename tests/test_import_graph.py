"""Imports run one way: no circle among ``lro_grpc``'s modules, ``TYPE_CHECKING`` imports included.

The graph is read from the source with :mod:`ast` (nothing is imported): every
``import``/``from ... import`` of an ``lro_grpc`` module anywhere in a file (at the top,
under ``if TYPE_CHECKING:``, or inside a function) is an edge. ``from package import
name`` is an edge to the submodule when ``name`` is one, else to the package. A
package's ``__init__`` that Python runs before its submodules is not an edge: only
what a file names.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def modules_of(root: Path, package: str = "lro_grpc") -> dict[str, tuple[Path, bool]]:
    """Every module of ``package`` under ``root``: dotted name -> (file, is a package)."""
    found: dict[str, tuple[Path, bool]] = {}
    for path in (root / package).rglob("*.py"):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if "__pycache__" in parts:
            continue
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        found[".".join(parts)] = (path, is_package)
    return found


def _imported(node: ast.AST, here: list[str], modules: Mapping[str, object]) -> Iterable[str]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            name = alias.name
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name:
                yield name
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            base = here[: len(here) - (node.level - 1)]
            source = ".".join([*base, node.module] if node.module else base)
        else:
            source = node.module or ""
        for alias in node.names:
            submodule = f"{source}.{alias.name}"
            if submodule in modules:
                yield submodule
            elif source in modules:
                yield source


def import_graph(root: Path, package: str = "lro_grpc") -> dict[str, set[str]]:
    """Module -> the modules of ``package`` it imports, anywhere in its source."""
    modules = modules_of(root, package)
    graph: dict[str, set[str]] = {}
    for name, (path, is_package) in modules.items():
        here = name.split(".") if is_package else name.split(".")[:-1]
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            edges.update(_imported(node, here, modules))
        edges.discard(name)
        graph[name] = edges
    return graph


def circles(graph: Mapping[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, list[str]]] = [(start, sorted(graph[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, pending = work[-1]
            if pending:
                target = pending.pop()
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, sorted(graph.get(target, ()))))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: set[str] = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)
    return found


def test_no_import_circle_among_lro_grpc_modules() -> None:
    graph = import_graph(ROOT)
    assert "lro_grpc.errors" in graph and "lro_grpc._batch._waiter" in graph
    found = [sorted(circle) for circle in circles(graph)]
    assert not found, f"import circles: {found}"


def test_errors_imports_nothing_from_the_project() -> None:
    assert import_graph(ROOT)["lro_grpc.errors"] == set()


def _write(root: Path, files: Mapping[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


@pytest.mark.parametrize(
    "back_edge",
    [
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import A\n",
        "def late():\n    from pkg import a\n",
        "from .. import a\n",
        "from ..a import A\n",
        "import pkg.a\n",
    ],
    ids=["type-checking", "in-a-function", "relative-package", "relative-module", "plain-import"],
)
def test_a_circle_of_any_kind_is_found(tmp_path: Path, back_edge: str) -> None:
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from pkg.sub import b\n",
            "pkg/sub/__init__.py": "",
            "pkg/sub/b.py": back_edge,
        },
    )
    assert circles(import_graph(tmp_path, "pkg")) == [{"pkg.a", "pkg.sub.b"}]


def test_one_way_imports_make_no_circle(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg import a\n",
            "pkg/a.py": "from pkg.sub import b\n",
            "pkg/sub/__init__.py": "",
            "pkg/sub/b.py": "import json\nfrom pkg.sub import c\n",
            "pkg/sub/c.py": "",
        },
    )
    graph = import_graph(tmp_path, "pkg")
    assert graph["pkg.a"] == {"pkg.sub.b"} and graph["pkg.sub.b"] == {"pkg.sub.c"}
    assert circles(graph) == []
