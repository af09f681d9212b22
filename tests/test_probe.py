"""The probe classifies each edge case of the zoo correctly (status and cause)."""

from __future__ import annotations

import pytest

import gradcheck
import zoo
from gradcheck.workload import WorkloadError


@pytest.mark.parametrize("factory", sorted(zoo.EXPECT))
def test_zoo_case_is_classified(factory):
    report = gradcheck.check(getattr(zoo, factory)(), steps=2)
    for name, (status, cause) in zoo.EXPECT[factory].items():
        rec = report.param(name)
        assert (rec.status, rec.cause) == (status, cause), (name, rec.steps, rec.cause_detail)


def test_verdict_follows_default_policy():
    assert gradcheck.check(zoo.unused()).verdict.result == "fail"       # missing fails
    assert gradcheck.check(zoo.times_zero()).verdict.result == "fail"   # zero fails too
    assert gradcheck.check(zoo.nan_grad()).verdict.result == "fail"     # nonfinite fails
    assert gradcheck.check(zoo.not_in_optimizer()).verdict.result == "pass"   # only warns
    strict = gradcheck.Policy(strict=True)
    assert gradcheck.check(zoo.not_in_optimizer(), policy=strict).verdict.result == "fail"


def test_shared_parameter_listed_once_with_alias():
    report = gradcheck.check(zoo.shared())
    names = [p.name for p in report.params]
    assert names.count("a.weight") == 1 and "b.weight" not in names
    assert report.param("a.weight").aliases == ["b.weight"]


def test_gradient_first_appears_at_step_2():
    report = gradcheck.check(zoo.late_gradient(), steps=3)
    rec = report.param("fc.weight")
    assert rec.steps[:2] == ["zero", "nonzero"]
    assert rec.first_nonzero_step == 2
    one = gradcheck.check(zoo.late_gradient(), steps=1)
    assert one.param("fc.weight").status == "zero"


def test_decay_moves_a_parameter_without_gradient():
    rec = gradcheck.check(zoo.decay_only(), steps=1).param("side.weight")
    assert rec.updated and rec.moved_without_grad and rec.steps == ["missing"]
    plain = gradcheck.check(zoo.detached(), steps=1).param("side.weight")
    assert not plain.updated and plain.cause == "cut"


def test_update_below_precision_has_gradient_but_no_change():
    rec = gradcheck.check(zoo.tiny_update(), steps=1).param("tiny")
    assert rec.steps == ["nonzero"] and rec.updated_steps == [False]
    assert 0 < rec.grad_norm < 1e-10


def test_not_in_optimizer_gets_gradient_but_is_not_updated():
    report = gradcheck.check(zoo.not_in_optimizer(), steps=1)
    rec = report.param("fc2.weight")
    assert not rec.in_optimizer and rec.steps == ["nonzero"] and not rec.updated
    assert any("not_in_optimizer" in w for w in report.verdict.warnings)


def test_loss_terms_reach_and_dead_term():
    report = gradcheck.check(zoo.multi_term())
    assert report.param("cls.weight").reached_by == ["cls"]
    assert report.param("reg.weight").reached_by == ["reg"]
    assert sorted(report.param("trunk.weight").reached_by) == ["cls", "reg"]
    dead = next(t for t in report.loss_terms if t["name"] == "dead")
    assert dead["reaches"] == 0
    assert any("'dead' reaches no parameter" in w for w in report.verdict.warnings)


def test_batchnorm_running_stats_are_buffers():
    report = gradcheck.check(zoo.with_bn())
    assert {b.name for b in report.buffers} == {"bn.running_mean", "bn.running_var"}
    assert all(b.changed for b in report.buffers)
    assert "bn.running_mean" not in {p.name for p in report.params}


def test_jittor_warnings_are_mapped_to_names():
    report = gradcheck.check(zoo.eval_only())
    named = {w.param for w in report.warnings}
    # Jittor warns once per name per process: if it warned here, it names the right param
    assert named <= {"eval_head.weight", "eval_head.bias"}
    assert all(w.agrees for w in report.warnings)


def test_same_seed_same_report():
    a = gradcheck.check(zoo.healthy(), steps=2, seed=3)
    b = gradcheck.check(zoo.healthy(), steps=2, seed=3)
    assert [p.grad_norms for p in a.params] == [p.grad_norms for p in b.params]
    assert a.steps[-1]["loss"] == b.steps[-1]["loss"]


def test_bad_loss_is_a_workload_error():
    with pytest.raises(WorkloadError, match="not a scalar"):
        gradcheck.check(zoo.not_scalar())
    with pytest.raises(WorkloadError, match="positive integer"):
        gradcheck.check(zoo.healthy(), steps=0)
