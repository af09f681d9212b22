"""compare: keyed by name, regressions defined as documented, --allow, config warnings."""

from __future__ import annotations

from gradcheck.compare import compare
from test_report_io import make_report


def test_regressions_and_changes():
    before = make_report(**{"a.w": "covered", "b.w": "covered", "c.w": "zero", "gone.w": "covered"})
    after = make_report(**{"b.w": "missing", "a.w": "covered", "c.w": "covered",
                           "new.w": "zero", "new2.w": "covered"})
    cmp = compare(before, after)
    assert {c.name for c in cmp.regressions} == {"b.w", "new.w"}
    assert [c.name for c in cmp.removed] == ["gone.w"]
    assert {c.name for c in cmp.added} == {"new.w", "new2.w"}
    assert {(c.name, c.before, c.after) for c in cmp.changed} == {
        ("b.w", "covered", "missing"), ("c.w", "zero", "covered")}
    assert not cmp.ok


def test_order_does_not_matter():
    a = make_report(**{"x.w": "covered", "y.w": "missing"})
    b = make_report(**{"y.w": "missing", "x.w": "covered"})
    cmp = compare(a, b)
    assert cmp.ok and cmp.unchanged == 2 and not cmp.changed


def test_allow_glob_accepts_a_regression():
    before = make_report(**{"head.w": "covered", "body.w": "covered"})
    after = make_report(**{"head.w": "zero", "body.w": "covered"})
    cmp = compare(before, after, allow=("head.*",))
    assert cmp.ok and [c.name for c in cmp.allowed] == ["head.w"]
    unused = compare(before, after, allow=("nothing.*",))
    assert not unused.ok and any("matches no change" in w for w in unused.warnings)


def test_new_declared_frozen_is_not_a_regression():
    before = make_report(**{"a.w": "covered"})
    after = make_report(**{"a.w": "covered", "proj.w": "frozen"})
    assert not compare(before, after).ok           # undeclared frozen newcomer
    after.param("proj.w").frozen_reason = "fixed projection"
    assert compare(before, after).ok


def test_different_models_warn():
    a = make_report(**{"a.w": "covered"})
    b = make_report(**{"a.w": "covered"})
    b.config["model"] = "other"
    assert any("different models" in w for w in compare(a, b).warnings)
    c = make_report(**{"a.w": "covered"})
    c.config["steps"] = 5
    assert any("different settings" in w for w in compare(a, c).warnings)
