"""``gradcheck.watch``: the probe sampled every K steps of a user's own loop."""

from __future__ import annotations

import json

import numpy as np
import pytest

import gradcheck
from gradcheck import runtime

jt = runtime.import_jittor()
nn = jt.nn


class Scheduled(nn.Module):
    """A body always used, a branch used only while ``use_branch`` is on (a schedule)."""

    def __init__(self):
        self.body = nn.Linear(4, 8)
        self.branch = nn.Linear(8, 8)
        self.head = nn.Linear(8, 1)
        self.use_branch = True

    def execute(self, x):
        h = nn.relu(self.body(x))
        if self.use_branch:
            h = h + self.branch(h)
        return self.head(h)


@pytest.fixture
def loop():
    """``loop(steps, every, branch_until, watch_kw) -> (watch, patched_at)``: a plain training
    loop with ``optimizer.step(loss)``; the branch is on for steps <= branch_until.
    ``patched_at``: the steps during which Jittor's Optimizer class was patched."""

    def run(steps, every, branch_until, **kw):
        jt.set_global_seed(0)
        model = Scheduled()
        optimizer = nn.SGD(model.parameters(), 0.05)
        rng = np.random.default_rng(0)
        original = jt.optim.Optimizer.__dict__["backward"]
        patched_at = []
        with gradcheck.watch(model, optimizer, every=every, **kw) as w:
            for step in range(1, steps + 1):
                model.use_branch = step <= branch_until
                x = jt.array(rng.normal(size=(8, 4)).astype("float32"))
                y = jt.array(rng.normal(size=(8, 1)).astype("float32"))
                if jt.optim.Optimizer.__dict__["backward"] is not original:
                    patched_at.append(step)
                optimizer.step(((model(x) - y) ** 2).mean())
        assert jt.optim.Optimizer.__dict__["backward"] is original
        return w, patched_at

    return run


def test_samples_every_k_steps_and_nothing_between(loop):
    w, patched_at = loop(steps=35, every=10, branch_until=100)
    assert patched_at == [1, 11, 21, 31]  # wrapped on the sampled steps only
    rep = w.report()
    assert [s.step for s in rep.steps] == [1, 11, 21, 31]
    assert rep.config["mode"] == "watch" and rep.config["steps_seen"] == 35
    assert all(p.status == "covered" for p in rep.params)
    assert not any("stopped_training" in p.flags for p in rep.params)


def test_branch_turned_off_by_a_schedule_stopped_training(loop, tmp_path):
    out = tmp_path / "watch.json"
    w, _ = loop(steps=60, every=10, branch_until=45, output=str(out))
    rep = w.report()
    stopped = {p.name: p.stopped_step for p in rep.params if "stopped_training" in p.flags}
    # the branch's last sample with a gradient is step 41; the next sample, 51, has none
    assert stopped == {"branch.weight": 51, "branch.bias": 51}
    assert rep.verdict.passed  # a warning by default
    assert any(
        "stopped_training: 2 parameters" in line and "from step 51" in line
        for line in rep.verdict.warnings
    )
    data = json.loads(out.read_text())
    assert {p["name"]: p.get("stopped_step") for p in data["params"]}["branch.bias"] == 51
    strict = gradcheck.Policy(fail_on=("missing", "stopped_training"))
    w.policy = strict
    assert not w.report().verdict.passed


def test_report_before_any_sample_is_bad_input():
    model = Scheduled()
    w = gradcheck.watch(model, nn.SGD(model.parameters(), 0.1), every=5, first=3)
    with pytest.raises(gradcheck.workload.WorkloadError, match="no sampled step"):
        w.report()


def test_attach_detach_by_hand(loop):
    jt.set_global_seed(0)
    model = Scheduled()
    optimizer = nn.SGD(model.parameters(), 0.05)
    w = gradcheck.watch(model, optimizer, every=2).attach()
    for _ in range(4):
        optimizer.step((model(jt.ones(2, 4)) ** 2).mean())
    w.detach()
    assert "post_step" not in vars(optimizer)
    assert [s.step for s in w.report().steps] == [1, 3]


def test_two_models_two_optimizers_named_by_the_dict():
    jt.set_global_seed(0)
    gen, disc = nn.Linear(3, 4), nn.Linear(4, 1)
    opt_g, opt_d = nn.Adam(gen.parameters(), 1e-3), nn.Adam(disc.parameters(), 1e-3)
    with gradcheck.watch({"G": gen, "D": disc}, [opt_g, opt_d], every=3) as w:
        for _ in range(7):
            z = jt.randn(5, 3)
            opt_g.step(-disc(gen(z)).mean())
            opt_d.step(disc(gen(z).detach()).mean() - disc(jt.randn(5, 4)).mean())
    rep = w.report()
    assert [s.step for s in rep.steps] == [1, 4, 7]
    # names: the dict's prefixes; phases: the loop's own names for its optimizers
    assert {p.name: p.optimizers for p in rep.params} == {
        "G.weight": ["opt_g"],
        "G.bias": ["opt_g"],
        "D.weight": ["opt_d"],
        "D.bias": ["opt_d"],
    }
    # D's bias enters D's loss as +mean and -mean: exactly zero, as in a WGAN critic
    assert rep.param("D.bias").status == "zero"
    assert all(rep.param(n).status == "covered" for n in ("G.weight", "G.bias", "D.weight"))
