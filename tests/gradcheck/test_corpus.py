"""Every corpus case (tests/fixtures/corpus/) gives its documented truth: statuses, causes and the
other fields its ``expect`` names, for every parameter its globs match."""

from __future__ import annotations

import fnmatch

import pytest

import gradcheck
from fixtures import FIXTURES
from fixtures.corpus import load_all

CASES = load_all()


def _matches(value, want) -> bool:
    return want(value) if callable(want) else value == want


def _assert_fields(records, globs: dict, what: str):
    for glob, fields in globs.items():
        hit = [r for r in records if fnmatch.fnmatchcase(r.name, glob)]
        assert hit, f"{what} glob {glob!r} matches nothing"
        for rec in hit:
            for key, want in fields.items():
                got = getattr(rec, key)
                assert _matches(got, want), (
                    rec.name,
                    key,
                    got,
                    want,
                    getattr(rec, "cause_detail", None),
                )


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if c.slow else n for n, c in sorted(CASES.items())],
)
def test_corpus_case_reads_right(name):
    c = CASES[name]
    report = gradcheck.check(c.factory(), steps=c.steps)
    _assert_fields(report.params, c.expect, "param")
    _assert_fields(report.buffers, c.buffers, "buffer")
    if c.verdict:
        assert report.verdict.result == c.verdict, report.verdict
    if c.extra:
        c.extra(report)


def test_corpus_is_documented():
    assert len(CASES) >= 15
    for name, c in CASES.items():
        doc = c.factory.__doc__ or ""
        assert "Source:" in doc and "Truth:" in doc, name


def test_train_mode_flag_switches_an_eval_model(tmp_path):
    from click.testing import CliRunner

    from gradcheck.cli import main
    from gradcheck.report import load_report

    spec = f"{FIXTURES / 'corpus' / 'training.py'}:eval_at_import"
    as_handed, switched = tmp_path / "a.json", tmp_path / "b.json"
    for out, extra in ((as_handed, []), (switched, ["--train-mode"])):
        CliRunner().invoke(
            main,
            ["run", "--model", spec, "--steps", "1", "-o", str(out), "--quiet", *extra],
            catch_exceptions=False,
        )
    a, b = load_report(as_handed), load_report(switched)
    assert {(p.status, p.cause) for p in a.params} == {("frozen", "eval_mode")}
    assert a.config["train_mode"] is False
    assert {(p.status, p.cause, p.mode_change) for p in b.params} == {
        ("covered", "train_mode", "unfrozen")
    }
    assert b.config["train_mode"] is True and len(b.config["mode_changes"]) == len(b.params)
