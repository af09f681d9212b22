"""The probe classifies each edge case of the zoo correctly (status and cause)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import gradcheck
from fixtures import zoo
from gradcheck import runtime, status
from gradcheck.workload import WorkloadError

jt = runtime.import_jittor()


@pytest.mark.parametrize("factory", sorted(zoo.EXPECT))
def test_zoo_case_is_classified(factory):
    report = gradcheck.check(getattr(zoo, factory)(), steps=2)
    for name, (want_status, want_cause) in zoo.EXPECT[factory].items():
        rec = report.param(name)
        assert (rec.status, rec.cause) == (want_status, want_cause), (
            name,
            rec.steps,
            rec.cause_detail,
        )


def test_verdict_follows_default_policy():
    assert gradcheck.check(zoo.unused()).verdict.result == "fail"  # missing fails
    assert gradcheck.check(zoo.times_zero()).verdict.result == "fail"  # zero fails too
    assert gradcheck.check(zoo.nan_grad()).verdict.result == "fail"  # nonfinite fails
    assert gradcheck.check(zoo.not_in_optimizer()).verdict.result == "pass"  # only warns
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
    dead = next(t for t in report.loss_terms if t.name == "dead")
    assert dead.reaches == 0
    assert any("'dead' reaches no parameter" in w for w in report.verdict.warnings)


def test_batchnorm_running_stats_are_buffers():
    report = gradcheck.check(zoo.with_bn())
    assert {b.name for b in report.buffers} == {"bn.running_mean", "bn.running_var"}
    assert all(b.changed for b in report.buffers)
    assert "bn.running_mean" not in {p.name for p in report.params}


_WARNINGS_SCRIPT = """
import json, gradcheck
from fixtures import zoo
from fixtures.corpus import generative
out = {}
for name, make in (("eval_only", zoo.eval_only), ("gan", generative.cgan_discriminator_step)):
    r = gradcheck.check(make(), steps=1)
    out[name] = {"warnings": [[w.call, w.index, w.param, w.agrees] for w in r.warnings],
                 "status": {p.name: p.status for p in r.params}}
print("RESULT " + json.dumps(out))
"""


def test_jittor_warnings_are_mapped_to_the_call_that_raised_them(repo_root):
    # Jittor warns once per variable name per process: a fresh process sees every warning
    env = dict(os.environ, PYTHONPATH=f"{repo_root}{os.pathsep}{repo_root / 'tests'}")
    proc = subprocess.run(
        [sys.executable, "-c", _WARNINGS_SCRIPT],
        cwd=repo_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert lines, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    line = lines[0]
    out = json.loads(line[len("RESULT ") :])
    ev = out["eval_only"]["warnings"]
    assert {w[2] for w in ev} == {"eval_head.weight", "eval_head.bias"}
    assert all(w[0] == "optimizer" and w[3] is True for w in ev)
    gan = out["gan"]
    assert gan["warnings"], "the generator outside D's optimizer must make the probe's call warn"
    for call, _index, param, agrees in gan["warnings"]:  # indices into the probe's own list
        assert call == "probe" and param.startswith("generator.") and agrees is True
    assert {p: s for p, s in gan["status"].items() if p.startswith("discriminator.")} and all(
        s == "covered" for p, s in gan["status"].items() if p.startswith("discriminator.")
    )


def test_probe_leaves_the_model_as_handed_over():
    w = zoo.healthy()
    w.model.eval()  # frozen by eval mode, never undone
    w.optimizer = jt.optim.SGD(w.model.parameters(), 0.01)
    report = gradcheck.check(w)
    assert not w.model.is_training()
    assert all(p.is_stop_grad() for p in w.model.parameters())
    assert {(p.status, p.cause) for p in report.params} == {("frozen", "eval_mode")}
    w.train_mode = True
    switched = gradcheck.check(w)
    assert {(p.status, p.cause, p.mode_change) for p in switched.params} == {
        ("covered", "train_mode", "unfrozen")
    }


def test_status_rules():
    assert status.step_status(False, np.ones(2)) == "missing"
    assert status.step_status(True, np.zeros(2)) == "zero"
    assert status.step_status(True, np.array([np.nan])) == "nonfinite"
    assert status.combine(["missing", "nonzero"]) == "nonzero"
    assert status.combine(["nonzero", "nonfinite"]) == "nonfinite"
    assert status.combine([]) == "missing"
    assert status.run_status(["zero", "nonzero", "missing"]) == "covered"


def test_an_unread_parameter_says_what_the_module_calls_tell():
    from gradcheck.explain import cause_of
    from gradcheck.report import ParamRecord

    class Calls:
        def __init__(self, ran):
            self._ran = ran

        def ran(self, module_name):
            return self._ran

    rec = ParamRecord(
        name="head.aux.weight",
        shape=[2],
        numel=2,
        status="missing",
        steps=["missing"],
        read_steps=[False],
        module="head.aux",
    )
    said = {
        ran: cause_of(rec, None, Calls(ran))[1].split(": ", 1)[1] for ran in (False, True, None)
    }
    assert said[False].startswith("its module 'head.aux' never ran in the forward pass")
    assert said[True].startswith("its module 'head.aux' ran, but never read it")
    assert said[None] == "nothing read it" == cause_of(rec, None, None)[1].split(": ", 1)[1]
    rec.reassigned, rec.in_optimizer = True, False  # held by an optimizer: stale_var
    code, sentence = cause_of(rec, None, None)
    assert code == "not_called" and sentence.endswith("than the one the optimizer holds")


def test_same_seed_same_report():
    a = gradcheck.check(zoo.healthy(), steps=2, seed=3)
    b = gradcheck.check(zoo.healthy(), steps=2, seed=3)
    assert [p.grad_norms for p in a.params] == [p.grad_norms for p in b.params]
    assert a.steps[-1].loss == b.steps[-1].loss


def test_bad_loss_is_a_workload_error():
    with pytest.raises(WorkloadError, match="not a scalar"):
        gradcheck.check(zoo.not_scalar())
    with pytest.raises(WorkloadError, match="positive integer"):
        gradcheck.check(zoo.healthy(), steps=0)


def test_a_warning_the_graph_contradicts_is_counted_never_decisive():
    from gradcheck import summary
    from gradcheck.report import WarningRecord

    report = gradcheck.check(zoo.healthy())
    report.warnings.append(
        WarningRecord(
            text="grads[0] 'fc1.weight' doesn't have gradient",
            step=1,
            index=0,
            param="fc1.weight",
            agrees=False,
            call="optimizer",
        )
    )
    summary.finalize(report, gradcheck.Policy())
    assert report.summary.jittor_warnings_disagree == 1
    assert report.param("fc1.weight").status == "covered"
    assert report.verdict.result == "pass"
