"""Shared test set-up: the repo on sys.path, the zoo, and golden files.

Golden files live in tests/golden/, named after their tests (see ``golden``); run
``pytest --update-golden`` to rewrite them after an intended change, then review the diff.
The ``slow`` marker is declared once, in setup.cfg.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def _drop_other_gradcheck() -> None:
    """The tests are of this checkout.  An installed gradcheck's pytest plugin (the
    ``pytest11`` entry point) is loaded before this file runs, and it imports the installed
    package, which ``import gradcheck`` would then keep returning: forget it (importing
    gradcheck has no side effects, so there is nothing to undo) and import this checkout's."""
    mod = sys.modules.get("gradcheck")
    where = getattr(mod, "__file__", None) or "/"  # a namespace package has no __file__
    if mod is not None and Path(where).resolve().parent != ROOT / "gradcheck":
        for name in [n for n in sys.modules if n == "gradcheck" or n.startswith("gradcheck.")]:
            del sys.modules[name]


_drop_other_gradcheck()

from gradcheck import runtime  # noqa: E402

# Jittor without operator fusion for the tests.  What they check (reach, gradients, warnings,
# verdicts, reports) is decided on the lazy graph before Jittor executes it; fusion only merges
# element-wise operators into one compiled kernel per distinct chain, and it is why a cold
# cache compiled about 1,800 kernels for the suite (949 for tests/gradcheck/test_oracle.py
# alone, against 117 unfused: 725 s against 196 s cold).  Set before Jittor is imported, and
# inherited by every subprocess a test starts.  Tests marked ``fused`` run with fusion (see
# ``_fusion``); the fused path also runs in CI's `gradcheck run` gate and the README's first
# command, and `no_fuse=0 python3 -m pytest` runs the whole suite fused.
os.environ.setdefault("no_fuse", "1")

try:  # the Jittor runtime, before any test module imports jittor
    runtime.setup()
except runtime.RuntimeSetupError:
    pass  # e.g. GRADCHECK_DEVICE=cuda without a GPU: raised again, as one line, where used


def pytest_addoption(parser):
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite the golden files (tests/golden/) from the current output",
    )


_APT = re.compile(r"apt-get install ((?:[\w.+-]+ ?)+)")


def pytest_terminal_summary(terminalreporter):
    """One line at the end naming the command that adds the tests skipped for a missing system
    package (OpenMPI, Chromium): the ones CI runs because ``.ci/run`` installs them."""
    packages: list = []
    count = 0
    for rep in terminalreporter.stats.get("skipped", []):
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        m = _APT.search(reason)
        if m:
            count += 1
            packages += [p for p in m.group(1).split() if p not in packages and p != "-y"]
    if count:
        terminalreporter.write_line(
            f"{count} test(s) skipped for want of system packages that CI installs; to run "
            f"them too: sudo apt-get install -y {' '.join(packages)}",
            yellow=True,
        )


@pytest.fixture(autouse=True)
def _fusion(request, monkeypatch):
    """A test marked ``fused`` runs with Jittor's operator fusion, in this process and in the
    subprocesses it starts: a float64 matmul or convolution, which has no MKL kernel, is a
    broadcast and a reduction, and unfused that broadcast is materialised (a 400x400 float64
    matmul peaks at 1.7 GB unfused, 0.25 GB fused; ResNet-18's float64 align rerun at 21 GB)."""
    if request.node.get_closest_marker("fused") is None or os.environ.get("no_fuse") == "0":
        yield
        return
    runtime.import_jittor()  # unfused by default, whoever imports it first
    import jittor as jt

    monkeypatch.setenv("no_fuse", "0")
    with jt.flag_scope(no_fuse=0):
        yield


@pytest.fixture
def golden(request):
    """``golden(text)`` or ``golden(suffix, text)``: the text must equal the golden file named
    after the test, ``tests/golden/<test module's path under tests/>/<test>.<suffix>`` (suffix
    ``txt`` by default; a parametrized test's id follows its name after a ``-``), e.g.
    tests/golden/gradcheck/test_cli/test_one_screen_goldens.pass.txt for
    ``golden("pass.txt", ...)`` in tests/gradcheck/test_cli.py::test_one_screen_goldens."""
    update = request.config.getoption("--update-golden")
    module = request.node.path.resolve().relative_to(ROOT / "tests").with_suffix("")
    test = request.node.originalname
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None:
        test += "-" + re.sub(r"[^\w-]", "_", callspec.id)
    checked: set = set()

    def check(*args: str) -> None:
        suffix, text = args if len(args) == 2 else ("txt", *args)
        assert suffix and not suffix.startswith("."), f"golden suffix {suffix!r}: e.g. 'md'"
        path = ROOT / "tests" / "golden" / module / f"{test}.{suffix}"
        assert path not in checked, f"{path} checked twice in one test: give each a suffix"
        checked.add(path)
        if update or not path.exists():
            if not update:
                pytest.fail(f"golden file {path} is missing; run pytest --update-golden")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            return
        assert text == path.read_text(encoding="utf-8"), (
            f"output differs from {path}; if intended, run pytest --update-golden"
        )

    return check


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """``cli("run", "--model", ...)``: the gradcheck command through click's runner, run in
    an empty folder (away from the project's own ``[gradcheck]`` settings)."""
    from click.testing import CliRunner

    from gradcheck.cli import main

    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(main, list(args), catch_exceptions=False)

    return invoke


@pytest.fixture
def repo_root() -> Path:
    return ROOT
