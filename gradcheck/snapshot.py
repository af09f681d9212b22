"""Cheap per-Var summaries for the probe: what changed, by how much, and gradient health.

The probe needs, per parameter and step, whether the value changed, the norm of the change,
and its gradient's status (nonfinite / nonzero / zero) and norm.  Copying every value to
the host does that at the price of one or two full copies of the model held through the
step (and of the gradients): on Gold-YOLO-L at 640 the probe then peaked at 2.3x the RSS
of the bare steps.  Here the comparisons run inside Jittor and only scalars come back:

* :class:`Snapshot` remembers Vars as *lazy* clones: no memory while a Var keeps its value
  (the pending clone shares its data); after an update :meth:`Snapshot.compare` queues,
  per Var, ``any(after != before)``, ``||after - before||`` and ``||before||`` (float64,
  as numpy's ``linalg.norm`` of the float64 values), drops the clones and fetches all
  scalars in one execution.  A value turning NaN/inf counts as a change; one that was
  NaN and stays NaN does not (``np.array_equal`` would call that a change);
* :class:`GradSummary` queues, per gradient, its float64 norm (which also tells nonfinite /
  nonzero / zero), to be executed with the backward (``vars`` goes into the same ``jt.sync``);
* :func:`grads_alongside` gets the gradients of trainable Vars outside the optimizer from
  the optimizer's own backward, instead of a second backward over a retained graph.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np

from gradcheck import runtime

__all__ = ["Change", "GradSummary", "Snapshot", "grads_alongside", "host_norm"]


@dataclass(frozen=True)
class Change:
    changed: bool
    delta_norm: float       # ||after - before||, 0.0 when unchanged
    before_norm: float      # ||before||


def host_norm(a) -> float:
    """The float64 L2 norm of a host array (numpy or array-like), as the report records it:
    the one such helper for the Jittor probe, the torch probe and the MPI observer."""
    with np.errstate(over="ignore", invalid="ignore"):
        return float(np.linalg.norm(np.asarray(a, dtype=np.float64).ravel()))


def _norm64(x):
    return (x.float64() ** 2).sum().sqrt().reshape(1)


def _fetch(columns: list) -> np.ndarray:
    """Columns of 1-element Vars (one column per quantity) -> (n, k) float64, one execution."""
    jt = runtime.import_jittor()
    if not columns or not columns[0]:
        return np.zeros((0, len(columns)))
    flat = [jt.concat([c.float64() for c in col]) for col in columns]
    jt.sync(flat)
    return np.stack([f.numpy() for f in flat], axis=1)


class Snapshot:
    """Remember ``vars`` now; :meth:`compare` tells later what changed (call it once)."""

    def __init__(self, vars):
        self._vars = list(vars)
        self._before = [v.clone().stop_grad() for v in self._vars]

    def queue(self):
        """Build the comparison ops now (e.g. before ``jt.sync_all()`` runs an update) so the
        clones are consumed by them instead of being materialised as copies."""
        if self._before is None:
            return
        changed, delta, norm = [], [], []
        for v, b in zip(self._vars, self._before):
            # Jittor compiles with fast math: ``!=`` misses a NaN, so finiteness is compared too
            jt = runtime.import_jittor()
            differs = (v != b).any()
            if str(v.dtype).startswith(("float", "bfloat")):
                differs = differs | (jt.isfinite(v) != jt.isfinite(b)).any()
            changed.append(differs.reshape(1))
            delta.append(_norm64(v - b))
            norm.append(_norm64(b))
        self._queued = [changed, delta, norm]
        self._before = None                    # the ops keep what they need

    def compare(self) -> list:
        """One :class:`Change` per Var, in order."""
        self.queue()
        cols = _fetch(self._queued)
        self._queued = None
        out = []
        for ch, d, n in cols:
            changed = bool(ch)
            out.append(Change(changed, float(d) if changed else 0.0, float(n)))
        return out


class GradSummary:
    """Status and norm of many gradients, computed next to the backward.

    One reduction per gradient: the float64 norm decides the status too.  Squares of float32
    values neither overflow nor underflow in float64, so the norm is > 0 exactly when some
    element is non-zero, and NaN/Inf anywhere makes it non-finite."""

    def __init__(self, grads):
        self._cols = [[_norm64(g) for g in grads]]

    @property
    def vars(self) -> list:
        """The scalar Vars to put in the backward's ``jt.sync``."""
        return list(self._cols[0])

    def results(self) -> list:
        """One ``(status, norm)`` per gradient: status ``nonfinite``, ``nonzero`` or ``zero``."""
        out = []
        for (norm,) in _fetch(self._cols):
            norm = float(norm)
            status = "nonfinite" if not np.isfinite(norm) else ("nonzero" if norm > 0 else "zero")
            out.append((status, norm))
        return out


@contextlib.contextmanager
def grads_alongside(extra):
    """Gradients of Vars outside the optimizer from the optimizer's own backward.

    Inside the block, ``jt.grad`` (which ``optimizer.backward`` calls once) also takes
    ``extra``: one backward graph serves both, the optimizer gets exactly the gradients it
    asked for (its list comes first, so Jittor's ``grads[N]`` warnings keep their indices),
    and the yielded list receives the extra gradients.  A second ``jt.grad`` over a retained
    graph instead builds a second backward through the whole network (Gold-YOLO-M/L's
    ``alpha`` scales are outside upstream's optimizer: that doubled the probe's peak RSS).
    The list stays empty if the optimizer never called ``jt.grad`` (a custom backward).
    """
    jt = runtime.import_jittor()
    got: list = []
    real = jt.grad
    extra = list(extra)

    def grad(loss, targets, retain_graph=True):
        if not extra or got:
            return real(loss, targets, retain_graph)
        targets = list(targets)
        # the extras are served here, so the graph need not outlive this one backward
        gs = real(loss, targets + extra, False)
        got.extend(gs[len(targets):])
        return gs[:len(targets)]

    grad.real = real           # for a wrapper that must not be served (the MPI observer)
    jt.grad = grad
    try:
        yield got
    finally:
        jt.grad = real
