"""The pytest plugin: a user's own test suite gates gradient coverage without the CLI."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest

import gradcheck
from fixtures import TESTS, zoo

pytest_plugins = ["pytester"]


def test_assert_covered_lists_each_uncovered_parameter_with_its_cause():
    report = gradcheck.assert_covered(zoo.healthy(), steps=1)
    assert report.verdict.passed
    with pytest.raises(AssertionError) as err:
        gradcheck.assert_covered(zoo.unused(), steps=1)
    lines = str(err.value).splitlines()
    assert "not covered after 1 step(s)" in lines[0]
    assert [ln.split(":")[0].strip() for ln in lines[1:]] == ["unused.weight", "unused.bias"]
    assert "missing (not_called:" in lines[1]


def test_expected_frozen_and_undeclared_frozen():
    with pytest.raises(AssertionError, match=r"scale: frozen_undeclared"):
        gradcheck.assert_covered(zoo.stop_grad(), steps=1)
    gradcheck.assert_covered(zoo.stop_grad(), steps=1, expected_frozen={"scale": "fixed"})
    # declared frozen, but it trains: the declaration is wrong
    with pytest.raises(AssertionError, match=r"fc1\.weight: frozen_but_trained"):
        gradcheck.assert_covered(zoo.healthy(), steps=1, expected_frozen={"fc*": "oops"})


def test_plugin_is_registered_through_pytest11(repo_root):
    cfg = configparser.ConfigParser()
    cfg.read(repo_root / "setup.cfg")
    entries = cfg["options.entry_points"]["pytest11"].split("\n")
    assert "gradcheck = gradcheck.pytest_plugin" in [e.strip() for e in entries]


def test_the_tests_import_this_checkout(repo_root):
    """An installed gradcheck's plugin, loaded through pytest11 before tests/conftest.py ran,
    imported the installed package; conftest swapped this checkout's in."""
    import gradcheck.api
    import gradcheck.report

    for mod in (gradcheck, gradcheck.api, gradcheck.report):
        assert repo_root / "gradcheck" in Path(mod.__file__).resolve().parents, mod


def test_fixture_in_a_users_suite(pytester, monkeypatch):
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")  # load exactly this checkout's
    pytester.makepyfile(
        test_users=f"""
        import sys
        sys.path.insert(0, {str(TESTS)!r})
        from fixtures import zoo

        def test_healthy(assert_covered):
            assert_covered(zoo.healthy(), steps=1)

        def test_declared(assert_covered):
            assert_covered(zoo.stop_grad(), steps=1, expected_frozen={{"scale": "fixed"}})

        def test_unused(assert_covered):
            assert_covered(zoo.unused(), steps=1)
    """
    )
    result = pytester.runpytest("-p", "gradcheck.pytest_plugin")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*AssertionError: 2 of 4 parameter(s)*not covered*",
            "*unused.weight: missing (not_called*",
        ]
    )
