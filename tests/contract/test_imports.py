"""The dependency rules of docs/architecture.md, checked on the source: every module's imports
at module level (what runs when it is imported; imports inside functions and under
TYPE_CHECKING are excluded), followed transitively through the product's own modules.

- the pure core (planning, market context, report building) reaches no httpx, diskcache or
  sqlite3, however indirectly;
- `cache` imports nothing of `services` or `discovery`; `services` never imports `discovery`;
- nothing in the product imports `services.sandbox` but the CLI (`discovery.cli`).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("discovery", "services", "cache")
PURE_CORE = ("discovery.plan", "discovery.report")
IO_LIBRARIES = frozenset({"httpx", "diskcache", "sqlite3"})


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {
    module_name(p): p for pkg in PACKAGES for p in sorted((REPO / pkg).rglob("*.py"))
}


def _module_level(tree: ast.Module) -> Iterator[ast.stmt]:
    """Statements that run on import: the body, into if/try/with blocks, never into functions,
    classes' methods or `if TYPE_CHECKING:`."""
    stack = list(reversed(tree.body))
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If):
            test = node.test
            if isinstance(test, ast.Name) and test.id == "TYPE_CHECKING":
                stack.extend(reversed(node.orelse))
                continue
            stack.extend(reversed([*node.body, *node.orelse]))
        elif isinstance(node, ast.Try):
            blocks = [*node.body, *node.orelse, *node.finalbody]
            for handler in node.handlers:
                blocks.extend(handler.body)
            stack.extend(reversed(blocks))
        elif isinstance(node, (ast.With, ast.ClassDef)):
            stack.extend(reversed(node.body))


@cache
def imports_of(name: str) -> frozenset[str]:
    """Every module `name` imports when it is imported (absolute names; `from x import y`
    counts `x.y` too when that is a module of ours)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _module_level(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES)
    # Importing a.b.c runs a/__init__ and a/b/__init__ first.
    for module in list(found):
        parts = module.split(".")
        found.update(".".join(parts[:i]) for i in range(1, len(parts)))
    return frozenset(found - {name})


def reach(name: str) -> dict[str, str]:
    """Every module imported when `name` is, with the module that imports it first found."""
    via: dict[str, str] = {}
    todo = [name]
    while todo:
        current = todo.pop()
        for imported in imports_of(current):
            if imported not in via and imported != name:
                via[imported] = current
                if imported in MODULES:
                    todo.append(imported)
    return via


def chain(via: dict[str, str], start: str, target: str) -> str:
    path = [target]
    while path[-1] != start:
        path.append(via[path[-1]])
    return " → ".join(reversed(path))


def under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_the_rules_see_the_modules() -> None:
    """The checker itself: it finds the product's modules and their imports."""
    assert len([m for m in MODULES if under(m, PURE_CORE)]) >= 10
    assert "services.spec" in reach("discovery.plan.needs")
    assert "httpx" in reach("services.hub")  # a module that does reach the network


@pytest.mark.parametrize("name", sorted(m for m in MODULES if under(m, PURE_CORE)))
def test_the_pure_core_reaches_no_io_library(name: str) -> None:
    via = reach(name)
    for library in sorted(IO_LIBRARIES & {m.split(".")[0] for m in via}):
        target = next(m for m in via if m.split(".")[0] == library)
        pytest.fail(f"{name} imports {library}: {chain(via, name, target)}")


@pytest.mark.parametrize("name", sorted(MODULES))
def test_layers(name: str) -> None:
    imported = imports_of(name)
    if under(name, ("cache",)):
        bad = [m for m in imported if under(m, ("services", "discovery"))]
        assert not bad, f"{name} (cache) imports {bad}"
    if under(name, ("services",)) and not under(name, ("services.sandbox",)):
        bad = [m for m in imported if under(m, ("discovery",))]
        assert not bad, f"{name} (services) imports {bad}"
    if not under(name, ("services.sandbox", "discovery.cli")):
        bad = [m for m in imported if under(m, ("services.sandbox",))]
        assert not bad, f"{name} imports the sandbox {bad}: only the CLI may"
