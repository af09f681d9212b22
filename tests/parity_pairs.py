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

import gradcheck  # noqa: F401  (Jittor before torch)
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
