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
import platform
import time
from datetime import datetime, timezone
from typing import Any

import numpy as np

from gradcheck.enums import Float64Mode
from gradcheck.parity import float64, noise, torchenv
from gradcheck.parity.across import NameMap
from gradcheck.parity.alignment import Alignment, Tolerances, verdict
from gradcheck.parity.batches import batch_for_port, batch_to_double, to_numpy_tree, to_torch_like
from gradcheck.parity.hooks import JittorOutputs, TorchOutputs
from gradcheck.parity.judge import (
    judge_float64,
    judge_loss,
    judge_modules,
    judge_params,
    numeric_failures,
)
from gradcheck.parity.records import (
    Divergence,
    Float64Rerun,
    ForwardDivergence,
    FrozenDiff,
    Membership,
    OptimizerDiff,
    trainable_word,
)
from gradcheck.parity.steps import default_torch_optimizer, port_step, torch_step
from gradcheck.parity.weights import bn_settings, copy_weights
from gradcheck.workload import Workload, WorkloadError

MAX_LEAKS = 10      # float32 leaks into the port's float64 rerun kept in the result


def align(port: Workload, original: Workload, name_map: NameMap | None = None, steps: int = 1,
          tolerances: Tolerances | None = None, seed: int | None = 0,
          calibrate: bool = True) -> Alignment:
    """Align ``port`` (Jittor) with ``original`` (torch); see the module doc."""
    torch = torchenv.import_torch(with_jittor=True)
    from gradcheck import runtime
    from gradcheck.graph import inventory
    from gradcheck.optimizers import optimizer_params
    from gradcheck.workload import default_optimizer

    jt = runtime.import_jittor()
    t0 = time.time()
    name_map = name_map or NameMap()
    tol = tolerances or Tolerances()
    if not isinstance(steps, int) or steps < 1:
        raise WorkloadError(f"steps must be a positive integer, got {steps!r}")
    if not isinstance(port.model, jt.nn.Module):
        raise WorkloadError(f"--port: the model is a {type(port.model).__name__}, "
                            "not a jittor Module")
    if not isinstance(original.model, torch.nn.Module):
        raise WorkloadError(f"--original: the model is a {type(original.model).__name__}, "
                            "not a torch Module")
    res = Alignment(port=port.name, original=original.name, steps=steps, tolerances=tol,
                    name_map=name_map.to_list(),
                    created=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    res.environment = {"jittor": getattr(jt, "__version__", "?"), "torch": torch.__version__,
                       "python": platform.python_version(), "numpy": np.__version__,
                       "device": "cpu"}
    if seed is not None:
        runtime.seed_everything(seed)
        torch.manual_seed(seed)
    pm, om = port.model, original.model
    pm.train()
    om.train()

    # 1. weights and buffers, by name
    p_params, p_buffers = inventory(pm, port.buffers)
    entries = {e.name: e for e in p_params + p_buffers}
    for e in p_params + p_buffers:
        for a in e.aliases:
            entries.setdefault(a, e)
    keys, pairs = copy_weights(entries, om, name_map, jt)
    keys.port_only = [n for n in keys.port_only if n in {e.name for e in p_params + p_buffers}]
    res.keys = keys
    res.bn_mismatch = bn_settings(pm, om, name_map, torch)

    # 2. frozen set and optimizer membership
    if port.optimizer is None:
        port.optimizer = default_optimizer([e.var for e in p_params if not e.var.is_stop_grad()])
    if original.optimizer is None:
        original.optimizer = default_torch_optimizer(om, torch)
    p_opt = {id(v) for v in optimizer_params(port.optimizer)}
    o_opt = {id(p) for g in original.optimizer.param_groups for p in g["params"]}
    o_named = dict(om.named_parameters())
    frozen_diff: list[FrozenDiff] = []
    opt_diff: list[OptimizerDiff] = []
    for oname, p in o_named.items():
        target = pairs.get(oname)
        e = entries.get(target) if target else None
        if e is None or e.buffer:
            continue
        pt, ot = not e.var.is_stop_grad(), bool(p.requires_grad)
        if pt != ot:
            frozen_diff.append(FrozenDiff(e.name, oname, trainable_word(pt), trainable_word(ot)))
        pin, oin = id(e.var) in p_opt, id(p) in o_opt
        if pin != oin and (pt or ot):
            opt_diff.append(OptimizerDiff(e.name, oname, pin, oin))
    res.membership = Membership(frozen_diff, opt_diff)

    initial = {n: p.detach().cpu().numpy().astype(np.float64) for n, p in o_named.items()}
    # 3. the float64 reference: a copy taken before anything runs (same weights and buffers)
    ref = None
    if calibrate:
        try:
            m64, opt64 = copy.deepcopy((om, original.optimizer))
            m64.double()
            ref = (m64, opt64)
        # a model that cannot be copied or made float64 (deepcopy and .double() run the
        # model's own code, which may raise anything): judge without a floor, with a warning
        except Exception as exc:  # noqa: BLE001 - any copy failure only costs the floor
            res.verdict.warnings.append(f"no float64 reference ({type(exc).__name__}: {exc})")
    # copies of the original for the noise floor's one-ulp samples (gradcheck.parity.noise)
    noisy = None
    if ref is not None and tol.noise_samples > 0:
        try:
            noisy = copy.deepcopy((om, original.optimizer))
        # the float64 copy above worked, so this one should too; as there, a failure only
        # costs the noise samples
        except Exception as exc:  # noqa: BLE001 - see above  # pragma: no cover
            res.verdict.warnings.append(f"no noise samples ({type(exc).__name__}: {exc})")
    samples = []
    extra_port = [e.var for e in p_params if not e.var.is_stop_grad() and id(e.var) not in p_opt]
    # the float64 rerun of the port starts from here (gradcheck.parity.float64), on every
    # float Var the model holds
    port_vars = list({id(v): v for v in [e.var for e in p_params + p_buffers]
                      + float64.model_vars(pm, jt)}.values())
    start = (float64.snapshot(port_vars, jt)
             if ref is not None and tol.float64_mode != Float64Mode.NEVER else None)
    first_batch: tuple[Any, Any] | None = None   # step 1's (numpy batch, the port's template)

    losses: dict[str, list[float]] = {"port": [], "original": [], "original_f64": []}
    terms_log: dict[str, list[dict[str, float]]] = {"port": [], "original": [],
                                                     "original_f64": []}
    grads_p = grads_o = grads_64 = None
    outs_p = outs_o = outs_64 = None
    for step in range(1, steps + 1):
        batch_o = original.batch_for(step)
        batch_np = to_numpy_tree(batch_o)
        template = port.batch_for(step) if port.batch is not None else None
        batch_p = batch_for_port(batch_np, template, jt)
        batch_t = to_torch_like(batch_np, batch_o, torch)
        if step == 1:
            first_batch = (batch_np, template)
        # the port runs first: Jittor compiles before torch's thread pools do any work
        rec_p = JittorOutputs(pm, jt) if step == 1 else None
        if rec_p:
            with rec_p:
                lp, tp, gp = port_step(port, batch_p, extra_port, jt, rec_p)
            rec_p.fetch()
            outs_p, grads_p, grads_out_p = rec_p.out, gp, rec_p.grads
        else:
            lp, tp, _ = port_step(port, batch_p, extra_port, jt)
        rec_o = TorchOutputs(om, torch) if step == 1 else None
        if rec_o:
            with rec_o:
                lo, to, go = torch_step(original, om, original.optimizer, batch_t, torch,
                                         rec_o)
            outs_o, grads_o = rec_o, go
        else:
            lo, to, _ = torch_step(original, om, original.optimizer, batch_t, torch)
        if ref is not None:
            try:
                old = torch.get_default_dtype()
                torch.set_default_dtype(torch.float64)
                try:
                    rec_64 = TorchOutputs(ref[0], torch) if step == 1 else None
                    b64 = batch_to_double(batch_t, torch)
                    if rec_64:
                        with rec_64:
                            l64, t64, g64 = torch_step(original, ref[0], ref[1], b64, torch,
                                                        rec_64)
                        outs_64, grads_64 = rec_64, g64
                    else:
                        l64, t64, _ = torch_step(original, ref[0], ref[1], b64, torch)
                    ref[1].step()
                finally:
                    torch.set_default_dtype(old)
                losses["original_f64"].append(l64)
                terms_log["original_f64"].append(t64)
                if step == 1 and noisy:   # the noise samples, measured against the reference
                    samples = [noise.sample(original, noisy, batch_np, batch_o, k, seed or 0,
                                            torch, outs_64) for k in range(tol.noise_samples)]
            except WorkloadError as exc:
                res.verdict.warnings.append(f"no float64 reference: {exc}")
                ref, outs_64, grads_64 = None, None, None
        port.optimizer.step()
        original.optimizer.step()
        losses["port"].append(lp)
        losses["original"].append(lo)
        terms_log["port"].append(tp)
        terms_log["original"].append(to)
    res.calibrated = ref is not None

    # 4. modules, 5. loss, gradients, 6. values
    samples = samples if res.calibrated else []
    res.noise_samples = len(samples)
    res.modules = judge_modules(outs_p, outs_o, outs_64, name_map, dict(pm.named_modules()), tol,
                                grads_out_p, samples)
    res.loss = judge_loss(losses, terms_log, tol, res.calibrated, samples)
    port_values = {e.name: e.var.numpy() for e in p_params}
    res.params = judge_params(p_params, entries, pairs, o_named, grads_p, grads_o, grads_64,
                              port_values, dict(ref[0].named_parameters()) if ref else None,
                              tol, frozen_diff, initial, samples,
                              update_samples=samples if steps == 1 else ())
    # 7. noise or port bug? the port rerun in float64, where float32 left rows unexplained
    if start is not None and (tol.float64_mode == Float64Mode.ALWAYS or numeric_failures(res)):
        trainable = [e.var for e in p_params if not e.var.is_stop_grad()]
        assert first_batch is not None   # steps >= 1 (checked above): set on step 1
        try:
            run64 = float64.rerun_port_float64(port, port_vars, start, trainable, *first_batch,
                                               jt)
        except float64.Float64RerunError as exc:   # the float32 verdicts stand, unexplained
            res.float64_rerun = Float64Rerun(round(exc.seconds, 2), error=str(exc),
                                             float32_leaks=exc.leaks[:MAX_LEAKS])
        else:
            settled = judge_float64(res, run64, grads_64, outs_64, losses, terms_log, name_map,
                                    {e.name: e.var for e in p_params}, tol)
            res.float64_rerun = Float64Rerun(round(run64.seconds, 2), settled.explained,
                                             settled.float64_only,
                                             float32_leaks=run64.leaks[:MAX_LEAKS])
            res.first_divergence_f64 = next(
                (Divergence(m.original_module, m.module, m.rel_f64, m.type)
                 for m in res.modules if m.ok_f64 is False and m.rel_f64 is not None), None)
    res.first_backward_divergence = next(
        (Divergence(m.original_module, m.module, m.grad_rel, m.type)
         for m in reversed(res.modules) if m.grad_ok is False and m.grad_rel is not None), None)
    res.first_divergence = next(
        (ForwardDivergence(m.original_module, m.module, m.rel, m.type, m.note)
         for m in res.modules if m.ok is False and m.rel is not None), None)
    verdict(res)
    res.seconds = time.time() - t0
    return res


def run(port_spec: str, original_spec: str, map_path: str | None = None,
        config_path: str | None = None, steps: int = 1, seed: int = 0,
        float64_mode: str | None = None) -> Alignment:
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

    errors.reclaim_signals()   # Jittor's quick-exit handlers out: a crash is a crash, not 1
    return align(port, original, name_map=name_map, steps=steps,
                 tolerances=Tolerances.from_policy(policy), seed=seed)
