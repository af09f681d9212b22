"""Tiny workloads for the MPI tests (``gradcheck run --nproc 2 --model tests/mpi_zoo.py:<name>``).

Each one plants one across-ranks problem; ``covered`` plants none.  They read the rank from
``jittor.rank``, as a real data-parallel training script would.
"""

from __future__ import annotations

import numpy as np

import gradcheck
from gradcheck import runtime

jt = runtime.import_jittor()
nn = jt.nn


def _sq(v):
    return (v * v).sum()


def _halves(n=4, d=4):
    """A batch whose first half is positive and second half negative: under 2 ranks, rank 0
    gets the positive rows and rank 1 the negative ones."""
    x = np.abs(np.random.default_rng(0).normal(size=(n, d))).astype("float32") + 0.1
    x[n // 2:] *= -1
    return jt.array(x)


class Net(nn.Module):
    def __init__(self):
        self.body = nn.Linear(4, 4)
        self.head = nn.Linear(4, 2)

    def execute(self, x):
        return self.head(self.body(x))


def covered():
    """Every parameter is reached on every rank: no finding."""
    return gradcheck.Workload(Net(), _halves(), lambda m, b: _sq(m(b)))


class Branch(nn.Module):
    def __init__(self):
        self.body = nn.Linear(4, 4)
        self.pos = nn.Linear(4, 4)
        self.neg = nn.Linear(4, 4)

    def execute(self, x):
        h = self.body(x)
        # data-dependent control flow: which branch runs depends on this rank's shard
        return self.pos(h) if float(x.sum().item()) > 0 else self.neg(h)


def data_branch():
    """``pos`` is covered on rank 0 only, ``neg`` on rank 1 only: rank_divergent."""
    return gradcheck.Workload(Branch(), lambda step: _halves(), lambda m, b: _sq(m(b)))


def optimizer_by_rank():
    """Rank 1 leaves ``head.bias`` out of its optimizer: optimizer_mismatch."""
    model = Net()
    params = [p for n, p in model.named_parameters() if not (jt.rank == 1 and n == "head.bias")]
    return gradcheck.Workload(model, _halves(), lambda m, b: _sq(m(b)),
                              optimizer=jt.optim.SGD(params, 0.01))


def lr_by_rank():
    """The same members everywhere, but rank 1 scales the head's learning rate: the
    all-reduced gradients agree, the updates do not: replicas_diverged on ``head.*``."""
    model = Net()
    groups = [{"params": model.body.parameters()},
              {"params": model.head.parameters(), "lr": 0.01 * (1 + jt.rank)}]
    return gradcheck.Workload(model, _halves(), lambda m, b: _sq(m(b)),
                              optimizer=jt.optim.SGD(groups, 0.01))


def rank_batch():
    """A ``batch(step, rank)`` callable: each rank makes its own shard (rank 1's is zeros,
    so every gradient but the biases' is exactly zero there)."""
    def batch(step, rank):
        return _halves()[:2] * (1 - rank)
    return gradcheck.Workload(Net(), batch, lambda m, b: _sq(m(b)))
