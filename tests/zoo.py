"""A zoo of tiny models, one per edge case the probe must classify.

Each factory takes no arguments and returns a :class:`gradcheck.Workload`, so each is also a
valid ``gradcheck run --model tests/zoo.py:<factory>``.  The expected classification sits
next to each factory in ``EXPECT`` (run status and cause per parameter name).
"""

from __future__ import annotations

import numpy as np

import gradcheck
from gradcheck import runtime

jt = runtime.import_jittor()
nn = jt.nn


def _x(n=8, d=4, seed=0):
    return jt.array(np.random.default_rng(seed).normal(size=(n, d)).astype("float32"))


def _sq(v):
    return (v * v).sum()


class Unused(nn.Module):
    def __init__(self):
        self.used = nn.Linear(4, 4)
        self.unused = nn.Linear(4, 4)

    def execute(self, x):
        return self.used(x)


def unused():
    return gradcheck.Workload(Unused(), _x(), lambda m, b: _sq(m(b)))


class StopGrad(nn.Module):
    def __init__(self):
        self.fc = nn.Linear(4, 4)
        self.scale = jt.ones(4).stop_grad()   # frozen, used in the forward

    def execute(self, x):
        return self.fc(x) * self.scale


def stop_grad():
    return gradcheck.Workload(StopGrad(), _x(), lambda m, b: _sq(m(b)))


def stop_grad_declared():
    w = stop_grad()
    w.frozen = {"scale": "a fixed scale, on purpose"}
    return w


class Detached(nn.Module):
    def __init__(self):
        self.main = nn.Linear(4, 4)
        self.side = nn.Linear(4, 4)

    def execute(self, x):
        return self.main(x) + self.side(x).detach()


def detached():
    return gradcheck.Workload(Detached(), _x(), lambda m, b: _sq(m(b)))


class NoGradBranch(nn.Module):
    def __init__(self):
        self.main = nn.Linear(4, 4)
        self.side = nn.Linear(4, 4)

    def execute(self, x):
        with jt.no_grad():
            s = self.side(x)                 # read, but no gradient can flow back
        return self.main(x) + s


def no_grad_branch():
    return gradcheck.Workload(NoGradBranch(), _x(), lambda m, b: _sq(m(b)))


class EvalOnly(nn.Module):
    def __init__(self):
        self.body = nn.Linear(4, 4)
        self.eval_head = nn.Linear(4, 4)   # e.g. a deploy-time branch

    def execute(self, x):
        y = self.body(x)
        return y if self.is_training() else self.eval_head(y)


def eval_only():
    return gradcheck.Workload(EvalOnly(), _x(), lambda m, b: _sq(m(b)))


class TimesZero(nn.Module):
    def __init__(self):
        self.fc = nn.Linear(4, 4)
        self.muted = nn.Linear(4, 4)

    def execute(self, x):
        return self.fc(x) + 0.0 * self.muted(x)


def times_zero():
    return gradcheck.Workload(TimesZero(), _x(), lambda m, b: _sq(m(b)))


class Shared(nn.Module):
    def __init__(self):
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 4)
        self.b.weight = self.a.weight      # tied weights: one parameter, two names

    def execute(self, x):
        return self.b(self.a(x))


def shared():
    return gradcheck.Workload(Shared(), _x(), lambda m, b: _sq(m(b)))


class TwoLayers(nn.Module):
    def __init__(self):
        self.fc1 = nn.Linear(4, 4)
        self.fc2 = nn.Linear(4, 4)

    def execute(self, x):
        return self.fc2(self.fc1(x))


def not_in_optimizer():
    m = TwoLayers()
    opt = jt.optim.SGD([m.fc1.weight, m.fc1.bias], 0.01)   # fc2 forgotten
    return gradcheck.Workload(m, _x(), lambda m, b: _sq(m(b)), optimizer=opt)


class NanGrad(nn.Module):
    def __init__(self):
        self.fc = nn.Linear(4, 4)
        self.bad = jt.array(np.full((4,), -1.0, "float32"))   # sqrt(-1): NaN gradient

    def execute(self, x):
        return self.fc(x), jt.sqrt(self.bad)


def nan_grad():
    def loss(m, b):
        y, s = m(b)
        return _sq(y) + 0.0 * s.sum()
    return gradcheck.Workload(NanGrad(), _x(), loss)


class Tiny(nn.Module):
    def __init__(self):
        self.fc = nn.Linear(4, 4)
        self.tiny = jt.ones(4)

    def execute(self, x):
        return self.fc(x), self.tiny


def tiny_update():
    def loss(m, b):
        y, t = m(b)
        return _sq(y) + 1e-12 * t.sum()    # grad 1e-12 * lr 0.01 << float32 eps at 1.0
    return gradcheck.Workload(Tiny(), _x(), loss)


def decay_only():
    m = Detached()
    opt = jt.optim.SGD(m.parameters(), 0.01, weight_decay=0.1)
    return gradcheck.Workload(m, _x(), lambda m, b: _sq(m(b)), optimizer=opt)


class LateGate(nn.Module):
    """``out = gate * fc(x)`` with the gate starting at exactly zero: fc's gradient is zero on
    step 1 and appears on step 2, once the gate has moved."""

    def __init__(self):
        self.fc = nn.Linear(4, 4)
        self.gate = jt.zeros(4)

    def execute(self, x):
        return self.fc(x) * self.gate


def late_gradient():
    def loss(m, b):
        return ((m(b) - 1.0) ** 2).sum()
    return gradcheck.Workload(LateGate(), _x(), loss)


class Heads(nn.Module):
    def __init__(self):
        self.trunk = nn.Linear(4, 4)
        self.cls = nn.Linear(4, 3)
        self.reg = nn.Linear(4, 2)

    def execute(self, x):
        h = self.trunk(x)
        return self.cls(h), self.reg(h)


def multi_term():
    def loss(m, b):
        c, r = m(b)
        cls = _sq(c)
        reg = 0.5 * _sq(r)
        dead = jt.array(0.0)               # a term wired to nothing: the bug to flag
        return cls + reg + dead, {"cls": cls, "reg": reg, "dead": dead}
    return gradcheck.Workload(Heads(), _x(), loss)


class WithBN(nn.Module):
    def __init__(self):
        self.fc = nn.Linear(4, 4)
        self.bn = nn.BatchNorm1d(4)

    def execute(self, x):
        return self.bn(self.fc(x))


def with_bn():
    return gradcheck.Workload(WithBN(), _x(), lambda m, b: _sq(m(b) - 1.0))


def healthy():
    return gradcheck.Workload(TwoLayers(), _x(), lambda m, b: _sq(m(b)))


# ---------------------------------------------------------------- bad workloads
def not_scalar():
    return gradcheck.Workload(TwoLayers(), _x(), lambda m, b: m(b))


def raises():
    raise RuntimeError("cannot build the model: weights file missing")


def not_a_workload():
    return TwoLayers()


EXPECT = {
    "unused": {"unused.weight": ("missing", "not_called"), "used.weight": ("covered", None)},
    "stop_grad": {"scale": ("frozen", "frozen_undeclared"), "fc.weight": ("covered", None)},
    "stop_grad_declared": {"scale": ("frozen", "frozen")},
    "detached": {"side.weight": ("missing", "cut"), "main.weight": ("covered", None)},
    "eval_only": {"eval_head.weight": ("missing", "not_called"), "body.weight": ("covered", None)},
    "no_grad_branch": {"side.weight": ("missing", "cut"), "main.weight": ("covered", None)},
    "times_zero": {"muted.weight": ("zero", "zero_gradient"), "fc.weight": ("covered", None)},
    "shared": {"a.weight": ("covered", None), "b.bias": ("covered", None)},
    "not_in_optimizer": {"fc2.weight": ("covered", "not_in_optimizer"),
                         "fc1.weight": ("covered", None)},
    "nan_grad": {"bad": ("nonfinite", "nonfinite"), "fc.weight": ("covered", None)},
    "tiny_update": {"tiny": ("covered", "update_below_precision"), "fc.weight": ("covered", None)},
    "decay_only": {"side.weight": ("missing", "decay_only"), "main.weight": ("covered", None)},
    "late_gradient": {"fc.weight": ("covered", None), "gate": ("covered", None)},
    "multi_term": {"trunk.weight": ("covered", None), "cls.weight": ("covered", None)},
    "with_bn": {"fc.weight": ("covered", None), "bn.weight": ("covered", None)},
    "healthy": {"fc1.weight": ("covered", None), "fc2.weight": ("covered", None)},
}
