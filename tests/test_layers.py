"""The layering of DESIGN.md §11, checked from the modules' own imports.

core ← storage ← assistants ← billing ← admin_commands ← handlers ← bot: a package imports only
the packages below it. Every import counts, lazy ones inside functions and ``TYPE_CHECKING``
ones included, so a new upward import fails here before it can become a circle.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORDER = ("core", "storage", "assistants", "billing", "admin_commands", "handlers", "bot")
#: Package → the packages of ours it may import (besides itself): everything below it.
ALLOWED: dict[str, frozenset[str]] = {
    package: frozenset(ORDER[:index]) for index, package in enumerate(ORDER)
}
#: What ``core`` may import besides the standard library.
#: Babel: the message catalogs and number, currency and date formats (core.i18n).
CORE_THIRD_PARTY = frozenset({"pydantic", "typing_extensions", "babel"})


def _modules(root: Path = ROOT) -> Iterator[tuple[str, Path]]:
    for package in ORDER:
        for path in sorted((root / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue  # Alembic scripts are loaded by Alembic, not imported by our code
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join(parts), path


def _imports(module: str, path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = module.split(".")[: -node.level or None]
                yield ".".join([*base, node.module] if node.module else base)
            elif node.module:
                yield node.module


def _upward_imports(root: Path = ROOT) -> list[str]:
    upward: list[str] = []
    for module, path in _modules(root):
        package = module.split(".")[0]
        for imported in _imports(module, path):
            target = imported.split(".")[0]
            if target in ORDER and target != package and target not in ALLOWED[package]:
                upward.append(f"{module} imports {imported}")
    return upward


def test_packages_import_only_the_layers_below_them() -> None:
    upward = _upward_imports()
    assert upward == [], "imports against the layer order:\n" + "\n".join(upward)


def test_core_depends_on_the_standard_library_alone() -> None:
    foreign: list[str] = []
    for module, path in _modules():
        if not module.startswith("core"):
            continue
        for imported in _imports(module, path):
            top = imported.split(".")[0]
            if top in ("core", "__future__") or top in sys.stdlib_module_names:
                continue
            if top not in CORE_THIRD_PARTY:
                foreign.append(f"{module} imports {imported}")
    assert foreign == []


def test_no_import_circles_between_modules() -> None:
    modules = dict(_modules())
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        edges: set[str] = set()
        for imported in _imports(module, path):
            # ``from a.b import c`` may name module a.b.c or an attribute of a.b.
            for candidate in (imported, imported.rsplit(".", 1)[0]):
                if candidate in modules and candidate != module:
                    edges.add(candidate)
                    break
        graph[module] = edges

    circles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                circles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    # A package's __init__ re-exporting its own submodules is not a circle worth reporting.
    real = [c for c in circles if not all(c[0].startswith(m) or m.startswith(c[0]) for m in c)]
    assert real == [], "import circles:\n" + "\n".join(" -> ".join(c) for c in real)


def test_the_check_sees_upward_and_lazy_imports(tmp_path: Path) -> None:
    """The checker itself, on a small tree: module-level, lazy and relative imports all count."""
    (tmp_path / "storage").mkdir()
    (tmp_path / "storage" / "repo.py").write_text(
        "from core.errors import NotFoundError\n"
        "def f():\n    from bot.settings import Settings\n"
        "from ..handlers import deps\n"
    )
    (tmp_path / "core").mkdir()
    (tmp_path / "core" / "money.py").write_text("import decimal\n")
    assert sorted(_upward_imports(tmp_path)) == [
        "storage.repo imports bot.settings",
        "storage.repo imports handlers",
    ]
