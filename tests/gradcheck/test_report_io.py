"""Reports survive a JSON round trip; bad files give one clear error; writes are atomic."""

from __future__ import annotations

import dataclasses
import json
import math
import os

import pytest
from click.testing import CliRunner

from fixtures.reports import make_report
from gradcheck.cli import main
from gradcheck.policy import Policy
from gradcheck.report import (
    SCHEMA_VERSION,
    LossTermRecord,
    Report,
    ReportError,
    StepRecord,
    load_report,
    parse_json,
    save_report,
    write_atomic,
)
from gradcheck.summary import finalize


def test_round_trip(tmp_path):
    rep = make_report(
        **{"a.w": "covered", "a.b": "zero", "b.w": "missing", "c.w": "nonfinite", "d.w": "frozen"}
    )
    path = save_report(rep, tmp_path / "r.json")
    back = load_report(path)
    assert back.to_dict() == json.loads(path.read_text())
    assert [p.status for p in back.params] == ["covered", "zero", "missing", "nonfinite", "frozen"]
    assert back.param("c.w").grad_norms == ["nan"]  # strict JSON: non-finite as strings
    assert back.verdict.result == "fail" and back.schema_version == SCHEMA_VERSION


def test_records_keep_their_keys_and_bytes_through_json():
    rep = make_report(**{"a.w": "covered", "b.w": "missing"})
    rep.steps = [
        StepRecord(step=1, loss=1.0, terms={"cls": 1.0}, stats={"n": 2}, seconds=0.1),
        StepRecord(step=2, loss=0.5, seconds=0.1, phases={"g": 0.5, "d": float("inf")}),
    ]
    rep.loss_terms = [LossTermRecord(name="cls", reaches=1, constant=False, values=[1.0, None])]
    text = finalize(rep, Policy()).to_json()
    data = json.loads(text)
    assert list(data["steps"][0]) == ["step", "loss", "terms", "stats", "seconds"]  # no phases
    assert data["steps"][1]["phases"] == {"g": 0.5, "d": "inf"}
    assert list(data["verdict"]["groups"][0]) == [
        "finding",
        "severity",
        "cause",
        "why",
        "fix",
        "rerun",
        "count",
        "names",
    ]
    assert list(data["modules"][0]) == [
        "module",
        "depth",
        "params",
        "numel",
        "trainable",
        "covered",
        "by_status",
        "worst",
    ]
    assert data["summary"]["steps"] == 2 and data["loss_terms"][0]["values"] == [1.0, None]
    back = Report.from_dict(data)
    assert back.steps[1].phases == {"g": 0.5, "d": "inf"}
    assert back.verdict.groups[0].names == ["b.w"]
    assert back.to_json() == text


def test_each_record_is_one_line_so_a_diff_names_it():
    rep = make_report(**{"a.w": "covered", "b.w": "missing", "c.w": "nonfinite"})
    lines = rep.to_json().splitlines()
    start = lines.index(' "params": [')
    records = [json.loads(line.rstrip(",")) for line in lines[start + 1 : start + 4]]
    assert [r["name"] for r in records] == ["a.w", "b.w", "c.w"] and lines[start + 4] == " ],"
    assert records[2]["grad_norms"] == ["nan"]
    assert lines[1] == f' "schema_version": {SCHEMA_VERSION},'  # the top level: a key per line
    b_line = lines[start + 2]
    rep.param("b.w").steps = ["nonzero"]
    changed = [line for line in rep.to_json().splitlines() if line not in lines]
    assert changed == [b_line.replace('"steps": ["missing"]', '"steps": ["nonzero"]')]


def test_verdict_group_keys_optional_and_required(tmp_path):
    data = make_report(**{"b.w": "missing"}).to_dict()
    for key in ("cause", "fix", "rerun"):  # Optional fields: absent reads as None
        del data["verdict"]["groups"][0][key]
    path = tmp_path / "r.json"
    path.write_text(json.dumps(data))
    res = CliRunner().invoke(main, ["show", str(path)])
    assert res.exit_code == 1 and "missing: 1 parameter: None" in res.stdout, res.output
    del data["verdict"]["groups"][0]["why"]  # a required field
    path.write_text(json.dumps(data))
    res = CliRunner().invoke(main, ["show", str(path)])
    assert res.exit_code == 2 and "'why'" in res.stderr and "Traceback" not in res.output


def test_summary_counts_and_verdict():
    rep = make_report(**{"a.w": "covered", "a.b": "zero", "b.w": "missing"})
    assert rep.summary.by_status == {
        "covered": 1,
        "zero": 1,
        "missing": 1,
        "nonfinite": 0,
        "frozen": 0,
    }
    assert [(g.finding, g.cause, g.names) for g in rep.verdict.groups] == [
        ("zero", "zero_gradient", ["a.b"]),
        ("missing", "cut", ["b.w"]),
    ]
    assert rep.verdict.reasons[1].startswith("missing: 1 parameter: cut, no differentiable path")
    assert rep.verdict.result == "fail" and not rep.verdict.warnings
    root = rep.modules[0]
    assert root.module == "" and root.covered == 1 and root.worst == "missing"


@pytest.mark.parametrize(
    "content,message",
    [
        ("", "truncated JSON"),
        ('{"schema_version": 1, "params": [', "truncated JSON"),
        ("not json at all", "corrupt JSON"),
        ("[1, 2]", "not a gradcheck report"),
        ('{"params": []}', "no schema_version"),
        ('{"schema_version": 99, "params": [], "config": {}}', "newer than this gradcheck"),
        ('{"schema_version": 1, "config": {}}', "malformed report"),
        (
            '{"schema_version": 1, "config": {}, "params": [{"name": "x", "shape": [1], '
            '"numel": 1, "status": "weird"}]}',
            "unknown status",
        ),
    ],
)
def test_bad_report_files(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ReportError, match=message) as err:
        load_report(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("first,second", [("nan", "abc"), (1.0, "abc"), (1.0, True), (None, [1.0])])
def test_every_record_is_checked_though_most_are_alike(first, second):
    """A record shaped like one already checked (the same keys and value types) is built
    without a check per field; the value of a text in a number's field ("nan" passes, "abc"
    does not) is still read, in every record."""
    data = make_report(**{"a.w": "covered", "b.w": "covered", "c.w": "covered"}).to_dict()
    data["params"][0]["grad_norm"] = data["params"][1]["grad_norm"] = first
    Report.from_dict(json.loads(json.dumps(data)))  # alike records: fine
    data["params"][2]["grad_norm"] = second
    with pytest.raises(ReportError, match="grad_norm"):
        Report.from_dict(json.loads(json.dumps(data)))


@pytest.mark.parametrize("drop", [(), ("stopped_step",), ("aliases", "zero_why")])
def test_a_record_built_without_init_equals_one_built_with_it(drop):
    """The second record of a shape is built without the dataclass's ``__init__``: it equals
    ``ParamRecord(**d)`` field for field, with the defaults of the keys its file lacks (older
    reports), and owns a fresh default list when a lacking field's default is a factory."""
    from gradcheck.schema import ParamRecord, load

    data = make_report(**{"a.w": "covered", "b.w": "zero"}).to_dict()["params"]
    for d in data:
        for key in drop:
            d.pop(key, None)
    first, second = (load(ParamRecord, json.loads(json.dumps(d))) for d in data)
    for d, rec in zip(data, (first, second)):
        assert rec == ParamRecord(**json.loads(json.dumps(d)))
        assert [f.name for f in dataclasses.fields(rec)] == list(
            dataclasses.asdict(ParamRecord(**json.loads(json.dumps(d))))
        )
    if "aliases" in drop:
        first.aliases.append("x")
        assert second.aliases == []


def test_a_report_loaded_without_totals_has_the_same_records(tmp_path):
    rep = finalize(make_report(**{"a.w": "covered", "b.w": "missing"}), Policy())
    path = tmp_path / "r.json"
    save_report(rep, path)
    whole, records = load_report(path), load_report(path, totals=False)
    assert records.params == whole.params and records.config == whole.config
    assert whole.modules and whole.summary.params == 2
    assert records.modules == [] and records.summary.params == 0


@pytest.mark.parametrize("module", ["gradcheck.schema", "gradcheck.parity.records"])
def test_every_field_annotation_has_a_check(module):
    """load() checks a value by its field's annotation, read as text: a spelling it does not
    know (Optional[int] where it reads int | None) would leave that field unchecked."""
    import importlib
    from dataclasses import is_dataclass

    from gradcheck import schema

    mod = importlib.import_module(module)
    records = [
        c
        for c in vars(mod).values()
        if isinstance(c, type) and is_dataclass(c) and c.__module__ == mod.__name__
    ]
    assert len(records) > 5
    for cls in records:
        for _name, label, base, check, *_ in schema._load_spec(cls):
            assert check is not None, f"{label}: annotation {base!r} has no check"


def test_omit_without_writes_a_field_exactly_when_its_measure_is_written():
    """A noise floor goes with its measure: absent while the measure is None, written (None
    too) whenever it is not, and read back as it was."""
    from gradcheck.parity.records import ModuleRow
    from gradcheck.schema import load, plain

    row = ModuleRow("blocks.0", "blocks.0", "Conv2d", 0)
    assert list(plain(row)) == [
        "module",
        "original_module",
        "type",
        "call",
        "rel",
        "noise_floor",
        "ok",
    ]
    row.grad_rel, row.grad_ok = 0.5, True
    assert list(plain(row))[-3:] == ["grad_rel", "grad_floor", "grad_ok"]
    assert plain(row)["grad_floor"] is None
    row.grad_floor, row.rel = 1e-7, math.inf
    assert plain(row)["rel"] == "inf"
    assert load(ModuleRow, json.loads(json.dumps(plain(row)))) == dataclasses.replace(
        row, rel="inf"
    )


def test_missing_report_file(tmp_path):
    with pytest.raises(ReportError, match="no such file"):
        load_report(tmp_path / "nope.json")


def test_atomic_write_keeps_old_content_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "r.json"
    path.write_text("old")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        write_atomic(path, "new")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["r.json"]  # no temp file left behind


def test_timestamps_do_not_matter_for_compare():
    from gradcheck.compare import compare

    a = make_report(**{"a.w": "covered"})
    b = make_report(**{"a.w": "covered"})
    b.created, b.environment = "2030-01-01T00:00:00+00:00", {"host": "other"}
    cmp = compare(a, b)
    assert cmp.ok and not cmp.warnings and cmp.unchanged == 1


@pytest.mark.parametrize(
    "key,value,message",
    [
        ("status", "weird", "unknown status"),
        ("steps", ["nonzero", "sideways"], "unknown step status"),
        ("shape", [2, True], "has shape"),
        ("flags", ["exploding", 3], "non-text entry in flags"),
        ("reached_by", ["cls", None], "non-text entry in reached_by"),
        ("rounded", [None, 1], "non-boolean in rounded"),
        ("grad_norms", [1.0, "abc"], "non-number in grad_norms"),
        ("lrs", [0.1, [0.1]], "non-number in lrs"),
    ],
)
def test_a_bad_value_in_one_record_of_many_is_named(key, value, message):
    """The parameters' own checks run over all records at once; a bad value in any one of
    them still fails the load, naming that record."""
    data = make_report(**{f"m{i}.w": "covered" for i in range(5)}).to_dict()
    Report.from_dict(json.loads(json.dumps(data)))
    data["params"][3][key] = value
    with pytest.raises(ReportError, match=message) as err:
        Report.from_dict(json.loads(json.dumps(data)))
    assert "m3.w" in str(err.value)


def test_values_of_a_rarer_type_still_load():
    """Texts for non-finite norms, None lists and JSON's NaN literal (which strict JSON
    lacks, but Python's json reads) take the slower paths, and load as before."""
    data = make_report(**{"a.w": "covered", "b.w": "covered"}).to_dict()
    data["params"][1]["grad_norms"] = ["nan", "inf"]
    data["params"][1]["reached_by"] = None
    data["params"][0]["grad_norm"] = 1.5
    text = json.dumps(data).replace('"grad_norm": 1.5', '"grad_norm": NaN', 1)
    rep = Report.from_dict(parse_json(text))
    assert rep.params[1].grad_norms == ["nan", "inf"] and rep.params[1].reached_by is None
    assert math.isnan(rep.params[0].grad_norm)
