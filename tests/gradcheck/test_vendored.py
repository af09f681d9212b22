"""A user's own package named ``gold_yolo`` stays theirs (issue 21, item 3).

The seed write-up's author has a Jittor Gold-YOLO port with its own ``gold_yolo/`` package.
gradcheck bundles a port under the same top-level name; it must never be what the user's
factory imports, and the bundled workloads must still load ours.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

THEIRS = {
    "gold_yolo/__init__.py": "WHOSE = 'theirs'\n",
    "gold_yolo/theirs.py": textwrap.dedent("""\
        import numpy as np
        import gradcheck
        from gradcheck import runtime
        jt = runtime.import_jittor()

        class Net(jt.nn.Module):
            def __init__(self):
                self.fc = jt.nn.Linear(4, 2)
            def execute(self, x):
                return self.fc(x)
        """),
    "checks.py": textwrap.dedent("""\
        import numpy as np
        import gradcheck
        from gold_yolo.theirs import Net, jt      # the user's package, not gradcheck's

        def make():
            x = jt.array(np.ones((3, 4), "float32"))
            return gradcheck.Workload(Net(), x, lambda m, b: (m(b) ** 2).sum())
        """),
}


@pytest.fixture
def user_project(tmp_path) -> Path:
    for rel, text in THEIRS.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def _python(code: str, cwd: Path, repo_root: Path) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "PYTHONPATH": str(repo_root)},
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip()


def test_looking_up_bundled_names_imports_no_gold_yolo(user_project, repo_root):
    got = _python(
        "import sys, gradcheck; from gradcheck import registry, resolve; "
        "resolve.check_spec('gold_yolo_s'); print(sorted(registry.names())); "
        "print('gold_yolo' in sys.modules)",
        user_project,
        repo_root,
    )
    names, imported = got.splitlines()
    assert "gold_yolo_s" in names and "gold_yolo_n" in names
    assert imported == "False"


def test_bundled_package_is_ours_beside_a_users_gold_yolo(user_project, repo_root):
    got = _python(
        textwrap.dedent("""\
        import sys, gold_yolo                        # the user's, first on the path
        from gradcheck.vendored import bundled
        ours = bundled("gold_yolo")
        print(gold_yolo.WHOSE, sys.modules["gold_yolo"] is gold_yolo)
        print(ours.__file__)
        print(ours.get_config("gold_yolo_n").head.reg_max)
        """),
        user_project,
        repo_root,
    )
    first, ours_file, reg_max = got.splitlines()
    assert first == "theirs True"
    assert Path(ours_file) == repo_root / "gold_yolo" / "__init__.py"
    assert int(reg_max) >= 0


def test_users_factory_imports_their_gold_yolo(user_project, repo_root, tmp_path):
    out_json = tmp_path / "r.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from gradcheck.cli import main; main()",
            "run",
            "--quiet",
            "--model",
            "checks.py:make",
            "--steps",
            "1",
            "--output",
            str(out_json),
        ],
        cwd=user_project,
        capture_output=True,
        text=True,
        timeout=600,
        env={**__import__("os").environ, "PYTHONPATH": str(repo_root)},
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads(out_json.read_text())
    assert {p["name"] for p in report["params"]} == {"fc.weight", "fc.bias"}
