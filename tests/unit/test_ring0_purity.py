"""Ring 0 is pure: no floats, no true division, no clock, randomness or environment.

An AST scan of every ring-0 file (``core``, ``state``, ``modules``, ``stf``); the import-layer
contract in ``pyproject.toml`` (``lint-imports``) checks the same rule for imports between packages.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "strata"
RING0 = ("core", "state", "modules", "stf")
BANNED_MODULES = {"time", "random", "os", "datetime", "socket", "asyncio", "logging", "secrets"}
BANNED_NAMES = {"float", "Decimal", "hash", "id"}


def ring0_files() -> list[Path]:
    return sorted(p for d in RING0 for p in (SRC / d).rglob("*.py"))


def find_violations(source: str) -> list[str]:
    """Every forbidden construct in ``source``, as ``line: what``."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Constant) and isinstance(node.value, float):
            found.append(f"{line}: float literal {node.value!r}")
        elif isinstance(node, ast.BinOp | ast.AugAssign) and isinstance(node.op, ast.Div):
            found.append(f"{line}: true division")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in BANNED_MODULES:
                    found.append(f"{line}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            if (node.module or "").split(".")[0] in BANNED_MODULES:
                found.append(f"{line}: from {node.module} import")
        elif isinstance(node, ast.Name) and node.id in BANNED_NAMES:
            found.append(f"{line}: {node.id}")
        elif isinstance(node, ast.Attribute) and node.attr == "environ":
            found.append(f"{line}: environ")
    return found


@pytest.mark.parametrize("path", ring0_files(), ids=lambda p: str(p.relative_to(SRC)))
def test_ring0_file_is_pure(path: Path) -> None:
    assert find_violations(path.read_text()) == []


def test_scanner_catches_each_violation() -> None:
    """The scan itself must be able to fail (a test that cannot fail is worse than none)."""
    bad = (
        "import time\nimport random\nfrom os import environ\nx = 1.5\ny = 3 / 2\n"
        "z = float(1)\nimport os\nw = os.environ\nv = hash(b'')\n"
    )
    found = find_violations(bad)
    assert len(found) == 9, found


def test_ring0_is_scanned() -> None:
    names = {p.name for p in ring0_files()}
    assert {"units.py", "merkle.py", "transition.py", "matching.py", "book.py"} <= names
