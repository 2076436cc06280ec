"""The import graph of Pulpit's packages: no cycle anywhere, and the layers hold.

Every import statement counts, at module level or inside a function (a function-level import
only postpones a cycle to the first call; it does not remove it). Importing ``a.b.c`` runs
``a/__init__.py`` and ``a/b/__init__.py`` too, so those are edges as well (except from a
module inside ``a``, which its package has always started before it: a package's
``__init__`` re-exporting its modules is no cycle, a module importing a name from its own
package's ``__init__`` is). Only imports under
``if TYPE_CHECKING:`` are left out: they are never executed, and they are how two model modules
name each other in annotations (``Client.contracts`` and ``Contract.client``) while SQLAlchemy
resolves the classes by name at run time.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("core", "mailgw", "web", "workers", "pulpit", "config")

# Who may import whom (the architecture in the README): core imports nothing of ours above
# it; web and mailgw meet only in core; workers may use mailgw to send mail; pulpit is the
# composition root and may import everything; config (settings) imports nothing of ours.
MAY_IMPORT = {
    "config": set(),
    "core": {"core"},
    "mailgw": {"core", "config", "mailgw"},
    "web": {"core", "config", "web"},
    "workers": {"core", "config", "mailgw", "workers"},
    "pulpit": set(PACKAGES),
}

# The shared modules that stay at core's top level; everything else lives in a package.
CORE_TOP_LEVEL = {"__init__", "audit", "blobs", "clock", "db", "errors", "i18n", "orm", "tables"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts and "versions" in path.parts:
                continue  # Alembic loads revisions by path, not by import
            found[module_name(path)] = path
    return found


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, current: str, is_package: bool) -> set[str]:
    """Every module of ours that ``tree`` imports, outside ``if TYPE_CHECKING:`` blocks."""
    known = modules()
    found: set[str] = set()

    ancestors = set(_ancestors(current))

    def add(name: str) -> None:
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # the packages on the way are run too
            prefix = ".".join(parts[:i])
            # ...except this module's own packages: they are always started before it, so
            # passing through them is no dependency (naming one directly still is).
            if prefix in known and (prefix == name or prefix not in ancestors):
                found.add(prefix)

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = current.split(".")
                if not is_package:
                    anchor = anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            add(base)
            for alias in node.names:
                if f"{base}.{alias.name}" in known:  # `from core.sla import clocks`
                    add(f"{base}.{alias.name}")
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    found.discard(current)
    return found


@cache
def graph() -> dict[str, frozenset[str]]:
    edges: dict[str, frozenset[str]] = {}
    for name, path in modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges[name] = frozenset(_imports(tree, name, path.name == "__init__.py"))
    return edges


def cycles(edges: dict[str, frozenset[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def strongconnect(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                strongconnect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            strongconnect(node)
    return found


def test_the_graph_sees_function_level_and_package_imports() -> None:
    edges = graph()
    # A function-level import (pulpit.runtime starts the web app only when serving) counts.
    assert "web.app" in edges["pulpit.runtime"]
    # `from core.sla import clocks` is an edge to the module and to its package.
    assert {"core.sla", "core.sla.clocks"} <= edges["core.tickets.queries"]
    # Annotations-only imports are left out; so is a module's own package on the way.
    assert "core.contracts.models" not in edges["core.directory.models"]
    assert "core.configuration" not in edges["core.configuration.apply"]


def test_no_import_cycle_anywhere() -> None:
    found = cycles(graph())
    assert found == [], "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_a_cycle_would_be_found() -> None:
    edges = {"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset({"a"}), "d": frozenset()}
    assert cycles(edges) == [["a", "b", "c"]]


def test_each_package_imports_only_what_its_layer_allows() -> None:
    wrong = sorted(
        f"{source} imports {target}"
        for source, targets in graph().items()
        for target in targets
        if target.split(".")[0] not in MAY_IMPORT[source.split(".")[0]]
    )
    assert wrong == []


def test_core_top_level_holds_packages_and_the_shared_modules() -> None:
    top = {p.stem for p in (ROOT / "core").glob("*.py")}
    assert top == CORE_TOP_LEVEL
