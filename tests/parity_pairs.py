"""Tiny PyTorch originals and Jittor ports of them, faithful and with one planted bug each.

The model: a stem conv, two residual blocks (conv -> BatchNorm -> ReLU, plus the input),
a global average pool and two linear heads (``fc`` and ``aux``, both in the loss).  Every
port is built by :func:`port` with one ``bug``:

=================  =============================================================
``none``           a faithful port
``skip_layer``     ``execute`` never calls ``blocks.1`` (the layer exists, unused)
``activation``     ``blocks.1`` uses a sigmoid where the original has a ReLU
``bn_eps``         ``blocks.0.bn`` has eps 1e-1 where the original has 1e-5
``frozen``         ``fc.weight`` frozen by mistake (``stop_grad``)
``transposed``     ``aux`` stores its weight as (in, out) and computes ``x @ w``
``no_residual``    ``blocks.0`` lost the residual branch of its ``execute``
``renamed``        faithful, but ``blocks`` is called ``body`` (needs a rename rule)
=================  =============================================================

Factories for ``gradcheck align`` / ``gradcheck run``: ``original()`` and ``port_<bug>()``.
"""

from __future__ import annotations

import numpy as np

import gradcheck
from gradcheck import runtime
from gradcheck.parity import torchenv

jt = runtime.import_jittor()
torch = torchenv.import_torch()
jnn = jt.nn
tnn = torch.nn

BUGS = ("none", "skip_layer", "activation", "bn_eps", "frozen", "transposed", "no_residual")
C, CLASSES = 6, 3


def batch_np(seed: int = 0):
    rng = np.random.RandomState(seed)
    x = rng.standard_normal((4, 3, 8, 8)).astype(np.float32)
    y = rng.randint(0, CLASSES, size=(4,)).astype(np.int64)
    return x, y


# ------------------------------------------------------------------ the original (torch)
class TBlock(tnn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = tnn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn = tnn.BatchNorm2d(c)
        self.act = tnn.ReLU()

    def forward(self, x):
        return x + self.act(self.bn(self.conv(x)))


class TNet(tnn.Module):
    def __init__(self):
        super().__init__()
        self.stem = tnn.Conv2d(3, C, 3, padding=1)
        self.blocks = tnn.Sequential(TBlock(C), TBlock(C))
        self.fc = tnn.Linear(C, CLASSES)
        self.aux = tnn.Linear(C, CLASSES + 1)

    def forward(self, x):
        h = self.blocks(self.stem(x)).mean(dim=(2, 3))
        return self.fc(h), self.aux(h)


def _torch_loss(model, batch):
    x, y = batch
    logits, aux = model(x)
    ce = tnn.functional.cross_entropy(logits, y)
    reg = 0.1 * (aux ** 2).mean()
    return ce + reg, {"ce": ce, "reg": reg}


def original():
    torch.manual_seed(0)
    model = TNet()
    x, y = batch_np()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return gradcheck.Workload(model, (torch.from_numpy(x), torch.from_numpy(y)), _torch_loss,
                              optimizer=opt, name="tiny_original")


# ------------------------------------------------------------------ the ports (jittor)
class Sigmoid(jnn.Module):
    def execute(self, x):
        return jt.sigmoid(x)


class JBlock(jnn.Module):
    def __init__(self, c, act="relu", eps=1e-5, residual=True):
        super().__init__()
        self.conv = jnn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn = jnn.BatchNorm2d(c, eps=eps)
        self.act = jnn.ReLU() if act == "relu" else Sigmoid()
        self.residual = residual

    def execute(self, x):
        y = self.act(self.bn(self.conv(x)))
        return x + y if self.residual else y


class LinearT(jnn.Module):
    """A Linear that stores its weight as (in, out): a porting slip."""

    def __init__(self, cin, cout):
        super().__init__()
        self.weight = jt.randn(cin, cout) * 0.1
        self.bias = jt.zeros(cout)

    def execute(self, x):
        return jnn.matmul(x, self.weight) + self.bias


class JNet(jnn.Module):
    def __init__(self, bug="none"):
        super().__init__()
        self.bug = bug
        self.stem = jnn.Conv2d(3, C, 3, padding=1)
        blocks = jnn.Sequential(
            JBlock(C, eps=1e-1 if bug == "bn_eps" else 1e-5, residual=bug != "no_residual"),
            JBlock(C, act="sigmoid" if bug == "activation" else "relu"))
        if bug == "renamed":     # not a bug: a port that names its modules its own way
            self.body = blocks
        else:
            self.blocks = blocks
        self.fc = jnn.Linear(C, CLASSES)
        self.aux = LinearT(C, CLASSES + 1) if bug == "transposed" else jnn.Linear(C, CLASSES + 1)

    def execute(self, x):
        h = self.stem(x)
        blocks = self.body if self.bug == "renamed" else self.blocks
        h = blocks[0](h) if self.bug == "skip_layer" else blocks(h)
        h = h.mean(dims=(2, 3))
        return self.fc(h), self.aux(h)


def _jittor_loss(model, batch):
    x, y = batch
    logits, aux = model(x)
    ce = jnn.cross_entropy_loss(logits, y)
    reg = 0.1 * (aux ** 2).mean()
    return ce + reg, {"ce": ce, "reg": reg}


def port(bug: str = "none"):
    jt.set_global_seed(1)
    model = JNet(bug)
    if bug == "frozen":
        model.fc.weight.stop_grad()
    x, y = batch_np()
    trainable = [p for p in model.parameters() if not p.is_stop_grad()]
    opt = jt.optim.SGD(trainable, lr=0.1, momentum=0.9)
    return gradcheck.Workload(model, (jt.array(x), jt.array(y)), _jittor_loss, optimizer=opt,
                              name=f"tiny_port_{bug}")


def _factory(bug):
    def make():
        return port(bug)
    make.__name__ = f"port_{bug}"
    return make


for _bug in BUGS:
    globals()[f"port_{_bug}"] = _factory(_bug)


# ------------------------------------------- float32 noise that a model amplifies (float64)
# ``h = relu(x @ (a - b))`` with ``b`` within 1e-6 of ``a``: the original subtracts the
# weights first (exact in float32: Sterbenz), the faithful port ``relu(x @ a - x @ b)``
# subtracts two ~4e3-sized products whose float32 rounding (~1e-3) is as large as ``h``'s
# pre-activation itself, so its ReLU mask flips on many elements: the port's float32
# gradients land far beyond the original's float32 noise floor although it computes the
# same function -- as the port's float64 rerun shows.  ``cancel_bug`` adds a real
# difference hidden in that noise: ``b`` scaled by 1 + 2e-7.
CANCEL = ("cancel", "cancel_bug")


def _cancel_batch():
    rng = np.random.RandomState(3)
    return rng.standard_normal((16, 24)).astype(np.float32), \
        rng.standard_normal((16, 1)).astype(np.float32)


def _cancel_weights():
    rng = np.random.RandomState(4)
    a = (1000.0 * rng.standard_normal((24, 32))).astype(np.float32)
    b = (a + 1e-3 * rng.standard_normal((24, 32))).astype(np.float32)
    return a, b


class TCancel(tnn.Module):
    def __init__(self):
        super().__init__()
        a, b = _cancel_weights()
        self.a, self.b = tnn.Parameter(torch.from_numpy(a)), tnn.Parameter(torch.from_numpy(b))
        self.act = tnn.ReLU()
        self.head = tnn.Linear(32, 1)

    def forward(self, x):
        return self.head(self.act(x @ (self.a - self.b)))


class JCancel(jnn.Module):
    def __init__(self, bug=False):
        super().__init__()
        a, b = _cancel_weights()
        self.a, self.b = jt.array(a), jt.array(b)
        self.act = jnn.ReLU()
        self.head = jnn.Linear(32, 1)
        self.scale = 1.0 + 2e-7 if bug else 1.0

    def execute(self, x):
        return self.head(self.act(jnn.matmul(x, self.a) - jnn.matmul(x, self.b) * self.scale))


def original_cancel():
    torch.manual_seed(0)
    x, y = _cancel_batch()
    model = TCancel()
    return gradcheck.Workload(model, (torch.from_numpy(x), torch.from_numpy(y)),
                              lambda m, b: ((m(b[0]) - b[1]) ** 2).mean(),
                              optimizer=torch.optim.SGD(model.parameters(), lr=1e-3),
                              name="cancel_original")


def port_cancel(bug: bool = False):
    jt.set_global_seed(1)
    x, y = _cancel_batch()
    model = JCancel(bug)
    return gradcheck.Workload(model, (jt.array(x), jt.array(y)),
                              lambda m, b: ((m(b[0]) - b[1]) ** 2).mean(),
                              optimizer=jt.optim.SGD(model.parameters(), lr=1e-3),
                              name="cancel_bug_port" if bug else "cancel_port")


def port_cancel_bug():
    return port_cancel(bug=True)
