"""The command line through click's runner: exit codes, formats, reports, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fixtures import FIXTURES
from gradcheck.report import SCHEMA_VERSION

ZOO = str(FIXTURES / "zoo.py")


def test_run_pass_writes_json(cli, tmp_path):
    out = tmp_path / "r.json"
    res = cli("run", "--model", f"{ZOO}:healthy", "--steps", "2", "-o", str(out), "--quiet")
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["schema_version"] == SCHEMA_VERSION and data["verdict"]["result"] == "pass"
    assert data["config"]["steps"] == 2 and data["config"]["model"] == f"{ZOO}:healthy"
    assert {p["name"] for p in data["params"]} == {
        "fc1.weight",
        "fc1.bias",
        "fc2.weight",
        "fc2.bias",
    }
    for key in ("summary", "environment", "buffers", "warnings", "modules", "steps"):
        assert key in data


def test_run_fail_exit_1_and_table(cli):
    res = cli("run", "--model", f"{ZOO}:unused")
    assert res.exit_code == 1
    assert "unused.weight" in res.output and "not_called" in res.output
    assert "verdict: fail" in res.output


def test_run_json_and_markdown_formats(cli):
    res = cli("run", "--model", f"{ZOO}:detached", "--format", "json")
    assert res.exit_code == 1
    data = json.loads(res.stdout)
    assert data["params"][2]["name"] == "side.weight" and data["params"][2]["cause"] == "cut"
    md = cli("run", "--model", f"{ZOO}:detached", "--format", "markdown")
    assert "| `side.weight` |" in md.stdout and "**verdict: fail**" in md.stdout


def test_markdown_golden(cli, golden, monkeypatch):
    monkeypatch.chdir(Path(ZOO).parent)  # a relative model path: the same in every clone
    res = cli("run", "--model", "zoo.py:multi_term", "--steps", "2", "--format", "markdown")
    golden("md", res.stdout)


def test_strict_flag(cli):
    assert cli("run", "--model", f"{ZOO}:not_in_optimizer").exit_code == 0
    assert cli("run", "--model", f"{ZOO}:not_in_optimizer", "--strict").exit_code == 1


def test_one_screen_goldens(cli, golden, monkeypatch):
    """The default view: a pass in a few lines; a fail grouped by cause, with the fix and
    the next command.  Zoo models: deterministic names and counts, no time or host shown."""
    monkeypatch.chdir(Path(ZOO).parent)
    ok = cli("run", "--model", "zoo.py:multi_term")
    assert ok.exit_code == 0
    golden("pass.txt", ok.stdout)
    bad = cli("run", "--model", "zoo.py:late_gradient", "--steps", "1")
    assert bad.exit_code == 1
    golden("fail.txt", bad.stdout)
    assert len(ok.stdout.splitlines()) <= 25 and len(bad.stdout.splitlines()) <= 25
    full = cli("run", "--model", "zoo.py:late_gradient", "--steps", "1", "--verbose")
    assert "needs attention" in full.stdout and "coverage by module" in full.stdout
    assert "needs attention" not in bad.stdout


def test_settings_origin_in_header_and_report(cli, tmp_path):
    cfg = tmp_path / "g.cfg"
    cfg.write_text("[gradcheck]\nseed = 3\n")
    out = tmp_path / "r.json"
    res = cli("run", "--model", f"{ZOO}:healthy", "--config", str(cfg), "-o", str(out), "-q")
    assert f"{ZOO}:healthy (flag) | 3 steps (tool default) | seed 3 (config): PASS" in res.stdout
    assert json.loads(out.read_text())["config"]["settings_source"] == {
        "model": "flag",
        "steps": "tool default",
        "seed": "config",
        "device": "tool default",
    }


@pytest.mark.parametrize(
    "args,message",
    [
        (["--model", "no_such_model"], "unknown model 'no_such_model'"),
        (["--model", "sub/nope.py:make"], "model file sub/nope.py does not exist"),
        (["--model", "no_such_pkg.mod:make"], "no module named 'no_such_pkg.mod'"),
        (["--model", f"{ZOO}:missing_factory"], "has no attribute 'missing_factory'"),
        (["--model", f"{ZOO}:raises"], "raised RuntimeError: cannot build the model"),
        (["--model", f"{ZOO}:not_a_workload"], "expected gradcheck.Workload"),
        (["--model", f"{ZOO}:not_scalar"], "the loss is not a scalar: shape [8, 4]"),
        (["--model", f"{ZOO}:healthy", "--steps", "-1"], "--steps must be at least 1, got -1"),
        (
            ["--model", f"{ZOO}:healthy", "--config", "nope.cfg"],
            "config file nope.cfg does not exist",
        ),
        (["--model", f"{ZOO}:healthy", "-o", "no/such/dir/r.json"], "its folder does not exist"),
        (
            ["--model", "gold_yolo_s", "--data", "no/such/data"],
            "--data no/such/data: no such folder",
        ),
    ],
)
def test_bad_input_one_line_exit_2(cli, tmp_path, args, message):
    out = tmp_path / "r.json"
    extra = [] if "-o" in args else ["-o", str(out)]
    res = cli("run", *args, *extra)
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert lines == [lines[0]] and message in lines[0], res.stderr
    assert "Traceback" not in res.output
    assert not out.exists()


def test_compare_gate(cli, tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    cli("run", "--model", f"{ZOO}:healthy", "-o", str(a), "--quiet")
    cli("run", "--model", f"{ZOO}:healthy", "-o", str(b), "--quiet")
    ok = cli("compare", str(a), str(b))
    assert ok.exit_code == 0 and "compare: ok" in ok.output
    # a regression: the same names, one now without gradient
    data = json.loads(b.read_text())
    data["params"][0]["status"] = "missing"
    b.write_text(json.dumps(data))
    bad = cli("compare", str(a), str(b))
    assert bad.exit_code == 1 and "REGRESSION" in bad.output and "fc1.weight" in bad.output
    allowed = cli("compare", str(a), str(b), "--allow", "fc1.*")
    assert allowed.exit_code == 0
    js = cli("compare", str(a), str(b), "--format", "json")
    assert json.loads(js.stdout)["regressions"][0]["name"] == "fc1.weight"


@pytest.mark.parametrize(
    "content,message",
    [
        ('{"schema_version": 1, "params": [', "truncated JSON"),
        ("garbage", "corrupt JSON"),
        ('{"schema_version": 7, "params": [], "config": {}}', "schema_version 7 is newer"),
    ],
)
def test_compare_bad_reports_exit_2(cli, tmp_path, content, message):
    good = tmp_path / "good.json"
    cli("run", "--model", f"{ZOO}:healthy", "-o", str(good), "--quiet")
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    res = cli("compare", str(good), str(bad))
    assert res.exit_code == 2 and message in res.stderr and "Traceback" not in res.output
    missing = cli("compare", str(good), str(tmp_path / "none.json"))
    assert missing.exit_code == 2 and "no such file" in missing.stderr


def test_show_renders_saved_report(cli, tmp_path):
    path = tmp_path / "r.json"
    cli("run", "--model", f"{ZOO}:unused", "-o", str(path), "--quiet")
    res = cli("show", str(path))
    assert res.exit_code == 1 and "unused.weight" in res.output


def test_every_run_option_has_its_field():
    """`run` hands click's keywords straight to _RunOptions: an option added to one and not
    the other would fail only when the command runs, so they are compared here."""
    import dataclasses

    from gradcheck import cli as cli_mod

    options = {p.name for p in cli_mod.run.params}
    assert options == {f.name for f in dataclasses.fields(cli_mod._RunOptions)}
