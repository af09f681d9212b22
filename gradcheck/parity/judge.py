"""The numbers of ``gradcheck align`` judged: module outputs, loss, gradients, values.

The home of the two measures (:func:`rel_scale`, :func:`rel_norm`) and of the per-module,
loss and per-parameter rows, each judged against the float64 reference's noise floor
(``max(tol, noise_factor * floor)``, see :class:`~gradcheck.parity.alignment.Tolerances`),
and then, where the port was rerun in float64 (:mod:`gradcheck.parity.float64`), against
the original's float64 run (:func:`judge_float64`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gradcheck.parity.parking import Reader, fetch
from gradcheck.parity.records import EXPLAINED, LossRow, LossTerm, ModuleRow, ParamRow

TINY = 1e-30


def _f64(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


def rel_scale(a, ref) -> float:
    """max |a - ref| / max |ref|: scale-relative (an output's tiny elements do not dominate)."""
    a, ref = _f64(a), _f64(ref)
    if a.size == 0:
        return 0.0
    with np.errstate(invalid="ignore", over="ignore"):
        d = float(np.abs(a - ref).max())
        s = float(np.abs(ref).max())
    if not math.isfinite(d):
        return math.inf
    return 0.0 if d == 0 else d / (s + TINY)


def max_rel_scale(arrays, ref) -> float:
    """The largest :func:`rel_scale` over the pairs of ``arrays`` and ``ref`` that have one
    shape (0.0 when none: a shape mismatch is judged on its own)."""
    d = [rel_scale(a, r) for a, r in zip(arrays, ref) if tuple(a.shape) == tuple(r.shape)]
    return max(d, default=0.0)


def _rel_abs(a, ref):
    """(|a - ref|, |ref|) in L2, float64 (a non-finite difference as inf)."""
    a, ref = _f64(a), _f64(ref)
    with np.errstate(invalid="ignore", over="ignore"):
        d = float(np.linalg.norm((a - ref).ravel()))
        s = float(np.linalg.norm(ref.ravel()))
    return (d if math.isfinite(d) else math.inf), s


def rel_norm(a, ref) -> float:
    """|a - ref| / |ref| (L2): the gradient and value measure."""
    d, s = _rel_abs(a, ref)
    if math.isinf(d):
        return math.inf
    return 0.0 if d == 0 else d / (s + TINY)


def judge_modules(
    outs_p, rec_o, rec_64, name_map, port_modules, tol, grads_p=None, samples=(), measured=None
) -> list[ModuleRow]:
    """Per call of each module of the original (execution order): its outputs and d loss /
    d its outputs against the port's, floors over the original's run and ``samples``.
    ``measured``: the port's distances already taken from the reference, (outputs, d loss /
    d outputs) by (port module, call), where its records keep only their shapes."""
    rows = []
    grads_p = grads_p or {}
    port_rel: dict = measured[0] if measured else {}
    port_grad_rel: dict = measured[1] if measured else {}
    # the original measured against the reference as it ran: only its outputs' shapes kept
    reduced = rec_o.reference is not None
    for name, call, typ in rec_o.order:
        target = name_map(name)
        row = ModuleRow(target, name, typ, call)
        rows.append(row)
        o = rec_o.out[name][call]
        ref = (
            rec_64.out[name][call]
            if rec_64 is not None and name in rec_64.out and call < len(rec_64.out[name])
            else o
        )
        if target not in port_modules:
            row.note = "no module of that name in the port"
            continue
        calls = outs_p.get(target, [])
        if call >= len(calls):
            row.ok, row.rel = False, math.inf
            row.note = (
                "never called in the port"
                if not calls
                else f"called {len(calls)} time(s) in the port"
            )
            continue
        p = calls[call]
        if len(p) != len(o):
            # an API difference (e.g. the original also returns its feature maps): the
            # leading outputs are compared, and must then agree in shape
            row.note = (
                f"{len(p)} output(s) in the port, {len(o)} in the original: "
                f"the first {min(len(p), len(o))} compared"
            )
            if not p or not o:
                row.ok, row.rel = False, math.inf
                continue
        rel, floor = 0.0, 0.0
        for a, b, r in zip(p, o, ref):
            if tuple(a.shape) != tuple(b.shape):
                row.ok, row.rel = False, math.inf
                row.note = f"output shape {list(a.shape)} vs {list(b.shape)}"
                break
            if (target, call) not in port_rel:
                rel = max(rel, rel_scale(a, r))
            if rec_64 is not None and not reduced:
                floor = max(floor, rel_scale(b, r))
        else:
            rel = port_rel.get((target, call), rel)
            if rec_64 is not None:  # the noise samples' distances (gradcheck.parity.noise)
                floors = [s.out_floor.get((name, call), 0.0) for s in samples]
                if reduced:  # the original's own distance, measured as it ran
                    floors.append(rec_o.out_floor.get((name, call), 0.0))
                floor = max([floor, *floors])
            row.rel = rel
            row.noise_floor = floor if rec_64 is not None else None
            row.ok = bool(rel <= tol.allowed(tol.output, row.noise_floor))
        # backward: d loss / d this output, on both sides
        _judge_output_grads(
            row,
            (name, call),
            grads_p.get((target, call)),
            port_grad_rel.get((target, call)),
            rec_o,
            rec_64,
            samples,
            tol,
        )
    return rows


def _judge_output_grads(row, key, gp, measured, rec_o, rec_64, samples, tol) -> None:
    """d loss / d one module call's outputs (``key``): the port's ``gp`` (or its distance
    already ``measured``) against the float64 run's, else the original's; the floor over the
    original's run and ``samples``.  Not judged where either side has none or shapes differ."""
    reduced = rec_o.reference is not None  # the original kept only distances
    go = rec_o.grads.get(key)
    g64 = rec_64.grads.get(key) if rec_64 is not None else None
    gref = g64 if g64 is not None else go
    if (
        gp is None
        or go is None
        or (reduced and g64 is None)  # the original kept only its distance from it
        or len(gp) != len(go)
        or any(tuple(a.shape) != tuple(b.shape) for a, b in zip(gp, go))
    ):
        return
    grad_rel = measured
    if grad_rel is None:
        grad_rel = max((rel_scale(a, r) for a, r in zip(gp, gref)), default=0.0)
    own = (
        [rec_o.grad_floor.get(key, 0.0)]
        if reduced
        else [rel_scale(b, r) for b, r in zip(go, g64 if g64 is not None else ())]
    )
    grad_floor = (
        max(own + [s.grad_floor.get(key, 0.0) for s in samples], default=0.0)
        if g64 is not None
        else None
    )
    row.grad_rel, row.grad_floor = grad_rel, grad_floor
    row.grad_ok = bool(grad_rel <= tol.allowed(tol.grad, grad_floor))


def judge_loss(losses, terms_log, tol, calibrated, samples=()) -> LossRow:
    """The loss of step 1 and its terms, floors over the original's run and ``samples``."""

    def one(p, o, r, others=()):
        ref = r if r is not None else o
        rel = abs(p - ref) / (abs(ref) + TINY) if p != ref else 0.0
        floor = max(abs(x - r) for x in [o, *others]) / (abs(r) + TINY) if r is not None else None
        return rel, floor, bool(rel <= tol.allowed(tol.loss, floor))

    r0 = losses["original_f64"][0] if calibrated else None
    rel, floor, ok = one(losses["port"][0], losses["original"][0], r0, [s.loss for s in samples])
    out = LossRow(
        port=losses["port"],
        original=losses["original"],
        original_f64=losses["original_f64"] if calibrated else None,
        rel=rel,
        noise_floor=floor,
        ok=ok,
    )
    tp, to = terms_log["port"][0], terms_log["original"][0]
    t64 = terms_log["original_f64"][0] if calibrated else {}
    for name in list(to) + [n for n in tp if n not in to]:
        if name not in tp or name not in to:
            out.terms.append(
                LossTerm(name, tp.get(name), to.get(name), ok=False, note="on one side only")
            )
            continue
        rel, floor, ok = one(
            tp[name], to[name], t64.get(name), [s.terms[name] for s in samples if name in s.terms]
        )
        out.terms.append(LossTerm(name, tp[name], to[name], rel=rel, noise_floor=floor, ok=ok))
    return out


def judge_params(
    p_params,
    entries,
    pairs,
    o_named,
    grads_p,
    grads_o,
    grads_64,
    port_values,
    named_64,
    tol,
    frozen_diff,
    initial,
    samples=(),
    update_samples=(),
) -> list[ParamRow]:
    """Per-parameter gradient rows (floors over the original's run and ``samples``), then
    the values after the steps, judged on the updates (floors over ``update_samples`` too:
    the samples' one-step updates, given when the run was one step)."""
    frozen_names = {d.original_name: d for d in frozen_diff}
    ref_grads = grads_64 if grads_64 is not None else grads_o
    gmax = max((float(np.linalg.norm(g)) for g in ref_grads.values() if g is not None), default=0.0)
    rows = []
    for oname, p in o_named.items():
        target = pairs.get(oname)
        e = entries.get(target) if target else None
        if e is None or e.buffer:
            continue
        row = ParamRow(e.name, oname, list(e.var.shape))
        rows.append(row)
        if list(e.var.shape) != list(p.shape):
            row.ok, row.note = False, "shape mismatch: not copied, not compared"
            continue
        go, gr = grads_o.get(oname), ref_grads.get(oname)
        trainable_p = not e.var.is_stop_grad()
        gp = grads_p.get(id(e.var)) if trainable_p else None
        if oname in frozen_names:
            row.ok = False
            row.note = (
                f"{frozen_names[oname].port} in the port, "
                f"{frozen_names[oname].original} in the original"
            )
        if gr is None and gp is None:
            row.grad_rel = 0.0 if p.requires_grad or trainable_p else None
        else:
            floors = (
                [l2_dist(go, gr, p.shape)]
                + [s.grad_dist[oname] for s in samples if oname in s.grad_dist]
                if grads_64 is not None
                else None
            )
            _judge_grad(row, p.shape, gp, gr, floors, tol, gmax)
    # values after the steps, judged on the update (value - initial value) like a gradient
    updates = _updates(rows, port_values, o_named, named_64, initial)
    umax = max((u[1] for u in updates.values()), default=0.0)
    for row in rows:
        oname = row.original_name
        u = updates.get(oname)
        if u is None:
            continue
        others = [s.update_dist[oname] for s in update_samples if oname in s.update_dist]
        _judge_update(row, u, others if named_64 else None, tol, umax)
    return rows


def l2_dist(g, ref, shape) -> float:
    """|g - ref| (L2, float64; None counts as zeros of ``shape``)."""
    g = np.zeros(shape) if g is None else _f64(g)
    ref = np.zeros(shape) if ref is None else _f64(ref)
    return float(np.linalg.norm((g - ref).ravel()))


def _judge_grad(row: ParamRow, shape, gp, gr, floors, tol, gmax: float) -> None:
    """Judge the port's gradient ``gp`` against the reference ``gr``, with a noise floor:
    the largest of ``floors`` (the original's and the samples' distances from ``gr``;
    None: no float64 run)."""
    gr = np.zeros(shape) if gr is None else gr
    gp = np.zeros(shape) if gp is None else _f64(gp)
    diff = float(np.linalg.norm((gp - gr).ravel()))
    den = float(np.linalg.norm(gr.ravel()))
    row.grad_rel = 0.0 if diff == 0 else diff / (den + TINY)
    floor_abs = None
    if floors is not None:
        floor_abs = max(floors)
        row.noise_floor = 0.0 if floor_abs == 0 else floor_abs / (den + TINY)
    allowed = max(
        tol.grad * den,
        1e-6 * gmax,
        tol.noise_factor * floor_abs if floor_abs is not None else 0.0,
    )
    row.grad_norm = den
    row.grad_ok = bool(diff <= allowed)
    if diff > allowed:
        row.ok = False


def _updates(rows, port_values, o_named, named_64, initial) -> dict:
    """Each comparable row's update over the steps measured against the float64 one, by
    original name: (|u_port - u_64|, |u_64|, |u_original - u_64|), L2 -- three numbers
    kept per parameter, never the updates themselves; sets the rows' ``value_rel`` on the
    way."""
    updates = {}
    for row in rows:
        oname = row.original_name
        wp = port_values.get(row.name)
        wo = o_named[oname].detach().cpu().numpy().astype(np.float64)
        if wp is None or wp.shape != wo.shape:
            continue
        w64 = named_64[oname].detach().numpy() if named_64 else wo
        w0 = _f64(initial[oname])
        u64 = w64 - w0
        updates[oname] = (
            float(np.linalg.norm(((_f64(wp) - w0) - u64).ravel())),
            float(np.linalg.norm(u64.ravel())),
            float(np.linalg.norm(((wo - w0) - u64).ravel())),
        )
        row.value_rel = rel_norm(wp, w64)
    return updates


def _judge_update(row: ParamRow, u, others, tol, umax: float) -> None:
    """Judge the port's update against the float64 one (``u``: the distances of
    :func:`_updates`), with a noise floor over the original's update and ``others`` (the
    samples' distances; None: no float64 run, no floor)."""
    diff, den, own = u
    row.update_rel = 0.0 if diff == 0 else diff / (den + TINY)
    floor_abs = max([own, *others]) if others is not None else None
    row.update_floor = (
        None if floor_abs is None else 0.0 if floor_abs == 0 else floor_abs / (den + TINY)
    )
    allowed = max(
        tol.value * den,
        1e-6 * umax,
        tol.noise_factor * floor_abs if floor_abs is not None else 0.0,
    )
    row.value_ok = bool(diff <= allowed)


@dataclass
class Settled:
    """What the port's float64 rerun settled, counted row by row (:meth:`settle`)."""

    explained: int = 0  # rows float32 put beyond tolerance that agree in float64
    float64_only: int = 0  # rows float32 passed that differ in float64

    def settle(self, float32_ok: bool | None, float64_ok: bool) -> bool:
        """Count one row by its two verdicts; True when float64 explains its float32 failure."""
        if float32_ok is False and float64_ok:
            self.explained += 1
            return True
        if float32_ok is not False and not float64_ok:
            self.float64_only += 1
        return False


def judge_float64(res, run, grads_64, rec_64, losses, terms_log, name_map, var_of, tol) -> Settled:
    """Step 1 of the port rerun in float64 (``run``) against the original's float64 run, row
    by row: ``*_f64`` numbers next to the float32 ones.  A row that float32 put beyond
    tolerance and that agrees in float64 (within ``tol.float64``) is *explained*: ok, with
    ``explained: "float64"`` -- float32 noise that the model amplified, not a port
    difference.  A row that float32 passed keeps its verdict whatever float64 says (a
    difference below float32's own noise does not change float32 training); such rows are
    counted in the returned :class:`Settled`.  The reference's arrays may be parked
    (:mod:`gradcheck.parity.parking`): each is read back once, where it is compared."""
    f64 = tol.float64
    settled = Settled()

    _judge_grads_f64(res, run, grads_64, var_of, f64, settled)
    # modules: outputs and d loss / d output
    # nested modules share outputs: an array is read back once for consecutive records
    read_out, read_grads = Reader(), Reader()
    for m in res.modules:
        name, call, target = m.original_module, m.call, m.module
        o64 = rec_64.out.get(name, [])
        p64 = run.out.get(target, [])
        if (
            call < len(o64)
            and call < len(p64)
            and len(o64[call])
            and len(p64[call])
            and all(tuple(a.shape) == tuple(b.shape) for a, b in zip(p64[call], o64[call]))
        ):
            m.rel_f64 = rel_f64 = max(
                rel_scale(a, b) for a, b in zip(p64[call], read_out(o64[call]))
            )
            ok = bool(rel_f64 <= f64)
            m.ok_f64 = ok
            if settled.settle(m.ok, ok):
                m.ok, m.explained = True, EXPLAINED
        gp, go = run.out_grads.get((target, call)), rec_64.grads.get((name, call))
        if (
            m.grad_rel is not None
            and gp is not None
            and go is not None
            and len(gp) == len(go)
            and all(tuple(a.shape) == tuple(b.shape) for a, b in zip(gp, go))
        ):
            m.grad_rel_f64 = grad_rel_f64 = max(
                (rel_scale(a, b) for a, b in zip(gp, read_grads(go))), default=0.0
            )
            ok = bool(grad_rel_f64 <= f64)
            m.grad_ok_f64 = ok
            if settled.settle(m.grad_ok, ok):
                m.grad_ok, m.grad_explained = True, EXPLAINED
    # loss and its terms
    lo = res.loss
    r64 = losses["original_f64"][0]
    lo.port_f64 = run.loss
    lo.rel_f64 = rel = abs(run.loss - r64) / (abs(r64) + TINY) if run.loss != r64 else 0.0
    if settled.settle(lo.ok, rel <= f64):
        lo.ok, lo.explained = True, EXPLAINED
    t64 = terms_log["original_f64"][0]
    for t in lo.terms:
        if t.note or t.name not in run.terms or t.name not in t64:
            continue
        p, r = run.terms[t.name], t64[t.name]
        t.rel_f64 = rel = abs(p - r) / (abs(r) + TINY) if p != r else 0.0
        if settled.settle(t.ok, rel <= f64):
            t.ok, t.explained = True, EXPLAINED
    return settled


def _judge_grads_f64(res, run, grads_64, var_of, f64: float, settled: Settled) -> None:
    """:func:`judge_float64`'s parameter rows: gradients of step 1 (updates only when the one
    step is step 1).  Each reference gradient is read once (it may be parked): a row's
    distances and the gradient's norm first, then the verdicts against the largest norm."""
    measured, norms = [], {}  # (row, diff, |g_64|); original name -> |g_64|
    for row in res.params:
        var = var_of.get(row.name)
        if var is None or row.grad_ok is None:
            continue
        gp, g64 = run.grads.get(id(var)), fetch(grads_64.get(row.original_name))
        shape = tuple(row.shape)
        diff, den = _rel_abs(
            np.zeros(shape) if gp is None else gp, np.zeros(shape) if g64 is None else g64
        )
        if g64 is not None:
            norms[row.original_name] = float(np.linalg.norm(g64))
        measured.append((row, diff, den))
    gmax = max(
        (
            norms[n] if n in norms else float(np.linalg.norm(fetch(g)))
            for n, g in grads_64.items()
            if g is not None
        ),
        default=0.0,
    )
    for row, diff, den in measured:
        row.grad_rel_f64 = 0.0 if diff == 0 else diff / (den + TINY)
        ok = bool(diff <= max(f64 * den, 1e-9 * gmax))
        row.grad_ok_f64 = ok
        if not row.note and settled.settle(row.grad_ok, ok):
            row.ok, row.explained = True, EXPLAINED
            if res.steps == 1 and row.value_ok is False:
                row.value_ok, row.value_explained = True, EXPLAINED


def numeric_failures(res) -> int:
    """Rows float32 put beyond tolerance for a number (not a structural difference: shape,
    frozen set, a module never called) -- what a float64 rerun could explain."""
    n = sum(p.grad_ok is False or p.value_ok is False for p in res.params)
    n += sum(
        (m.ok is False and math.isfinite(m.rel or 0.0)) or m.grad_ok is False for m in res.modules
    )
    n += (not res.loss.ok) + sum(not t.ok and not t.note for t in res.loss.terms)
    return n
