"""The tests are laid out like the code (this file and conftest.py aside):

* ``tests/gradcheck/`` and ``tests/gold_yolo/`` hold only ``test_*.py`` files, each in the folder
  that mirrors the (sub-)package it tests: ``tests/gradcheck/render/`` for ``gradcheck/render/``;
* what tests share (builders, workloads, scripts, data) is in the ``tests/fixtures`` package,
  which holds no test;
* no test module imports another (what two share belongs in fixtures or in a conftest fixture);
* no two test modules share a basename (pytest's default import mode needs that);
* each golden file under ``tests/golden/`` is named after the test that checks it:
  ``tests/golden/<test module's path under tests/>/<test>.<suffix>`` (conftest's ``golden``).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
PACKAGES = ("gradcheck", "gold_yolo")
TOP = {"conftest.py", "test_layout.py", "fixtures", "golden", *PACKAGES}


def _files(folder: Path, pattern: str = "*") -> list:
    """Files under ``folder``, caches and hidden ones left out."""
    return sorted(
        p
        for p in folder.rglob(pattern)
        if p.is_file()
        and not any(
            part == "__pycache__" or part.startswith(".") for part in p.relative_to(TESTS).parts
        )
    )


def _test_modules() -> list:
    return [p for p in _files(TESTS, "test_*.py") if p != Path(__file__).resolve()]


def test_the_top_of_tests_holds_only_the_layout():
    extra = sorted(
        p.name
        for p in TESTS.iterdir()
        if p.name not in TOP and p.name != "__pycache__" and not p.name.startswith(".")
    )
    assert not extra, (
        f"tests/ holds {extra}: a test goes under tests/gradcheck/ or "
        f"tests/gold_yolo/, a helper or data under tests/fixtures/"
    )


def test_each_test_module_mirrors_the_package_it_tests():
    wrong = []
    for path in _test_modules():
        parts = path.relative_to(TESTS).parts
        if parts[0] not in PACKAGES or not (ROOT.joinpath(*parts[:-1]) / "__init__.py").is_file():
            wrong.append(str(path.relative_to(ROOT)))
    assert not wrong, (
        "test modules outside tests/<package>/<sub-package>/ (a folder that "
        f"mirrors one of {PACKAGES} or their sub-packages): {wrong}"
    )


def test_test_folders_hold_test_modules_only():
    """A helper beside the tests would be imported by them; an ``__init__.py`` would make
    tests/gradcheck a package named gradcheck, shadowing the real one."""
    wrong = [
        str(p.relative_to(ROOT))
        for pkg in PACKAGES
        for p in _files(TESTS / pkg)
        if not (p.name.startswith("test_") and p.suffix == ".py")
    ]
    assert not wrong, f"move these to tests/fixtures/ (or delete them): {wrong}"


def test_fixtures_is_a_package_without_tests():
    assert (TESTS / "fixtures" / "__init__.py").is_file()
    tests = [str(p.relative_to(ROOT)) for p in _files(TESTS / "fixtures", "test_*.py")]
    assert not tests, f"tests in tests/fixtures/: {tests}"


def test_test_module_basenames_are_unique():
    seen: dict = {}
    for path in _test_modules():
        seen.setdefault(path.name, []).append(str(path.relative_to(ROOT)))
    clashes = {name: paths for name, paths in seen.items() if len(paths) > 1}
    assert not clashes, f"one basename, two test modules (pytest imports both as one): {clashes}"


_IMPORT_LINE = re.compile(r"^\s*(?:from|import)\s+(?:[\w.]+\.)?(test_\w+|conftest)\b", re.M)


def _imported(path: Path) -> set:
    """Modules imported by ``path``: its import statements anywhere (functions included), and
    the import lines of the code it writes out as text (for subprocesses, pytester)."""
    text = path.read_text(encoding="utf-8")
    names = set(_IMPORT_LINE.findall(text))
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def test_no_test_module_imports_another():
    bad = []
    for path in _files(TESTS, "*.py"):
        tests = set()
        for name in _imported(path):
            parts = name.split(".")
            hit = [
                i for i, part in enumerate(parts) if part.startswith("test_") or part == "conftest"
            ]
            if hit:
                tests.add(".".join(parts[: hit[0] + 1]))
        bad += [f"{path.relative_to(ROOT)} imports {name}" for name in sorted(tests)]
    assert not bad, "test modules import one another (share through tests/fixtures/): " + "; ".join(
        bad
    )


def _test_names(path: Path) -> set:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in tree.body:
        body = node.body if isinstance(node, ast.ClassDef) else [node]
        names |= {
            f.name
            for f in body
            if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) and f.name.startswith("test")
        }
    return names


def test_golden_files_are_named_after_their_tests():
    wrong = []
    for path in _files(TESTS / "golden"):
        rel = path.relative_to(TESTS / "golden")
        module = TESTS.joinpath(*rel.parts[:-1]).with_suffix(".py")
        test = rel.name.split(".")[0].split("-")[0]  # <test>[-<param id>].<suffix>
        if not module.is_file() or test not in _test_names(module):
            wrong.append(f"{path.relative_to(ROOT)} (no {test} in {module.relative_to(ROOT)})")
    assert not wrong, (
        "golden files not named tests/golden/<module>/<test>.<suffix> after an "
        f"existing test: {wrong}"
    )
