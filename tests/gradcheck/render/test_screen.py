"""The one-screen view of a hand-built report: several findings, each grouped by cause with
its first names and fix, a warning, an allowed group as a note, and the next command."""

from __future__ import annotations

import io

from gradcheck.policy import Policy
from gradcheck.render.table import TableRenderer
from gradcheck.report import ParamRecord, Report, StepRecord
from gradcheck.summary import finalize, next_command


def _rec(name, status, cause=None, detail=None, **kw):
    step = {"covered": "nonzero"}.get(status, status)
    return ParamRecord(
        name=name,
        shape=[2, 2],
        numel=4,
        status=status,
        steps=[step, step],
        grad_norms=[1.0, 1.0],
        first_nonzero_step=1 if status == "covered" else None,
        requires_grad=status != "frozen",
        module=name.rpartition(".")[0],
        cause=cause,
        cause_detail=detail,
        weight_norm=1.0,
        **kw,
    )


def make_report() -> Report:
    params = [_rec(f"body.{i}.weight", "covered") for i in range(3)]
    params += [
        _rec(f"aux.{i}.weight", "missing", "not_called", "its module never ran") for i in range(5)
    ]
    params += [
        _rec("side.weight", "missing", "cut", "no path"),
        _rec(
            "gate.weight",
            "zero",
            "zero_gradient",
            "reaches the loss, but its gradient is exactly zero: likely a zero "
            "multiplier, a mask or a saturated activation on its path",
        ),
        _rec(
            "extra.weight",
            "zero",
            "zero_gradient",
            "reaches the loss, but its "
            "gradient is exactly zero: no positives on level 3 (try a larger --img-size)",
        ),
        _rec("late.weight", "covered", in_optimizer=False, cause="not_in_optimizer"),
        _rec("stage2.weight", "missing", "cut", "no path"),
    ]
    rep = Report(
        config={
            "model": "pkg.mod:make",
            "steps": 2,
            "seed": 0,
            "img_size": 320,
            "settings_source": {
                "model": "flag",
                "steps": "config",
                "img_size": "flag",
                "seed": "tool default",
            },
        },
        environment={"host": "masked"},
        params=params,
        steps=[StepRecord(step=1), StepRecord(step=2)],
        created="2026-01-01T00:00:00+00:00",
    )
    return finalize(rep, Policy(allow_uncovered={"stage2.*": "trained in stage 2"}))


def test_screen_groups_findings_by_cause(golden):
    rep = make_report()
    out = io.StringIO()
    TableRenderer().report(rep, out)
    golden(out.getvalue())
    assert len(out.getvalue().splitlines()) <= 25
    causes = [(g.severity, g.finding, g.cause, g.count) for g in rep.verdict.groups]
    assert causes == [
        ("fail", "missing", "not_called", 5),
        ("fail", "missing", "cut", 1),
        ("fail", "zero", "zero_gradient", 1),
        ("fail", "zero", "zero_gradient", 1),
        ("warn", "not_in_optimizer", "not_in_optimizer", 1),
        ("allowed", "missing", "missing", 1),
    ]
    assert rep.verdict.groups[3].fix == "try a larger --img-size"
    # nothing to rerun with: the next command shows every parameter, flags kept
    assert next_command(rep) == "gradcheck run --model pkg.mod:make --img-size 320 --verbose"
