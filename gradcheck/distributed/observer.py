"""What one MPI rank records around its optimizer (:class:`RankObserver`).

The home of the per-rank record: local reach and local gradient (before Jittor's all-reduce),
the reduced gradient the optimizer uses, and a digest of each value after the step.
"""

from __future__ import annotations

import hashlib
import socket

import numpy as np

from gradcheck.enums import Status
from gradcheck.snapshot import host_norm
from gradcheck.status import step_status


class RankObserver:
    """Wrap one optimizer's ``backward`` and ``step`` to record, per step, this rank's local
    reach, local gradients (before Jittor's all-reduce), reduced gradients and values."""

    def __init__(self, jt, model, optimizer, sync: bool, buffer_globs=()):
        from gradcheck.graph import inventory
        from gradcheck.optimizers import optimizer_params

        self.jt, self.optimizer, self.sync = jt, optimizer, sync
        params, _ = inventory(model, buffer_globs)
        self.entries = list(params)
        self.names = [e.name for e in params]
        opt_list = optimizer_params(optimizer)
        self.opt_ids = {id(v) for v in opt_list}
        # what optimizer.backward passes to jt.grad, in its order (the all-reduce order)
        self.reduce_order = [v for v in opt_list if not v.is_stop_grad()]
        # parameter name -> one value per step
        self.local_status: dict[str, list] = {}
        self.reduced_status: dict[str, list] = {}
        self.digests: dict[str, list] = {}
        self.local_norms: dict[str, list] = {}
        self.value_norms: dict[str, list] = {}
        for n in self.names:
            for d in (
                self.local_status,
                self.reduced_status,
                self.digests,
                self.local_norms,
                self.value_norms,
            ):
                d[n] = []
        self._backward, self._step = optimizer.backward, optimizer.step
        optimizer.backward, optimizer.step = self.backward, self.step
        self._pending: tuple | None = None  # (reached, local gradients) of a backward

    def backward(self, loss, retain_graph=False):
        from gradcheck.graph import analyse

        jt = self.jt
        trainable = [e for e in self.entries if not e.var.is_stop_grad()]
        reached = analyse({"loss": loss}, [e.var for e in self.entries])[0]["loss"]
        extra = [e for e in trainable if id(e.var) not in self.opt_ids]
        # Jittor's own jt.grad, not the probe's grads_alongside (which serves the optimizer's call)
        real_grad = getattr(jt.grad, "real", jt.grad)
        extra_grads = real_grad(loss, [e.var for e in extra], True) if extra else []
        captured = []
        real = jt.Var.mpi_all_reduce

        def capture(var, *args, **kw):  # the local gradient, before Jittor assigns over it
            captured.append(var.clone().stop_grad())
            return real(var, *args, **kw)

        saved_in_mpi = jt.in_mpi
        jt.Var.mpi_all_reduce = capture
        if not self.sync:
            jt.in_mpi = False  # each rank's optimizer on its own: see optimizer_mismatch
        try:
            out = self._backward(loss, retain_graph)
        finally:
            jt.Var.mpi_all_reduce = real
            jt.in_mpi = saved_in_mpi
        local = {}
        if self.sync:
            if len(captured) != len(self.reduce_order):
                raise RuntimeError(
                    f"Jittor all-reduced {len(captured)} gradients, expected "
                    f"{len(self.reduce_order)}"
                )
            for v, g in zip(self.reduce_order, captured):
                local[id(v)] = g
        for e, g in zip(extra, extra_grads):
            local[id(e.var)] = g
        self._pending = (reached, local)
        return out

    def step(self, loss=None, retain_graph=False):
        jt = self.jt
        if loss is not None:  # step(loss): Jittor's own order, backward then update
            self.backward(loss, retain_graph)
        reached, local = self._pending or (set(), {})
        self._pending = None
        reduced = {}
        for e in self.entries:
            if id(e.var) in self.opt_ids and not e.var.is_stop_grad():
                reduced[id(e.var)] = e.var.opt_grad(self.optimizer)
                if not self.sync:  # no all-reduce: the optimizer's gradient is local
                    local[id(e.var)] = reduced[id(e.var)]
        jt.sync(list(local.values()) + list(reduced.values()))
        local_np = {k: g.numpy() for k, g in local.items()}
        reduced_np = {k: g.numpy() for k, g in reduced.items()} if self.sync else {}
        out = self._step()
        jt.sync_all()
        for i, e in enumerate(self.entries):
            n, key = e.name, id(e.var)
            g, r = local_np.get(key), reduced_np.get(key)
            rs: Status | None
            if e.var.is_stop_grad():
                ls = rs = Status.FROZEN
            else:
                ls = Status.MISSING if i not in reached or g is None else step_status(True, g)
                rs = step_status(True, r) if r is not None else None
            self.local_status[n].append(ls)
            self.reduced_status[n].append(rs)
            self.local_norms[n].append(host_norm(g) if g is not None else None)
            value = np.ascontiguousarray(e.var.numpy())
            self.digests[n].append(hashlib.sha1(value.tobytes()).hexdigest()[:16])
            self.value_norms[n].append(host_norm(value))
        return out

    def to_dict(self, rank: int, loss_report) -> dict:
        return {
            "rank": rank,
            "host": socket.gethostname(),
            "sync": self.sync,
            "params": self.names,
            "in_optimizer": [
                n for e, n in zip(self.entries, self.names) if id(e.var) in self.opt_ids
            ],
            "local": self.local_status,
            "reduced": self.reduced_status,
            "local_grad_norms": self.local_norms,
            "value_norms": self.value_norms,
            "digests": self.digests,
            "steps": [{"loss": s.loss, "seconds": s.seconds} for s in loss_report.steps],
        }
