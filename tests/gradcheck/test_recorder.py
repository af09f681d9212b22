"""gradcheck.recorder: the derived fields of a parameter record, against a brute-force reading
of its per-step facts, and the same answer whether recorded step by step or re-derived after a
merge replaced the statuses."""

from __future__ import annotations

import random

import pytest

from gradcheck import recorder
from gradcheck.enums import Status
from gradcheck.snapshot import Change

WORDS = [Status.NONZERO, Status.ZERO, Status.MISSING, Status.NONFINITE, Status.FROZEN]


def _recorded(steps, moved, absent=0):
    rec = recorder.new_param("w", (2, 3), 6, absent=absent, module="m")
    for i, (s, m) in enumerate(zip(steps, moved)):
        recorder.record_step(
            rec,
            s,
            float(i) if s != Status.FROZEN else None,
            Change(m, 0.5 if m else 0.0, 2.0 + i),
            lr=0.1,
        )
    return rec


def _truth(steps, moved, numbers):
    """Read the facts by hand: what each derived field must say."""
    real = [s for s in steps if s != Status.ABSENT]
    if not real:
        status = Status.MISSING
    elif set(real) == {Status.FROZEN}:
        status = Status.FROZEN
    elif Status.NONFINITE in real:
        status = Status.NONFINITE
    elif Status.NONZERO in real:
        status = Status.COVERED
    elif Status.ZERO in real:
        status = Status.ZERO
    else:
        status = Status.MISSING
    first = {w: None for w in (Status.NONZERO, Status.NONFINITE)}
    for n, s in zip(numbers, steps):
        if s in first and first[s] is None:
            first[s] = n
    no_grad = {Status.MISSING, Status.ZERO, Status.FROZEN}
    return {
        "status": status,
        "first_nonzero_step": first[Status.NONZERO],
        "first_nonfinite_step": first[Status.NONFINITE],
        "updated": any(moved),
        "moved_without_grad": any(m and s in no_grad for s, m in zip(steps, moved)),
    }


def _derived(rec):
    return {
        k: getattr(rec, k)
        for k in (
            "status",
            "first_nonzero_step",
            "first_nonfinite_step",
            "updated",
            "moved_without_grad",
        )
    }


@pytest.mark.parametrize("seed", range(200))
def test_derived_fields_match_a_hand_reading(seed):
    rnd = random.Random(seed)
    n, absent = rnd.randint(0, 6), rnd.choice([0, 0, 1, 2])
    steps = [rnd.choice(WORDS) for _ in range(n)]
    moved = [rnd.random() < 0.5 for _ in range(n)]
    numbers = sorted(rnd.sample(range(1, 1000), n + absent)) if rnd.random() < 0.5 else None
    rec = _recorded(steps, moved, absent)
    recorder.close([rec], numbers)
    full_steps = [Status.ABSENT] * absent + steps
    assert _derived(rec) == _truth(
        full_steps, [False] * absent + moved, numbers or range(1, n + absent + 1)
    )
    assert rec.grad_norm == (rec.grad_norms[-1] if rec.grad_norms else None)
    assert rec.update_norm == (rec.update_norms[-1] if rec.update_norms else None)
    assert len(rec.steps) == len(rec.lrs) == len(rec.rounded) == len(rec.read_steps) + n


@pytest.mark.parametrize("seed", range(50))
def test_a_merge_rederives_as_a_probe_would_have_recorded(seed):
    """merge replaces a record's statuses with the ranks' merged ones: re-deriving must give
    what recording those statuses from the start gives."""
    rnd = random.Random(seed)
    n = rnd.randint(1, 5)
    moved = [rnd.random() < 0.5 for _ in range(n)]
    local = [rnd.choice(WORDS) for _ in range(n)]
    merged = [rnd.choice(WORDS) for _ in range(n)]
    rec = _recorded(local, moved)
    recorder.close([rec])
    rec.steps = merged
    recorder.derive(rec)
    fresh = _recorded(merged, moved)
    recorder.close([fresh])
    assert _derived(rec) == _derived(fresh)
    assert rec.updated_steps == fresh.updated_steps


def test_close_names_the_loss_terms_that_reach_each_record():
    recs = [_recorded([Status.NONZERO], [True]) for _ in range(3)]
    recorder.close(recs, reach_by_term={"cls": {0, 2}, "box": {2}})
    assert [r.reached_by for r in recs] == [["cls"], [], ["cls", "box"]]
    recorder.close(recs[:1])
    assert recs[0].reached_by == ["cls"]  # no terms traced: left as it was


def test_weight_norm_is_the_value_before_the_first_step_it_existed_on():
    rec = _recorded([Status.NONZERO, Status.ZERO], [True, False], absent=2)
    assert rec.weight_norm == 2.0
    assert rec.steps[:2] == [Status.ABSENT] * 2 and rec.grad_norms[:2] == [None, None]
