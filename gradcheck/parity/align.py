"""Align a Jittor port with its PyTorch original: ``gradcheck align``.

::

    gradcheck align --port mypkg.port:make --original mypkg.orig:make [--map FILE] [--steps N]

``--port`` names a factory of a Jittor :class:`~gradcheck.Workload`, ``--original`` one of a
torch Workload.  :func:`align`:

1. copies the original's weights and buffers into the port by (renamed) name, checking shapes
   (a transposed shape is called so); torch-only ``num_batches_tracked`` is known;
2. compares the frozen set, optimizer membership and every BatchNorm's ``eps``/``momentum``;
3. runs both on the same batch -- the original's, passed through numpy; the port's own batch
   only tells which leaves its loss wants as Jittor Vars and which as numpy -- with forward
   hooks on every module of both, and a third run: **the original in float64** (a deep copy,
   torch's default dtype float64 while it runs), the reference that calibrates the float32
   noise;
   Step 1 of the original also runs ``align_noise_samples`` more times in float32, on its
   batch moved by one ulp per element (:mod:`gradcheck.parity.noise`): more samples of
   float32 noise, since one run can sit far below what float32 does where a model amplifies
   noise;
4. per module (in the original's execution order): output difference against the reference,
   next to the original's own float32 difference (its noise floor: the largest over its run
   and the samples); the first module beyond tolerance is **the first divergence** (a module
   the port has but never called diverges);
5. loss and loss terms, then per parameter ``grad_rel = |g_port - g_64| / |g_64|`` judged
   against ``noise_floor = max_k |g_32,k - g_64| / |g_64|``: ok when within
   ``max(grad_tol, noise_factor * noise_floor)`` (or ``|g_port - g_64|`` below 1e-6 of the
   largest gradient);
6. both optimizers step (``--steps N`` in all, each step on ``batch_for(step)``) and the
   parameter values are compared: ``value_rel`` on the values, and judged (``value_ok``) on
   the updates (value after - value before) the same way as gradients;
7. noise or port bug: where float32 leaves a row beyond tolerance (``--float64 auto``; or
   ``always``), step 1 of the port is rerun in float64 and compared with the original's
   float64 run (:mod:`gradcheck.parity.float64`).  A row that agrees there is float32 noise
   the model amplified (a ReLU input near zero, a near tie) and is *explained*; a port bug
   differs at any precision.  ``first_divergence_f64`` names the first module whose float64
   output differs.

Tolerances come from the ``[gradcheck]`` config (``align_*``, see
:class:`~gradcheck.parity.alignment.Tolerances`).
Jittor is imported and made fork-safe before torch (:mod:`gradcheck.parity.torchenv`).

The result (:class:`~gradcheck.parity.alignment.Alignment`) is a ``schema_version``-ed JSON
object of kind ``align``.
"""

from __future__ import annotations

import copy
import ctypes
import gc
import platform
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np

from gradcheck.enums import Float64Mode
from gradcheck.parity import float64, noise, torchenv
from gradcheck.parity.across import NameMap
from gradcheck.parity.alignment import Alignment, Tolerances, verdict
from gradcheck.parity.batches import batch_for_port, batch_to_double, to_numpy_tree, to_torch_like
from gradcheck.parity.hooks import JittorOutputs, TorchOutputs, shape_only
from gradcheck.parity.judge import (
    judge_float64,
    judge_loss,
    judge_modules,
    judge_params,
    max_rel_scale,
    numeric_failures,
)
from gradcheck.parity.noise import NoiseSample
from gradcheck.parity.parking import ParkingLot, Reader
from gradcheck.parity.records import (
    Divergence,
    Float64Rerun,
    ForwardDivergence,
    FrozenDiff,
    Membership,
    ModuleRow,
    OptimizerDiff,
    WeightKeys,
    trainable_word,
)
from gradcheck.parity.steps import default_torch_optimizer, port_step, torch_step
from gradcheck.parity.weights import bn_settings, copy_weights
from gradcheck.workload import Workload, WorkloadError

MAX_LEAKS = 10  # float32 leaks into the port's float64 rerun kept in the result


@dataclass
class _PortState:
    """The port's Vars (:class:`gradcheck.graph.Entry`) and how the original's names pair
    with them."""

    params: list  # parameters, model order
    buffers: list
    entries: dict  # name or alias -> Entry
    pairs: dict[str, str]  # original name -> port name

    def trainable(self) -> list:
        """The parameters' Vars that take gradients."""
        return [e.var for e in self.params if not e.var.is_stop_grad()]


def _sides() -> dict:
    """An empty list for each of the three runs: the port, the original, its float64 copy."""
    return {"port": [], "original": [], "original_f64": []}


@dataclass
class _Runs:
    """What the steps leave for the judges: each side's loss and terms per step, step 1's
    outputs and gradients on each side, the noise samples."""

    ref: tuple | None  # the original's float64 copy (model, optimizer); None: none
    name_map: NameMap = field(default_factory=NameMap)  # original module -> port module
    noisy: tuple | None = None  # the pristine float32 copy the noise samples start from
    losses: dict[str, list[float]] = field(default_factory=_sides)
    terms: dict[str, list[dict[str, float]]] = field(default_factory=_sides)
    first_batch: tuple[Any, Any] | None = None  # step 1's (numpy batch, the port's template)
    grads_p: dict | None = None  # id(Var) -> gradient, the port's
    outs_p: dict | None = None  # module -> [[outputs]] per call, the port's
    grads_out_p: dict | None = None  # (module, call) -> [d loss / d output], the port's
    # the port's records measured against the float64 reference once it ran (then only their
    # shapes are kept): (port module, call) -> distance of its outputs, of d loss / d them
    port_rel: dict = field(default_factory=dict)
    port_grad_rel: dict = field(default_factory=dict)
    rec_o: TorchOutputs | None = None
    grads_o: dict | None = None  # name -> gradient, the original's
    rec_64: TorchOutputs | None = None
    grads_64: dict | None = None  # name -> gradient, the float64 reference's
    samples: list[NoiseSample] = field(default_factory=list)
    # where what is read only after the reference's step (the peak) waits it out
    lot: ParkingLot = field(default_factory=ParkingLot)

    def log(self, side: str, loss: float, terms: dict[str, float]) -> None:
        """One step's loss and terms of ``side``."""
        self.losses[side].append(loss)
        self.terms[side].append(terms)

    def measure_port(self) -> None:
        """The port's step-1 records against the float64 reference's, now that it ran: each
        record one original module pairs with keeps its distance and its shapes only, so the
        port's activations are not held through the original's run and the noise samples."""
        rec = self.rec_64
        if rec is None or self.outs_p is None or self.grads_out_p is None:
            return
        pairs = Counter(self.name_map(n) for n in rec.out)
        read_out, read_grads = Reader(), Reader()  # nested modules' shared arrays read once
        for name, calls in rec.out.items():
            target = self.name_map(name)
            if pairs[target] != 1:  # two original modules renamed to one: kept whole
                continue
            port_calls = self.outs_p.get(target, [])
            for call, ref in enumerate(calls[: len(port_calls)]):
                key = (target, call)
                self.port_rel[key] = max_rel_scale(read_out(port_calls[call]), ref)
                port_calls[call] = [shape_only(a.shape) for a in port_calls[call]]
                grads, ref_grads = self.grads_out_p.get(key), rec.grads.get((name, call))
                if grads is not None and ref_grads is not None:
                    self.port_grad_rel[key] = max_rel_scale(read_grads(grads), ref_grads)
                    self.grads_out_p[key] = [shape_only(a.shape) for a in grads]
        # what no reference record measured is judged whole (the gradients wait for the judge)
        self.outs_p, self.grads_out_p = self.lot.fetch_all((self.outs_p, self.grads_out_p))

    def park_port(self) -> None:
        """Park the port's step-1 records on disk while the reference steps (it has one):
        they are read again only after it."""
        if self.ref is not None:
            self.outs_p, self.grads_out_p, self.grads_p = self.lot.park(
                (self.outs_p, self.grads_out_p, self.grads_p)
            )

    def park_reference(self) -> None:
        """Park the float64 reference's records while the port reruns in float64 (the
        judge reads them one at a time after)."""
        if self.rec_64 is not None:
            rec = self.rec_64
            rec.out, rec.grads, self.grads_64 = self.lot.park((rec.out, rec.grads, self.grads_64))
            release_memory()

    def unpark(self) -> None:
        """Every parked record of the port back in memory (for the judges)."""
        self.outs_p, self.grads_out_p, self.grads_p = self.lot.fetch_all(
            (self.outs_p, self.grads_out_p, self.grads_p)
        )

    def release_float32(self, jt) -> None:
        """Drop the float32 runs' module records once judged (the float64 rerun compares with
        the reference only), and hand Jittor's cached blocks back."""
        self.outs_p = self.grads_out_p = self.rec_o = None
        release_memory(jt)


def align(
    port: Workload,
    original: Workload,
    name_map: NameMap | None = None,
    steps: int = 1,
    tolerances: Tolerances | None = None,
    seed: int | None = 0,
    calibrate: bool = True,
) -> Alignment:
    """Align ``port`` (Jittor) with ``original`` (torch); see the module doc."""
    torch = torchenv.import_torch(with_jittor=True)
    from gradcheck import runtime

    jt = runtime.import_jittor()
    t0 = time.time()
    name_map = name_map or NameMap()
    tol = tolerances or Tolerances()
    _check_inputs(port, original, steps, jt, torch)
    res = _new_result(port, original, steps, tol, name_map, jt, torch)
    if seed is not None:
        runtime.seed_everything(seed)
        torch.manual_seed(seed)
    pm, om = port.model, original.model
    pm.train()
    om.train()
    # 1. weights and buffers, by name
    side, res.keys = _copy_state(port, original, name_map, jt)
    res.bn_mismatch = bn_settings(pm, om, name_map, torch)
    # 2. frozen set and optimizer membership
    p_opt = _ensure_optimizers(port, original, side, torch)
    o_named = dict(om.named_parameters())
    res.membership = _membership(side, o_named, p_opt, original.optimizer)
    # 3. the float64 reference, and the original's float32 noise samples around it
    ref, noisy = _reference_copies(original, calibrate, tol, res.verdict.warnings)
    extra_port = [v for v in side.trainable() if id(v) not in p_opt]
    with ParkingLot() as lot:  # what is read only after the steps waits out their peak on disk
        initial = lot.park({n: p.detach().cpu().numpy().copy() for n, p in o_named.items()})
        port_vars, start = _rerun_start(side, pm, ref is not None, tol, jt)
        start = lot.park(start)
        runs = _Runs(ref, name_map, noisy=noisy, lot=lot)  # the steps' three runs, step 1 recorded
        del noisy  # runs drops it once the noise samples ran
        try:
            for step in range(1, steps + 1):
                _step(
                    port,
                    original,
                    step,
                    runs,
                    extra_port,
                    tol,
                    seed,
                    res.verdict.warnings,
                    jt,
                    torch,
                )
            res.calibrated = runs.ref is not None
            # 4. modules, 5. loss, gradients, 6. values
            port_modules = dict(pm.named_modules())
            _judge_float32(
                res, runs, side, o_named, lot.fetch_all(initial), name_map, port_modules, tol
            )
        finally:
            runs.release_float32(jt)
        # 7. noise or port bug? the port rerun in float64, where float32 left rows unexplained
        # (not where the reference failed during the steps: nothing to compare the rerun with)
        if (
            start is not None
            and res.calibrated
            and (tol.float64_mode == Float64Mode.ALWAYS or numeric_failures(res))
        ):
            start = lot.fetch_all(start)
            runs.park_reference()
            _rerun_float64(res, port, side, port_vars, start, runs, name_map, tol, jt)
    res.first_backward_divergence = _first_backward_divergence(res.modules)
    res.first_divergence = _first_divergence(res.modules)
    verdict(res)
    res.seconds = time.time() - t0
    return res


def _check_inputs(port: Workload, original: Workload, steps: int, jt, torch) -> None:
    """A positive number of steps, a Jittor port and a torch original, or WorkloadError."""
    if not isinstance(steps, int) or steps < 1:
        raise WorkloadError(f"steps must be a positive integer, got {steps!r}")
    if not isinstance(port.model, jt.nn.Module):
        raise WorkloadError(
            f"--port: the model is a {type(port.model).__name__}, not a jittor Module"
        )
    if not isinstance(original.model, torch.nn.Module):
        raise WorkloadError(
            f"--original: the model is a {type(original.model).__name__}, not a torch Module"
        )


def _new_result(
    port: Workload, original: Workload, steps: int, tol: Tolerances, name_map: NameMap, jt, torch
) -> Alignment:
    """The result before anything runs: what is aligned, with what, where and when."""
    res = Alignment(
        port=port.name,
        original=original.name,
        steps=steps,
        tolerances=tol,
        name_map=name_map.to_list(),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    res.environment = {
        "jittor": getattr(jt, "__version__", "?"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "device": "cpu",
    }
    return res


def _copy_state(
    port: Workload, original: Workload, name_map: NameMap, jt
) -> tuple[_PortState, WeightKeys]:
    """The original's weights and buffers copied into the port by (renamed) name."""
    from gradcheck.graph import inventory

    p_params, p_buffers = inventory(port.model, port.buffers)
    entries = {e.name: e for e in p_params + p_buffers}
    for e in p_params + p_buffers:
        for a in e.aliases:
            entries.setdefault(a, e)
    keys, pairs = copy_weights(entries, original.model, name_map, jt)
    keys.port_only = [n for n in keys.port_only if n in {e.name for e in p_params + p_buffers}]
    return _PortState(p_params, p_buffers, entries, pairs), keys


def _ensure_optimizers(port: Workload, original: Workload, side: _PortState, torch) -> set[int]:
    """Each side's optimizer, SGD where the workload has none; the ids of the Vars the
    port's holds."""
    from gradcheck.optimizers import optimizer_params
    from gradcheck.workload import default_optimizer

    if port.optimizer is None:
        port.optimizer = default_optimizer(side.trainable())
    if original.optimizer is None:
        original.optimizer = default_torch_optimizer(original.model, torch)
    return {id(v) for v in optimizer_params(port.optimizer)}


def _membership(side: _PortState, o_named: dict, p_opt: set[int], o_optimizer) -> Membership:
    """The paired parameters that train on one side only, or that one side's optimizer
    holds and the other's does not (only where either trains it)."""
    o_opt = {id(p) for g in o_optimizer.param_groups for p in g["params"]}
    frozen_diff: list[FrozenDiff] = []
    opt_diff: list[OptimizerDiff] = []
    for oname, p in o_named.items():
        target = side.pairs.get(oname)
        e = side.entries.get(target) if target else None
        if e is None or e.buffer:
            continue
        pt, ot = not e.var.is_stop_grad(), bool(p.requires_grad)
        if pt != ot:
            frozen_diff.append(FrozenDiff(e.name, oname, trainable_word(pt), trainable_word(ot)))
        pin, oin = id(e.var) in p_opt, id(p) in o_opt
        if pin != oin and (pt or ot):
            opt_diff.append(OptimizerDiff(e.name, oname, pin, oin))
    return Membership(frozen_diff, opt_diff)


def _reference_copies(
    original: Workload, calibrate: bool, tol: Tolerances, warnings: list[str]
) -> tuple[tuple | None, tuple | None]:
    """Copies of the original's (model, optimizer) taken before anything runs (same weights
    and buffers): the float64 reference, and the pristine float32 one the noise samples
    copy again (:mod:`gradcheck.parity.noise`).  None where a copy fails (a warning)."""
    ref = None
    if calibrate:
        try:
            m64, opt64 = copy.deepcopy((original.model, original.optimizer))
            m64.double()
            ref = (m64, opt64)
        # a model that cannot be copied or made float64 (deepcopy and .double() run the
        # model's own code, which may raise anything): judge without a floor, with a warning
        except Exception as exc:  # noqa: BLE001 - any copy failure only costs the floor
            warnings.append(f"no float64 reference ({type(exc).__name__}: {exc})")
    noisy = None
    if ref is not None and tol.noise_samples > 0:
        try:
            noisy = copy.deepcopy((original.model, original.optimizer))
        # the float64 copy above worked, so this one should too; as there, a failure only
        # costs the noise samples
        except Exception as exc:  # noqa: BLE001 - see above  # pragma: no cover
            warnings.append(f"no noise samples ({type(exc).__name__}: {exc})")
    return ref, noisy


def _rerun_start(
    side: _PortState, pm, calibrated: bool, tol: Tolerances, jt
) -> tuple[list, dict | None]:
    """Every float Var the port holds, and their values now: where the float64 rerun of the
    port starts from (:mod:`gradcheck.parity.float64`; None: it will not run)."""
    port_vars = list(
        {
            id(v): v
            for v in [e.var for e in side.params + side.buffers] + float64.model_vars(pm, jt)
        }.values()
    )
    start = (
        float64.snapshot(port_vars, jt)
        if calibrated and tol.float64_mode != Float64Mode.NEVER
        else None
    )
    return port_vars, start


def _step(
    port: Workload,
    original: Workload,
    step: int,
    runs: _Runs,
    extra_port: list,
    tol: Tolerances,
    seed: int | None,
    warnings: list[str],
    jt,
    torch,
) -> None:
    """One training step of both sides and of the float64 reference, on the original's
    batch; step 1 records outputs and gradients, and takes the noise samples."""
    batch_o = original.batch_for(step)
    batch_np = to_numpy_tree(batch_o)
    template = port.batch_for(step) if port.batch is not None else None
    batch_p = batch_for_port(batch_np, template, jt)
    batch_t = to_torch_like(batch_np, batch_o, torch)
    if step == 1:
        runs.first_batch = (batch_np, template)
    # the port runs first: Jittor compiles before torch's thread pools do any work
    lp, tp = _port_side(port, batch_p, extra_port, step == 1, runs, jt)
    if runs.ref is not None:
        # the reference before the original, on the same random draws: the original's run
        # is then measured against it as it goes, never held whole
        rng = _random_states(torch)
        try:
            _reference_side(original, batch_t, step == 1, runs, torch)
        except WorkloadError as exc:
            warnings.append(f"no float64 reference: {exc}")
            runs.ref, runs.rec_64, runs.grads_64 = None, None, None
        else:
            if step == 1:
                runs.measure_port()  # the port's records: distances from here on
                if runs.noisy:  # the noise samples, measured against the reference
                    _noise_samples(original, batch_np, batch_o, runs, tol, seed, warnings, torch)
        _set_random_states(rng, torch)
        if step == 1:  # later steps record nothing: nothing to hand back
            runs.noisy = None  # the noise samples' pristine copy: they ran
            release_memory()
    lo, to = _original_side(original, batch_t, step == 1, runs, torch)
    port.optimizer.step()
    original.optimizer.step()
    runs.log("port", lp, tp)
    runs.log("original", lo, to)


def _noise_samples(original, batch_np, batch_o, runs, tol, seed, warnings, torch) -> None:
    """The noise samples of step 1 into ``runs``; one that fails costs the samples (a
    warning), never the reference they are measured against."""
    assert runs.ref is not None and runs.rec_64 is not None and runs.grads_64 is not None
    ref = noise.Reference(runs.rec_64, runs.grads_64, runs.ref[0])
    try:
        runs.samples = [
            noise.sample(original, runs.noisy, batch_np, batch_o, k, seed or 0, torch, ref)
            for k in range(tol.noise_samples)
        ]
    except WorkloadError as exc:
        warnings.append(f"no noise samples: {exc}")
        runs.samples = []


def _random_states(torch) -> tuple:
    """torch's, numpy's and Python's random states now."""
    return torch.get_rng_state(), np.random.get_state(), random.getstate()


def _set_random_states(states: tuple, torch) -> None:
    torch.set_rng_state(states[0])
    np.random.set_state(states[1])
    random.setstate(states[2])


def release_memory(jt=None) -> None:
    """Hand freed memory back to the system: Jittor's cached blocks, and the C heap's free
    pages (glibc keeps freed blocks of up to 32 MB in its heap, where numpy's and torch's
    activation-sized arrays land once the mmap threshold has grown)."""
    gc.collect()
    if jt is not None:
        jt.gc()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def _port_side(
    port: Workload, batch, extra_port: list, record: bool, runs: _Runs, jt
) -> tuple[float, dict[str, float]]:
    """The port's forward, loss and backward: its loss and terms; with ``record`` (step 1),
    its outputs, d loss / d outputs and gradients kept in ``runs``."""
    if not record:
        lp, tp, _ = port_step(port, batch, extra_port, jt)
        return lp, tp
    rec_p = JittorOutputs(port.model, jt)
    with rec_p:
        lp, tp, gp = port_step(port, batch, extra_port, jt, rec_p)
    rec_p.fetch()
    runs.outs_p, runs.grads_p, runs.grads_out_p = rec_p.out, gp, rec_p.grads
    del rec_p, gp
    runs.park_port()
    release_memory(jt)
    return lp, tp


def _original_side(
    original: Workload, batch, record: bool, runs: _Runs, torch
) -> tuple[float, dict[str, float]]:
    """The original's forward, loss and backward, recorded as the port's (reduced to its
    distances from the float64 reference, where there is one)."""
    om, opt = original.model, original.optimizer
    if not record:
        lo, to, _ = torch_step(original, om, opt, batch, torch)
        return lo, to
    rec_o = TorchOutputs(om, torch, reference=runs.rec_64)  # reduced where there is one
    with rec_o:
        lo, to, go = torch_step(original, om, opt, batch, torch, rec_o)
    runs.rec_o, runs.grads_o = rec_o, go
    return lo, to


def _reference_side(original: Workload, batch_t, record: bool, runs: _Runs, torch) -> None:
    """The float64 reference's step, its optimizer's included, under torch's float64
    default dtype; recorded as the original's."""
    assert runs.ref is not None
    m64, opt64 = runs.ref
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        rec_64 = TorchOutputs(m64, torch) if record else None
        b64 = batch_to_double(batch_t, torch)
        if rec_64:
            with rec_64:
                l64, t64, g64 = torch_step(original, m64, opt64, b64, torch, rec_64)
            runs.rec_64, runs.grads_64 = rec_64, g64
        else:
            l64, t64, _ = torch_step(original, m64, opt64, b64, torch)
        opt64.step()
    finally:
        torch.set_default_dtype(old)
    runs.log("original_f64", l64, t64)


def _judge_float32(
    res: Alignment,
    runs: _Runs,
    side: _PortState,
    o_named: dict,
    initial: dict,
    name_map: NameMap,
    port_modules: dict,
    tol: Tolerances,
) -> None:
    """The modules, the loss and the parameters (gradients, then values after the steps)
    judged against the float64 reference, floors over the original's runs."""
    runs.unpark()  # where no reference measured them (it failed, or there is none)
    samples = runs.samples if res.calibrated else []
    res.noise_samples = len(samples)
    res.modules = judge_modules(
        runs.outs_p,
        runs.rec_o,
        runs.rec_64,
        name_map,
        port_modules,
        tol,
        runs.grads_out_p,
        samples,
        measured=(runs.port_rel, runs.port_grad_rel),
    )
    res.loss = judge_loss(runs.losses, runs.terms, tol, res.calibrated, samples)
    port_values = {e.name: e.var.numpy() for e in side.params}
    named_64 = dict(runs.ref[0].named_parameters()) if runs.ref else None
    res.params = judge_params(
        side.params,
        side.entries,
        side.pairs,
        o_named,
        runs.grads_p,
        runs.grads_o,
        runs.grads_64,
        port_values,
        named_64,
        tol,
        res.membership.frozen_diff,
        initial,
        samples,
        update_samples=samples if res.steps == 1 else (),
    )


def _rerun_float64(
    res: Alignment,
    port: Workload,
    side: _PortState,
    port_vars: list,
    start: dict,
    runs: _Runs,
    name_map: NameMap,
    tol: Tolerances,
    jt,
) -> None:
    """Step 1 of the port again in float64, judged against the original's float64 run: what
    float32 noise explains, and where float64 first differs.  A failed rerun explains
    nothing: the float32 verdicts stand."""
    assert runs.first_batch is not None  # steps >= 1 (checked first): set on step 1
    try:
        run64 = float64.rerun_port_float64(
            port, port_vars, start, side.trainable(), *runs.first_batch, jt
        )
    except float64.Float64RerunError as exc:
        res.float64_rerun = Float64Rerun(
            round(exc.seconds, 2), error=str(exc), float32_leaks=exc.leaks[:MAX_LEAKS]
        )
        return
    settled = judge_float64(
        res,
        run64,
        runs.grads_64,
        runs.rec_64,
        runs.losses,
        runs.terms,
        name_map,
        {e.name: e.var for e in side.params},
        tol,
    )
    res.float64_rerun = Float64Rerun(
        round(run64.seconds, 2),
        settled.explained,
        settled.float64_only,
        float32_leaks=run64.leaks[:MAX_LEAKS],
    )
    # a row judged beyond tolerance has its number: `is not None` is for the type checker
    res.first_divergence_f64 = next(
        (
            Divergence(m.original_module, m.module, m.rel_f64, m.type)
            for m in res.modules
            if m.ok_f64 is False and m.rel_f64 is not None
        ),
        None,
    )


def _first_backward_divergence(modules: list[ModuleRow]) -> Divergence | None:
    """The module closest to the loss whose d loss / d output is beyond tolerance."""
    return next(
        (
            Divergence(m.original_module, m.module, m.grad_rel, m.type)
            for m in reversed(modules)
            if m.grad_ok is False and m.grad_rel is not None
        ),
        None,
    )


def _first_divergence(modules: list[ModuleRow]) -> ForwardDivergence | None:
    """The first module, in execution order, whose output is beyond tolerance."""
    return next(
        (
            ForwardDivergence(m.original_module, m.module, m.rel, m.type, m.note)
            for m in modules
            if m.ok is False and m.rel is not None
        ),
        None,
    )


def run(
    port_spec: str,
    original_spec: str,
    map_path: str | None = None,
    config_path: str | None = None,
    steps: int = 1,
    seed: int = 0,
    float64_mode: str | None = None,
) -> Alignment:
    """What ``gradcheck align`` does: load both factories (Jittor made fork-safe before the
    original's torch code runs), read rename rules and tolerances (``float64_mode``, from
    ``--float64``, overrides the config's ``align_float64``), align."""
    from gradcheck import runtime
    from gradcheck.parity.across import load_name_map
    from gradcheck.policy import load_config
    from gradcheck.resolve import check_spec, load_workload

    check_spec(port_spec)
    check_spec(original_spec)
    policy = load_config(config_path).policy.with_overrides(align_float64=float64_mode)
    name_map = load_name_map(map_path, config_path)
    runtime.setup()
    torchenv.make_jittor_fork_safe()
    runtime.seed_everything(seed)
    port = load_workload(port_spec, seed=seed)
    original = load_workload(original_spec, seed=seed)
    from gradcheck import errors

    errors.reclaim_signals()  # Jittor's quick-exit handlers out: a crash is a crash, not 1
    return align(
        port,
        original,
        name_map=name_map,
        steps=steps,
        tolerances=Tolerances.from_policy(policy),
        seed=seed,
    )
