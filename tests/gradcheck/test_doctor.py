"""``gradcheck doctor``: the report on this machine, the conv self-test and its numpy
reference, failure reporting with fix hints, and rendering."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from rich.console import Console

import gradcheck  # noqa: F401
from fixtures import ROOT as REPO
from gradcheck import doctor, runtime
from gradcheck.doctor import Check, DoctorReport, render_doctor, run_doctor

NAMES = ["python", "device", "jittor", "compiler", "cache", "onednn", "self-test"]


@pytest.fixture(scope="module")
def report():
    return run_doctor()


def test_doctor_passes_on_this_machine(report):
    assert [c.name for c in report.checks] == NAMES
    assert report.ok, report.failed
    assert report.get("jittor").detail.startswith("Jittor 1.3.11")
    assert "max rel. error" in report.get("self-test").detail
    assert report.get("onednn").detail.startswith("on: ")
    assert "libmkldnn" in report.get("onednn").detail or "libdnnl" in report.get("onednn").detail
    assert runtime.state().device in report.get("device").detail


def test_doctor_json_round_trips(report):
    data = json.loads(json.dumps(report.to_dict()))
    assert data["ok"] is True
    assert [c["name"] for c in data["checks"]] == NAMES
    assert set(data["checks"][0]) == {"name", "ok", "detail", "fix_hint"}


def test_conv_reference_matches_direct_loops():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 5, 4))
    w = rng.standard_normal((4, 3, 3, 3))
    out, _ = doctor._conv_reference(x, w, pad=1)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    direct = np.zeros((2, 4, 5, 4))
    for n in range(2):
        for f in range(4):
            for i in range(5):
                for j in range(4):
                    direct[n, f, i, j] = np.sum(xp[n, :, i : i + 3, j : j + 3] * w[f])
    np.testing.assert_allclose(out, direct, rtol=1e-12, atol=1e-12)


def test_self_test_catches_a_wrong_convolution(monkeypatch):
    jt = runtime.import_jittor()
    real = jt.nn.conv2d
    monkeypatch.setattr(jt.nn, "conv2d", lambda *a, **k: real(*a, **k) * 1.001)
    ok, detail = doctor.conv_self_test(jt)
    assert not ok and "max rel. error" in detail
    rep = run_doctor()
    failed = rep.failed
    assert not rep.ok and [c.name for c in failed] == ["self-test"]
    assert "clear the Jittor cache" in failed[0].fix_hint


def test_self_test_crash_is_a_finding_not_a_crash(monkeypatch):
    jt = runtime.import_jittor()

    def boom(*a, **k):
        raise RuntimeError("[f 0101 op.cc:1] Wrong inputs arguments\nmore text")

    monkeypatch.setattr(jt.nn, "conv2d", boom)
    check = run_doctor().get("self-test")
    assert not check.ok and "RuntimeError" in check.detail and "\n" not in check.detail
    assert check.fix_hint


def test_onednn_off_is_reported_with_a_fix():
    code = textwrap.dedent("""
        import json
        from gradcheck.doctor import run_doctor
        print(json.dumps(run_doctor(self_test=False).to_dict()))
    """)
    env = dict(os.environ, PYTHONPATH=str(REPO), use_mkl="0")
    r = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout.strip().splitlines()[-1])
    onednn = next(c for c in data["checks"] if c["name"] == "onednn")
    assert data["ok"] is False and onednn["ok"] is False
    assert "use_mkl=0" in onednn["detail"] and "unset use_mkl" in onednn["fix_hint"]


def test_version_and_compiler_checks_carry_their_fixes(tmp_path):
    from types import SimpleNamespace

    fake = SimpleNamespace(
        __version__="1.3.9",
        __file__=str(tmp_path / "jittor/__init__.py"),
        flags=SimpleNamespace(cc_path=""),
    )
    jit = doctor._jittor_check(fake)
    assert not jit.ok and jit.fix_hint == "pip install jittor==1.3.11 (tested version)"
    cc = doctor._compiler_check(fake)
    assert (cc.ok, cc.detail) == (False, "none found") and "apt-get install g++" in cc.fix_hint
    fake.flags.cc_path = str(tmp_path / "no-such-g++")
    cc = doctor._compiler_check(fake)
    assert not cc.ok and cc.detail.endswith("no-such-g++ (does not run)") and cc.fix_hint


def test_dir_size_counts_files_not_symlinks(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f1").write_bytes(b"x" * 100)
    (tmp_path / "f2").write_bytes(b"y" * 23)
    (tmp_path / "link").symlink_to(tmp_path / "a" / "f1")
    (tmp_path / "dirlink").symlink_to(tmp_path / "a")
    assert doctor.dir_size(tmp_path) == (123, 2)
    assert doctor.dir_size(tmp_path / "missing") == (0, 0)


def _render(rep: DoctorReport) -> str:
    buf = io.StringIO()
    render_doctor(rep, Console(file=buf, width=140, color_system=None))
    return buf.getvalue()


def test_render_ok_and_failed():
    good = DoctorReport([Check("jittor", True, "Jittor 1.3.11"), Check("onednn", True, "on: x")])
    text = _render(good)
    assert "gradcheck doctor" in text and "Jittor 1.3.11" in text and "all checks passed" in text
    bad = DoctorReport(
        [
            Check("jittor", True, "Jittor 1.3.11"),
            Check("onednn", False, "off: not installed", "pip install onednn-cpu-gomp"),
        ]
    )
    text = _render(bad)
    assert "FAIL" in text and "fix: pip install onednn-cpu-gomp" in text
    assert "1 problem found" in text and "all checks passed" not in text
