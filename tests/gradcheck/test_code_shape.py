"""The shape of gradcheck's own code: no function over 80 lines (the architecture issue's
limit: a function that long does several things, and each should have a name)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from fixtures import ROOT

PACKAGE = ROOT / "gradcheck"
LIMIT = 80


def _functions(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node.lineno, node.end_lineno - node.lineno + 1


def long_functions(root: Path, limit: int = LIMIT) -> list:
    """``path:line name (lines)`` of every function longer than ``limit`` lines, decorators
    left out and nested functions counted inside their parent."""
    return [
        f"{p.relative_to(root.parent)}:{line} {name} ({n} lines)"
        for p in sorted(root.rglob("*.py"))
        for name, line, n in _functions(p)
        if n > limit
    ]


def test_no_function_in_gradcheck_is_over_80_lines():
    assert long_functions(PACKAGE) == []


@pytest.mark.parametrize("body,found", [(79, False), (80, True)])
def test_the_measure_counts_the_def_line_and_the_body(tmp_path, body, found):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    lines = "\n".join(f"    x{i} = {i}" for i in range(body))
    (pkg / "m.py").write_text(f"@decorator\ndef f():\n{lines}\n")
    assert bool(long_functions(pkg)) is found
