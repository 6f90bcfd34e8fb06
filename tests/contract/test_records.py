"""The product declares its classes with `services.recordclass.record`, not `dataclasses.dataclass`
(docs/architecture.md, "Startup"): a `@dataclass` costs every run ~0.6 ms to define. `cache/`
(which may import nothing above it) and the sandbox (which stands apart) are the exceptions."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHECKED = ("discovery", "services")
EXEMPT = ("services/sandbox",)


def _decorator_name(node: ast.expr) -> str:
    target = node.func if isinstance(node, ast.Call) else node
    if isinstance(target, ast.Attribute):
        return target.attr
    return target.id if isinstance(target, ast.Name) else ""


def dataclass_uses(root: Path) -> list[str]:
    """`path:line` of every class decorated with `dataclass` under `root`'s checked packages."""
    found = []
    for package in CHECKED:
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            if rel.startswith(EXEMPT):
                continue
            for node in ast.walk(ast.parse(path.read_text("utf-8"))):
                if isinstance(node, ast.ClassDef) and any(
                    _decorator_name(d) == "dataclass" for d in node.decorator_list
                ):
                    found.append(f"{rel}:{node.lineno} {node.name}")
    return found


def test_product_classes_are_records() -> None:
    assert dataclass_uses(REPO) == []


def test_the_check_finds_a_dataclass(tmp_path: Path) -> None:
    pkg = tmp_path / "services"
    pkg.mkdir()
    (pkg / "m.py").write_text(
        "import dataclasses\nfrom dataclasses import dataclass\n\n"
        "@dataclass(frozen=True)\nclass A:\n    x: int\n\n"
        "@dataclasses.dataclass\nclass B:\n    y: int\n",
        "utf-8",
    )
    (tmp_path / "discovery").mkdir()
    assert dataclass_uses(tmp_path) == ["services/m.py:5 A", "services/m.py:9 B"]
