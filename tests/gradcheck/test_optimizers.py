"""``gradcheck.optimizers.rounds_away``: an update rounded away by the optimizer's own float32
arithmetic, told apart from a masked one.  Each case's truth is a counterfactual run of the
same optimizer: the same step with a larger learning rate moves the value (so nothing masks
it: the small one was rounded away), or no learning rate moves it (masked)."""

from __future__ import annotations

import numpy as np
import pytest

import gradcheck
from gradcheck import runtime
from gradcheck.optimizers import rounds_away

jt = runtime.import_jittor()
nn = jt.nn


class Scale(nn.Module):
    """y = w * x, with ``w`` zero (Adam's first step on a tiny gradient) or one."""

    def __init__(self, init: float):
        self.w = jt.full((8,), init)

    def execute(self, x):
        return self.w * x


class KeepsValues(nn.Adam):
    """Adam whose ``post_step`` puts the old values back: a masked update, though its ``step``
    is Adam's own (think of a user's "freeze these rows" hack)."""

    def pre_step(self, loss, retain_graph=False):
        self.kept = [p.numpy().copy() for pg in self.param_groups for p in pg["params"]]
        super().pre_step(loss, retain_graph)

    def post_step(self):
        for p, old in zip((p for pg in self.param_groups for p in pg["params"]), self.kept):
            p.assign(jt.array(old))
        super().post_step()


class OwnStep(nn.Optimizer):
    """An optimizer with a step of its own: its arithmetic is not replayed."""

    def step(self, loss=None, retain_graph=False):
        self.pre_step(loss, retain_graph)
        for pg in self.param_groups:
            for p, g in zip(pg["params"], pg["grads"]):
                p.update(p - g / (g.abs() + 1e-12) * pg.get("lr", self.lr))  # signSGD
        self.post_step()


X = np.linspace(1.0, 2.0, 8).astype("float32")


def one_step(make_opt, init: float, grad_scale: float):
    """One step of ``make_opt(params)`` on ``Scale(init)`` with a gradient ``grad_scale * x``:
    (the model's w, the optimizer, whether w changed)."""
    model = Scale(init)
    opt = make_opt(model.parameters())
    before = model.w.numpy().copy()
    opt.step((model(jt.array(X)) * grad_scale).sum())
    jt.sync_all()
    return model.w, opt, not np.array_equal(model.w.numpy(), before)


CASES = {  # name: (optimizer at a learning rate, small lr, w's initial value, gradient scale)
    # Adam: m * step_size = 1e-10 * 3e-36 is zero even as a subnormal (so in any float mode:
    # whether a Jittor process flushes subnormals depends on how it loaded its kernels), though
    # the move it stands for, about 3e-38 from w = 0, is a normal float32
    "adam": (lambda lr: lambda ps: nn.Adam(ps, lr), 1e-35, 0.0, 1e-9),
    "adamw": (lambda lr: lambda ps: nn.AdamW(ps, lr), 1e-35, 0.0, 1e-9),
    "sgd": (lambda lr: lambda ps: nn.SGD(ps, lr), 1e-30, 1.0, 1.0),  # lr * g < half an ulp
    "momentum": (
        lambda lr: lambda ps: nn.SGD(ps, lr, momentum=0.9, nesterov=True),
        1e-30,
        1.0,
        1.0,
    ),
    "rmsprop": (lambda lr: lambda ps: nn.RMSprop(ps, lr), 1e-30, 1.0, 1.0),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_update_rounded_away_by_the_optimizer(name):
    make, small, init, scale = CASES[name]
    w, opt, moved = one_step(make(small), init, scale)
    assert not moved  # the small step left w as it was ...
    assert one_step(make(1e-3), init, scale)[2]  # ... a larger one moves it: not masked
    assert rounds_away(opt, w) is True


def test_a_step_that_would_move_is_not_rounded_away():
    make, _, init, scale = CASES["adam"]
    w, opt, _ = one_step(make(1e-3), init, scale)
    w.assign(jt.array(np.full(8, init, "float32")))  # as if the update had been undone
    assert rounds_away(opt, w) is False


def test_masked_update_is_never_updated():
    make = lambda ps: KeepsValues(ps, 1e-3)  # noqa: E731
    w, opt, moved = one_step(make, 0.0, 1.0)
    assert not moved and not one_step(lambda ps: KeepsValues(ps, 1.0), 0.0, 1.0)[2]
    assert rounds_away(opt, w) is False
    model = Scale(0.0)
    report = gradcheck.check(
        gradcheck.Workload(
            model,
            jt.array(X),
            lambda m, x: m(x).sum(),
            optimizer=KeepsValues(model.parameters(), 1e-3),
        ),
        steps=2,
    )
    rec = report.param("w")
    assert rec.cause == "never_updated" and "would have moved it" in rec.cause_detail
    assert report.verdict.result == "fail"


def test_adam_tiny_lr_is_below_precision_not_never_updated():
    model = Scale(0.0)
    report = gradcheck.check(
        gradcheck.Workload(
            model,
            jt.array(X),
            lambda m, x: (m(x) * 1e-9).sum(),
            optimizer=nn.Adam(model.parameters(), 1e-35),
        ),
        steps=2,
    )
    rec = report.param("w")
    assert rec.rounded == [True, True] and rec.cause == "update_below_precision"
    assert report.verdict.result == "pass"


def test_an_optimizer_with_its_own_step_is_not_replayed():
    w, opt, moved = one_step(lambda ps: OwnStep(ps, 1e-30), 1.0, 1.0)
    assert not moved and rounds_away(opt, w) is None
