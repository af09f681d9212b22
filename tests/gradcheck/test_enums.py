"""The vocabulary (:mod:`gradcheck.enums`): every word a report holds is a member of its enum,
a member prints and serializes as its plain word, the named groups are defined once, and a
report loaded from JSON (plain strings) behaves as a freshly built one."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

import gradcheck
from fixtures import zoo
from gradcheck import api, compare, enums, explain, policy, status, summary
from gradcheck.distributed import merge
from gradcheck.enums import (
    FINDINGS,
    RUN_STATUSES,
    STEP_STATUSES,
    Cause,
    Finding,
    Float64Mode,
    Severity,
    Status,
)
from gradcheck.parity import float64
from gradcheck.policy import ConfigError, load_config
from gradcheck.render import common
from gradcheck.report import Report
from gradcheck.schema import ParamRecord

ENUMS = (Status, Finding, Cause, Severity, Float64Mode)
MEMBERS = [m for e in ENUMS for m in e]

# flags that are not findings (see gradcheck.explain): data-dependent coverage
NON_FINDING_FLAGS = {"intermittent"}

# zoo cases that between them give every run status but "absent", causes and findings
FRESH = (
    "unused",
    "stop_grad",
    "times_zero",
    "nan_grad",
    "not_in_optimizer",
    "tiny_update",
    "decay_only",
    "stop_grad_declared",
)


@pytest.fixture(scope="module")
def fresh_reports():
    from gradcheck import runtime

    runtime.import_jittor()
    return {name: gradcheck.check(getattr(zoo, name)(), steps=2) for name in FRESH}


# ---------------------------------------------------------------------- how a member prints
@pytest.mark.parametrize("member", MEMBERS, ids=lambda m: f"{type(m).__name__}.{m.name}")
def test_a_member_renders_as_its_value(member):
    value = member.value
    assert str(member) == value
    assert f"{member}" == value
    assert f"{member:>20}|" == f"{value:>20}|"
    assert "%s" % member == value  # noqa: UP031 - %-formatting is what this line tests
    assert ", ".join([member, member]) == f"{value}, {value}"
    assert json.dumps({member: [member]}) == json.dumps({value: [value]})
    assert json.dumps([member], indent=1) == json.dumps([value], indent=1)


@pytest.mark.parametrize("member", MEMBERS, ids=lambda m: f"{type(m).__name__}.{m.name}")
def test_a_member_is_its_word_for_comparison_and_lookup(member):
    value = member.value
    assert member == value and value == member
    assert {value: 1}[member] == 1 and {member: 1}[value] == 1
    assert type(member)(value) is member  # a loaded word finds its member


def test_values_are_unique_within_each_enum():
    for e in ENUMS:
        values = [m.value for m in e]
        assert len(values) == len(set(values)), e


# ---------------------------------------------------------------------- defined once
def test_the_old_names_are_the_groups_of_enums():
    homes = [
        (policy, "FINDINGS", "FINDINGS"),
        (policy, "ALLOWABLE", "ALLOWABLE"),
        (merge, "FINDINGS", "RANK_FINDINGS"),
        (compare, "RANK_FINDINGS", "RANK_FINDINGS"),
        (compare, "GAINED_FINDINGS", "GAINED_FINDINGS"),
        (summary, "BUFFER_FINDINGS", "BUFFER_FINDINGS"),
        (api, "COVERED", "COVERED_FINDINGS"),
        (common, "INFORMATIONAL", "INFORMATIONAL"),
        (explain, "CAUSES", "CAUSES"),
        (float64, "MODES", "FLOAT64_MODES"),
        (status, "UNCOVERED", "UNCOVERED"),
        (status, "RUN_STATUSES", "RUN_STATUSES"),
        (status, "STEP_STATUSES", "STEP_STATUSES"),
    ]
    for module, name, group in homes:
        assert getattr(module, name) is getattr(enums, group), (module.__name__, name)


def test_groups_hold_members_of_the_right_enum():
    groups = {
        Status: ("STEP_STATUSES", "RUN_STATUSES", "UNCOVERED", "REACHED", "WORST_FIRST"),
        Finding: (
            "FINDINGS",
            "ALLOWABLE",
            "FLAG_FINDINGS",
            "RANK_FINDINGS",
            "GAINED_FINDINGS",
            "BUFFER_FINDINGS",
            "COVERED_FINDINGS",
        ),
        Cause: ("CAUSES", "INFORMATIONAL"),
        Severity: ("SEVERITIES",),
        Float64Mode: ("FLOAT64_MODES",),
    }
    for cls, names in groups.items():
        for name in names:
            group = getattr(enums, name)
            assert group and all(type(m) is cls for m in group), name
            assert len(set(group)) == len(group), name
    # step-only and run-only statuses
    assert set(STEP_STATUSES) - set(RUN_STATUSES) == {Status.NONZERO, Status.ABSENT}
    assert set(RUN_STATUSES) - set(STEP_STATUSES) == {Status.COVERED}
    assert set(enums.WORST_FIRST) == set(RUN_STATUSES)
    # an uncovered status is reported as the finding of the same word
    assert all(Finding(s) for s in enums.UNCOVERED)
    assert set(policy.DEFAULT_FAIL_ON) | set(policy.DEFAULT_WARN_ON) <= set(FINDINGS)


def test_enums_imports_nothing_from_gradcheck():
    tree = ast.parse(Path(enums.__file__).read_text(encoding="utf-8"))
    imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert imported and not [m for m in imported if m and m.split(".")[0] == "gradcheck"]


def test_every_status_has_a_colour_and_a_mark():
    assert set(common.STATUS_STYLE) == set(RUN_STATUSES)
    assert set(common.STEP_MARK) == set(STEP_STATUSES)


# ---------------------------------------------------------------------- the policy
def _config(tmp_path, body: str) -> Path:
    path = tmp_path / "gc.cfg"
    path.write_text("[gradcheck]\n" + body, encoding="utf-8")
    return path


def test_policy_rejects_an_unknown_finding_naming_the_allowed_ones(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(_config(tmp_path, "fail_on = missing, not_a_finding\n"))
    msg = str(err.value)
    assert "unknown finding 'not_a_finding'" in msg
    assert f"(choose from {', '.join(m.value for m in Finding)})" in msg
    assert "Finding." not in msg


def test_policy_accepts_every_finding_as_its_member(tmp_path):
    words = ", ".join(m.value for m in Finding)
    cfg = load_config(_config(tmp_path, f"fail_on = {words}\nwarn_on =\n"))
    assert cfg.policy.fail_on == tuple(Finding)
    assert all(type(f) is Finding for f in cfg.policy.fail_on)
    assert json.dumps(cfg.policy.record()["fail_on"]) == json.dumps([m.value for m in Finding])


@pytest.mark.parametrize("mode", [m.value for m in Float64Mode])
def test_align_float64_reads_as_a_mode(tmp_path, mode):
    cfg = load_config(_config(tmp_path, f"align_float64 = {mode}\n"))
    assert cfg.policy.align_float64 is Float64Mode(mode)


def test_align_float64_rejects_another_word(tmp_path):
    with pytest.raises(ConfigError, match="invalid align_float64 = 'sometimes'"):
        load_config(_config(tmp_path, "align_float64 = sometimes\n"))


# ---------------------------------------------------------------------- reports
def _words(report):
    """(enum, word) for every vocabulary word a report holds."""
    out = []
    for p in report.params:
        out += [(Status, p.status)] + [(Status, s) for s in p.steps]
        if p.cause is not None:
            out.append((Cause, p.cause))
        out += [(Finding, f) for f in p.flags if f not in NON_FINDING_FLAGS]
        out += [(Finding, f) for f in summary.findings(p)]
    out += [(Status, s) for s in report.summary.by_status]
    out += [(Status, s) for s in report.summary.numel_by_status]
    out += [(Finding, f) for f in report.summary.findings]
    for m in report.modules:
        out += [(Status, m.worst)] + [(Status, s) for s in m.by_status]
    for g in report.verdict.groups:
        out += [(Finding, g.finding), (Severity, g.severity)]
    return out


def test_a_fresh_report_holds_only_members(fresh_reports):
    seen = {e: set() for e in ENUMS}
    for name, report in fresh_reports.items():
        for cls, word in _words(report):
            assert type(word) is cls, (name, cls.__name__, word)
            seen[cls].add(word)
    # the cases reach most of the vocabulary, so the check above is not vacuous
    assert seen[Status] >= set(RUN_STATUSES) | {Status.NONZERO}
    assert {
        Cause.NOT_CALLED,
        Cause.ZERO_GRADIENT,
        Cause.NONFINITE,
        Cause.DECAY_ONLY,
        Cause.FROZEN_UNDECLARED,
        Cause.FROZEN,
        Cause.NOT_IN_OPTIMIZER,
        Cause.UPDATE_BELOW_PRECISION,
    } <= seen[Cause]
    assert {
        Finding.MISSING,
        Finding.ZERO,
        Finding.NONFINITE,
        Finding.NOT_IN_OPTIMIZER,
        Finding.FROZEN_UNDECLARED,
    } <= seen[Finding]
    assert {Severity.FAIL, Severity.WARN} <= seen[Severity]


def test_a_loaded_report_reads_as_the_fresh_one(fresh_reports):
    for name, report in fresh_reports.items():
        text = report.to_json()
        loaded = Report.from_dict(json.loads(text))
        for cls, word in _words(loaded):  # plain strings, each the word of a member
            assert type(word) is str or type(word) is cls, (name, word)
            assert cls(word) == word, (name, word)
        assert loaded.to_json() == text, name
        again = Report.from_dict(json.loads(text))
        summary.finalize(again, gradcheck.Policy())
        assert again.to_json() == text, name  # the verdict from plain strings: the same


def test_schema_still_checks_status_words():
    for s in RUN_STATUSES:
        ParamRecord(name="w", shape=[1], numel=1, status=s.value, steps=["nonzero"]).validate()
    with pytest.raises(ValueError, match="unknown status 'Covered'"):
        ParamRecord(name="w", shape=[1], numel=1, status="Covered").validate()
    with pytest.raises(ValueError, match="unknown step status"):
        ParamRecord(name="w", shape=[1], numel=1, steps=["covered"]).validate()
