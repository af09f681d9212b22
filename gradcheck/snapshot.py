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
from gradcheck.enums import Status

__all__ = ["Change", "GradSummary", "Snapshot", "grads_alongside", "host_norm"]


@dataclass(frozen=True)
class Change:
    changed: bool
    delta_norm: float  # ||after - before||, 0.0 when unchanged
    before_norm: float  # ||before||


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


# float32 Vars on the CPU: one kernel per chunk of (after, before) pairs, one pass over each
# pair, writing [changed, sum (after - before)^2, sum before^2] in float64.  "Changed" compares
# bits, so fast math cannot hide a NaN: a NaN staying NaN (any payload) and 0.0 <-> -0.0 are
# no change, a value turning NaN or inf is one (np.array_equal's answer).  The three fused
# Jittor ops per Var it replaces read every parameter four times (Gold-YOLO-M at 640: 0.25 s
# of each probed step).
_CMP_HEADER = "#include <cstdint>\n#include <cstring>\n"
_CMP_SRC = """
const int n_pairs = (int)_inputs.size() / 2;
for (int k = 0; k < n_pairs; k++) {
    const float* a = _inputs[2 * k]->ptr<float>();
    const float* b = _inputs[2 * k + 1]->ptr<float>();
    const index_t n = _inputs[2 * k]->num;
    bool changed = false;
    double dd = 0, bb = 0;
    for (index_t i = 0; i < n; i++) {
        uint32_t ua, ub;
        std::memcpy(&ua, a + i, 4);
        std::memcpy(&ub, b + i, 4);
        if (ua != ub) {
            const bool nan_a = (ua & 0x7f800000u) == 0x7f800000u && (ua & 0x7fffffu);
            const bool nan_b = (ub & 0x7f800000u) == 0x7f800000u && (ub & 0x7fffffu);
            const bool zeros = ((ua | ub) & 0x7fffffffu) == 0;
            if (!(nan_a && nan_b) && !zeros) changed = true;
        }
        const double d = (double)a[i] - (double)b[i];
        dd += d * d;
        bb += (double)b[i] * (double)b[i];
    }
    out0_p[3 * k] = changed ? 1.0 : 0.0;
    out0_p[3 * k + 1] = dd;
    out0_p[3 * k + 2] = bb;
}
"""
# Pairs per kernel.  Jittor prepares a code op's source (``precompile``) once per process at a
# cost quadratic in its Vars, even with the library cached.  On Gold-YOLO-N's parameters
# (bench/bench_code_inputs.py), the first comparison took 851 ms with 256 pairs (most of the
# probe's extra time), 42 ms with 16; later ones take 15 ms at any size.
_CMP_CHUNK = 16

# float32 gradients on the CPU: one kernel per chunk, writing each one's float64 sum of
# squares (the host takes the square root).  It replaces the five Jittor ops per gradient of
# ``_norm64`` (cast, square, sum, sqrt, reshape): on 9,004 gradients, 0.25 -> 0.14 s a step
# from build to fetch, most of it Python building ops.
_NORM_SRC = """
for (int k = 0; k < (int)_inputs.size(); k++) {
    const float* a = _inputs[k]->ptr<float>();
    const index_t n = _inputs[k]->num;
    double s = 0;
    for (index_t i = 0; i < n; i++) s += (double)a[i] * (double)a[i];
    out0_p[k] = s;
}
"""
_NORM_CHUNK = 16


def _fused(v, jt) -> bool:
    return not jt.flags.use_cuda and str(v.dtype) == "float32" and v.numel() > 0


def _kernels(inputs: list, per_item: int, chunk: int, cols: int, src: str, jt) -> list:
    """One ``jt.code`` op per ``chunk`` items of ``per_item`` flat float32 Vars each, out
    ``(chunk, cols)`` float64.  Every chunk is padded to full size, so that one compiled kernel
    serves every model (the pad items' rows are never read)."""
    step, pad, out = per_item * chunk, jt.zeros(1), []
    for s in range(0, len(inputs), step):
        part = inputs[s : s + step]
        part = part + [pad] * (step - len(part))
        out.append(jt.code((chunk, cols), "float64", part, cpu_header=_CMP_HEADER, cpu_src=src))
    return out


def _rows(kernels: list, cols: int) -> np.ndarray:
    """The executed kernels' outputs stacked: one row per item (and the pad rows last)."""
    return np.concatenate([k.numpy() for k in kernels]) if kernels else np.zeros((0, cols))


class Snapshot:
    """Remember ``vars`` now; :meth:`compare` tells later what changed (call it once)."""

    _before: list | None  # clones of the Vars until queue() has built the comparison
    _fused: list | None  # queue()'s ops, until compare() reads them
    _queued: list | None

    def __init__(self, vars):
        self._vars = list(vars)
        self._before = [v.clone().stop_grad() for v in self._vars]

    def queue(self):
        """Build the comparison ops now (e.g. before ``jt.sync_all()`` runs an update) so the
        clones are consumed by them instead of being materialised as copies."""
        if self._before is None:
            return
        jt = runtime.import_jittor()
        changed: list
        pairs: list
        changed, delta, norm, pairs, self._order = [], [], [], [], []
        for v, b in zip(self._vars, self._before):
            if _fused(v, jt):
                self._order.append(("fused", len(pairs) // 2))
                pairs += [v.reshape((-1,)), b.reshape((-1,))]
                continue
            self._order.append(("ops", len(changed)))
            # Jittor compiles with fast math: ``!=`` misses a NaN, so finiteness is compared too
            differs = (v != b).any()
            if str(v.dtype).startswith(("float", "bfloat")):
                differs = differs | (jt.isfinite(v) != jt.isfinite(b)).any()
            changed.append(differs.reshape(1))
            delta.append(_norm64(v - b))
            norm.append(_norm64(b))
        self._fused = _kernels(pairs, 2, _CMP_CHUNK, 3, _CMP_SRC, jt)
        self._queued = [changed, delta, norm]
        self._before = None  # the ops keep what they need

    def compare(self) -> list:
        """One :class:`Change` per Var, in order."""
        jt = runtime.import_jittor()
        self.queue()
        assert self._fused is not None and self._queued is not None  # made by queue(), read once
        jt.sync(self._fused)
        fused = _rows(self._fused, 3)
        cols = _fetch(self._queued)
        self._queued = self._fused = None
        out = []
        for kind, i in self._order:
            if kind == "fused":
                ch, dd, bb = fused[i]
                d, n = float(np.sqrt(dd)), float(np.sqrt(bb))
            else:
                ch, d, n = cols[i]
            changed = bool(ch)
            out.append(Change(changed, float(d) if changed else 0.0, float(n)))
        return out


class GradSummary:
    """Status and norm of many gradients, computed next to the backward.

    One reduction per gradient: the float64 norm decides the status too.  Squares of float32
    values neither overflow nor underflow in float64, so the norm is > 0 exactly when some
    element is non-zero, and NaN/Inf anywhere makes it non-finite.  float32 gradients on the
    CPU go through one kernel per chunk, any other through Jittor ops."""

    def __init__(self, grads):
        jt = runtime.import_jittor()
        self._order: list = []  # per gradient: (fused?, its row in that kind's results)
        flat: list = []
        self._others: list = []  # the norms of the rest, as Jittor ops
        for g in grads:
            if _fused(g, jt):
                self._order.append((True, len(flat)))
                flat.append(g.reshape((-1,)))  # 1-D: the kernel's source never sees a shape
            else:
                self._order.append((False, len(self._others)))
                self._others.append(_norm64(g))
        self._kernels = _kernels(flat, 1, _NORM_CHUNK, 1, _NORM_SRC, jt)

    @property
    def vars(self) -> list:
        """The Vars to put in the backward's ``jt.sync``."""
        return self._kernels + self._others

    def results(self) -> list:
        """One ``(status, norm)`` per gradient: status ``nonfinite``, ``nonzero`` or ``zero``."""
        roots, norms = np.sqrt(_rows(self._kernels, 1)[:, 0]), _fetch([self._others])[:, 0]
        out = []
        for fused, row in self._order:
            norm = float(roots[row] if fused else norms[row])
            status = (
                Status.NONFINITE
                if not np.isfinite(norm)
                else Status.NONZERO
                if norm > 0
                else Status.ZERO
            )
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
        got.extend(gs[len(targets) :])
        return gs[: len(targets)]

    # for a wrapper that must not be served (the MPI observer); a function's own attribute
    grad.real = real  # type: ignore[attr-defined]
    jt.grad = grad
    try:
        yield got
    finally:
        jt.grad = real
