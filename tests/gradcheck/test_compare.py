"""compare: keyed by name, regressions defined as documented, --allow, config warnings."""

from __future__ import annotations

from fixtures.reports import make_report
from gradcheck.compare import compare


def test_regressions_and_changes():
    before = make_report(**{"a.w": "covered", "b.w": "covered", "c.w": "zero", "gone.w": "covered"})
    after = make_report(
        **{
            "b.w": "missing",
            "a.w": "covered",
            "c.w": "covered",
            "new.w": "zero",
            "new2.w": "covered",
        }
    )
    cmp = compare(before, after)
    assert {c.name for c in cmp.regressions} == {"b.w", "new.w"}
    assert [c.name for c in cmp.removed] == ["gone.w"]
    assert {c.name for c in cmp.added} == {"new.w", "new2.w"}
    assert {(c.name, c.before, c.after) for c in cmp.changed} == {
        ("b.w", "covered", "missing"),
        ("c.w", "zero", "covered"),
    }
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
    assert not compare(before, after).ok  # undeclared frozen newcomer
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


def _flag(report, name, **fields):
    rec = report.param(name)
    for k, v in fields.items():
        setattr(rec, k, v)
    return report


def test_covered_to_frozen_without_reason_is_a_regression():
    before = make_report(**{"a.w": "covered", "b.w": "covered"})
    after = make_report(**{"a.w": "covered", "b.w": "frozen"})
    cmp = compare(before, after)
    assert [(c.name, c.kind) for c in cmp.regressions] == [("b.w", "frozen_undeclared")]
    after.param("b.w").frozen_reason = "frozen on purpose"
    cmp = compare(before, after)
    assert cmp.ok and [(c.name, c.kind) for c in cmp.changed] == [("b.w", "status")]
    assert compare(before, make_report(**{"a.w": "covered", "b.w": "frozen"}), allow=("b.*",)).ok


def test_leaving_the_optimizer_is_a_regression():
    before = make_report(**{"a.w": "covered", "b.w": "covered"})
    after = _flag(make_report(**{"a.w": "covered", "b.w": "covered"}), "b.w", in_optimizer=False)
    cmp = compare(before, after)
    assert [(c.name, c.kind, c.before, c.after) for c in cmp.regressions] == [
        ("b.w", "left_optimizer", "in optimizer", "not in optimizer")
    ]
    assert cmp.unchanged == 1
    assert compare(before, after, allow=("b.w",)).ok
    # a frozen parameter is outside the optimizer by design: no regression there
    frozen_before = _flag(make_report(**{"f.w": "frozen"}), "f.w", in_optimizer=True)
    frozen_after = _flag(make_report(**{"f.w": "frozen"}), "f.w", in_optimizer=False)
    assert compare(frozen_before, frozen_after).ok


def test_no_longer_updated_is_a_regression_once():
    before = make_report(**{"a.w": "covered", "b.w": "covered"})
    for p in before.params:
        p.updated = True
    after = _flag(make_report(**{"a.w": "covered", "b.w": "covered"}), "a.w", updated=True)
    cmp = compare(before, after)
    assert [(c.name, c.kind) for c in cmp.regressions] == [("b.w", "no_longer_updated")]
    # lost its gradient and so never moved: one regression, the gradient, not two
    lost = _flag(make_report(**{"a.w": "covered", "b.w": "missing"}), "a.w", updated=True)
    assert [(c.name, c.kind) for c in compare(before, lost).regressions] == [
        ("b.w", "lost_gradient")
    ]


def test_later_first_gradient_and_removal_are_changes_not_regressions():
    before = _flag(
        make_report(**{"a.w": "covered", "gone.w": "covered"}), "a.w", first_nonzero_step=1
    )
    after = _flag(make_report(**{"a.w": "covered"}), "a.w", first_nonzero_step=3)
    cmp = compare(before, after)
    assert cmp.ok
    assert [(c.name, c.kind, c.before, c.after) for c in cmp.changed] == [
        ("a.w", "later_first_step", "first gradient at step 1", "first gradient at step 3")
    ]
    assert [(c.name, c.kind) for c in cmp.removed] == [("gone.w", "removed")]
    earlier = _flag(make_report(**{"a.w": "covered"}), "a.w", first_nonzero_step=1)
    assert not compare(after, earlier).changed


def test_kinds_of_the_existing_regressions():
    before = make_report(**{"a.w": "covered"})
    after = make_report(**{"a.w": "nonfinite", "new.w": "missing", "new2.w": "frozen"})
    kinds = {(c.name, c.kind) for c in compare(before, after).regressions}
    assert kinds == {
        ("a.w", "lost_gradient"),
        ("new.w", "new_uncovered"),
        ("new2.w", "new_uncovered"),
    }


def test_gaining_untracked_or_never_updated_is_a_regression():
    before = make_report(**{"blocks.w": "covered", "body.w": "covered", "x.w": "covered"})
    after = make_report(
        **{"blocks.w": "covered", "body.w": "covered", "x.w": "covered", "lazy.w": "covered"}
    )
    blocks, body, lazy = after.param("blocks.w"), after.param("body.w"), after.param("lazy.w")
    blocks.in_optimizer, blocks.tracked = False, False  # moved into a plain list
    body.cause = "never_updated"  # its group's lr became 0
    lazy.in_optimizer, lazy.tracked = False, False  # created after the optimizer
    cmp = compare(before, after)
    kinds = {c.name: c.kind for c in cmp.regressions}
    assert kinds == {
        "blocks.w": "left_optimizer",
        "body.w": "new_finding",
        "lazy.w": "new_uncovered",
    }
    assert compare(after, after).ok  # unchanged findings pass


def test_fields_the_checks_do_not_read_change_nothing():
    """compare skips a parameter whose read fields are equal in both reports: it is sound
    only while no check reads any other field. Each other field, changed alone, gives no
    change through the full checks."""
    import dataclasses

    from gradcheck.compare import _READ, _read_changes

    read = set(_READ.__reduce__()[1])
    base = make_report(**{"a.w": "covered"}).params[0]
    other = {bool: lambda v: not v, int: lambda v: v + 7, float: lambda v: v * 3 + 1}
    changed = 0
    for f in dataclasses.fields(base):
        if f.name in read:
            continue
        value = getattr(base, f.name)
        if isinstance(value, list):
            new = [*value, "x"] if not value or isinstance(value[0], str) else value[::-1] + [9.0]
        elif value is None:
            new = 3 if "step" in f.name else "something"
        else:
            new = other.get(type(value), lambda v: f"{v}-other")(value)
        assert new != value, f.name
        after = dataclasses.replace(base, **{f.name: new})
        assert _read_changes(base, after) == [], f.name
        changed += 1
    assert changed >= 20  # every field the checks do not read was tried
