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
4. per module (in the original's execution order): output difference against the reference,
   next to the original's own float32 difference (its noise floor); the first module beyond
   tolerance is **the first divergence** (a module the port has but never called diverges);
5. loss and loss terms, then per parameter ``grad_rel = |g_port - g_64| / |g_64|`` judged
   against ``noise_floor = |g_32 - g_64| / |g_64|``: ok when within
   ``max(grad_tol, noise_factor * noise_floor)`` (or ``|g_port - g_64|`` below 1e-6 of the
   largest gradient);
6. both optimizers step (``--steps N`` in all, each step on ``batch_for(step)``) and the
   parameter values are compared: ``value_rel`` on the values, and judged (``value_ok``) on
   the updates (value after - value before) the same way as gradients.

Tolerances come from the ``[gradcheck]`` config (``align_*``, see :class:`Tolerances`).
Jittor is imported and made fork-safe before torch (:mod:`gradcheck.torchenv`).

The result (:class:`Alignment`) is a ``schema_version``-ed JSON object of kind ``align``.
"""

from __future__ import annotations

import copy
import math
import platform
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Optional

import numpy as np

from gradcheck import torchenv
from gradcheck.across import TORCH_ONLY_BUFFERS, NameMap, transposed
from gradcheck.workload import Workload, WorkloadError

ALIGN_SCHEMA_VERSION = 1
TINY = 1e-30


@dataclass
class Tolerances:
    output: float = 1e-3         # module outputs, scale-relative
    grad: float = 1e-3           # per-parameter gradient, relative
    loss: float = 1e-4           # loss and each loss term, relative
    value: float = 1e-3          # parameter updates (value after the steps - before), relative
    noise_factor: float = 10.0   # allowed multiple of the float64-calibrated noise floor

    @classmethod
    def from_policy(cls, policy) -> "Tolerances":
        return cls(output=policy.align_output_tol, grad=policy.align_grad_tol,
                   loss=policy.align_loss_tol, value=policy.align_value_tol,
                   noise_factor=policy.align_noise_factor)

    def allowed(self, tol: float, floor: Optional[float]) -> float:
        return max(tol, self.noise_factor * floor) if floor is not None else tol


@dataclass
class Alignment:
    port: str
    original: str
    steps: int
    tolerances: Tolerances
    verdict: dict = field(default_factory=lambda: {"result": "aligned", "reasons": [],
                                                   "warnings": []})
    first_divergence: Optional[dict] = None
    first_backward_divergence: Optional[dict] = None   # closest to the loss, d loss/d output
    keys: dict = field(default_factory=dict)
    bn_mismatch: list = field(default_factory=list)
    membership: dict = field(default_factory=dict)
    loss: dict = field(default_factory=dict)
    params: list = field(default_factory=list)
    modules: list = field(default_factory=list)
    environment: dict = field(default_factory=dict)
    name_map: list = field(default_factory=list)
    calibrated: bool = False
    seconds: float = 0.0
    created: str = ""

    @property
    def aligned(self) -> bool:
        return self.verdict["result"] == "aligned"

    def summary(self) -> dict:
        judged = [p for p in self.params if p.get("grad_rel") is not None]
        rel = [p["grad_rel"] for p in judged if p["grad_rel"] is not None]
        floors = [p["noise_floor"] for p in judged if p.get("noise_floor") is not None]
        return {"params": len(self.params), "grad_not_ok": sum(not p["ok"] for p in self.params),
                "grad_rel_median": float(np.median(rel)) if rel else None,
                "grad_rel_max": max(rel) if rel else None,
                "noise_floor_median": float(np.median(floors)) if floors else None,
                "modules": len(self.modules),
                "modules_not_ok": sum(m.get("ok") is False for m in self.modules),
                "values_not_ok": sum(p.get("value_ok") is False for p in self.params)}

    def to_dict(self) -> dict:
        from gradcheck.report import _finite, _version

        return _finite({
            "schema_version": ALIGN_SCHEMA_VERSION, "kind": "align",
            "tool": {"name": "gradcheck", "version": _version()}, "created": self.created,
            "config": {"port": self.port, "original": self.original, "steps": self.steps,
                       "tolerances": vars(self.tolerances), "name_map": self.name_map,
                       "calibrated": self.calibrated},
            "environment": self.environment, "verdict": self.verdict,
            "first_divergence": self.first_divergence,
            "first_backward_divergence": self.first_backward_divergence,
            "summary": self.summary(),
            "keys": self.keys, "bn_mismatch": self.bn_mismatch, "membership": self.membership,
            "loss": self.loss, "params": self.params, "modules": self.modules,
            "seconds": round(self.seconds, 2)})

    def to_json(self) -> str:
        import json

        return json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n"


# --------------------------------------------------------------------------- numbers
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


def rel_norm(a, ref) -> float:
    """|a - ref| / |ref| (L2): the gradient and value measure."""
    a, ref = _f64(a), _f64(ref)
    with np.errstate(invalid="ignore", over="ignore"):
        d = float(np.linalg.norm((a - ref).ravel()))
        s = float(np.linalg.norm(ref.ravel()))
    if not math.isfinite(d):
        return math.inf
    return 0.0 if d == 0 else d / (s + TINY)


# --------------------------------------------------------------------------- batches
def _leaves(obj) -> list:
    if isinstance(obj, dict):
        return [x for v in obj.values() for x in _leaves(v)]
    if isinstance(obj, (list, tuple)):
        return [x for v in obj for x in _leaves(v)]
    return [obj]


def to_numpy_tree(obj):
    """The batch with every tensor/Var/array leaf as a numpy array (a copy)."""
    if isinstance(obj, dict):
        return {k: to_numpy_tree(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_numpy_tree(v) for v in obj) if not hasattr(obj, "_fields") \
            else type(obj)(*[to_numpy_tree(v) for v in obj])
    if isinstance(obj, np.ndarray):
        return obj.copy()
    if hasattr(obj, "detach"):                         # torch
        return obj.detach().cpu().numpy().copy()
    if hasattr(obj, "numpy") and hasattr(obj, "shape"):  # jittor
        return obj.numpy().copy()
    return obj


def batch_for_port(batch_np, template, jt):
    """The numpy batch shaped for the port: a leaf becomes a Jittor Var where the port's own
    batch has one (or where there is no template), and stays numpy where the port keeps
    numpy."""
    if isinstance(batch_np, dict):
        t = template if isinstance(template, dict) else {}
        return {k: batch_for_port(v, t.get(k), jt) for k, v in batch_np.items()}
    if isinstance(batch_np, (list, tuple)):
        t = template if isinstance(template, (list, tuple)) and len(template) == len(batch_np) \
            else [None] * len(batch_np)
        items = [batch_for_port(v, tt, jt) for v, tt in zip(batch_np, t)]
        return type(batch_np)(*items) if hasattr(batch_np, "_fields") else type(batch_np)(items)
    if isinstance(batch_np, np.ndarray):
        if isinstance(template, np.ndarray):
            if template.shape != batch_np.shape:
                raise WorkloadError(f"the port's batch has a leaf of shape {list(template.shape)} "
                                    f"where the original's has {list(batch_np.shape)}")
            return batch_np.copy()
        if template is not None and hasattr(template, "shape") and \
                tuple(template.shape) != batch_np.shape:
            raise WorkloadError(f"the port's batch has a leaf of shape {list(template.shape)} "
                                f"where the original's has {list(batch_np.shape)}")
        return jt.array(batch_np)
    return batch_np


def batch_to_double(batch, torch):
    if isinstance(batch, dict):
        return {k: batch_to_double(v, torch) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        items = [batch_to_double(v, torch) for v in batch]
        return type(batch)(*items) if hasattr(batch, "_fields") else type(batch)(items)
    if isinstance(batch, torch.Tensor) and batch.is_floating_point():
        return batch.double()
    if isinstance(batch, np.ndarray) and batch.dtype.kind == "f":
        return batch.astype(np.float64)
    return batch


# --------------------------------------------------------------------------- hooks
class TorchOutputs:
    """Forward hooks on every named module (root included, as ""): outputs in call order,
    cloned at once (an in-place op later must not change what was recorded)."""

    def __init__(self, model, torch):
        self.model, self.torch = model, torch
        self.order: list = []       # [(name, call, type)]
        self.out: dict = {}         # name -> [[np leaves]]
        self.live: list = []        # per entry of order: [(output tensor, its version)]
        self.grads: dict = {}       # (name, call) -> [np d loss / d output]
        self._handles: list = []

    def output_grads(self, loss) -> None:
        """d loss / d every recorded output (before the backward that frees the graph)."""
        flat = [t for ts in self.live for t, _ in ts]
        if not flat or not loss.requires_grad:
            return
        try:
            gs = iter(self.torch.autograd.grad(loss, flat, retain_graph=True, allow_unused=True))
        except RuntimeError:    # e.g. an output changed in place later: no backward view
            self.live = []
            return
        for (name, call, _), ts in zip(self.order, self.live):
            got = [next(gs) for _ in ts]
            # an output changed in place later (e.g. ReLU(inplace=True)) is no longer the
            # tensor the hook saw: its gradient would be the in-place result's
            inplace = any(t._version != v for t, v in ts)
            if got and not inplace and all(g is not None for g in got):
                self.grads[(name, call)] = [g.detach().cpu().numpy().astype(np.float64)
                                            for g in got]
        self.live = []

    def __enter__(self):
        torch = self.torch
        for name, m in self.model.named_modules():
            def hook(mod, inp, out, name=name):
                tensors = [t for t in _leaves(out) if isinstance(t, torch.Tensor)]
                leaves = [t.detach().cpu().numpy().copy() for t in tensors]
                calls = self.out.setdefault(name, [])
                self.order.append((name, len(calls), type(mod).__name__))
                calls.append(leaves)
                self.live.append([(t, t._version) for t in tensors if t.requires_grad])
            self._handles.append(m.register_forward_hook(hook))
        return self

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        return False


class JittorOutputs:
    """Forward hooks on every named module of a Jittor model (an existing hook is chained
    and put back on exit); leaves are kept as Vars and fetched once after the step."""

    def __init__(self, model, jt):
        self.model, self.jt = model, jt
        self.out: dict = {}
        self.live: dict = {}        # (name, call) -> the output Vars, graph attached
        self.grads: dict = {}       # (name, call) -> [d loss / d output]
        self._saved: list = []

    def output_grads(self, loss) -> None:
        keys = [k for k, vs in self.live.items() if vs]
        unique: dict = {}          # a Var output by nested modules: asked for once
        for k in keys:
            for v in self.live[k]:
                unique.setdefault(id(v), v)
        if unique:
            with self.jt.log_capture_scope(log_v=0, log_silent=1):   # "no gradient" warnings
                gs = dict(zip(unique, self.jt.grad(loss, list(unique.values()),
                                                   retain_graph=True)))
            for k in keys:
                self.grads[k] = [gs[id(v)] for v in self.live[k]]
        self.live = {}

    def __enter__(self):
        jt = self.jt
        for name, m in self.model.named_modules():
            prev = m.__dict__.get("__fhook__")
            self._saved.append((m, prev))

            def hook(mod, args, out, *kw, name=name, prev=prev):
                vs = [v for v in _leaves(out) if isinstance(v, jt.Var)]
                calls = self.out.setdefault(name, [])
                self.live[(name, len(calls))] = [v for v in vs if _float_var(v)]
                calls.append([v.detach() for v in vs])
                if prev is not None:
                    return prev(mod, args, out, *kw)
                return None
            m.register_forward_hook(hook)
        return self

    def __exit__(self, *exc):
        for m, prev in self._saved:
            if prev is None:
                m.__dict__.pop("__fhook__", None)
            else:
                m.__dict__["__fhook__"] = prev
        return False

    def fetch(self) -> None:
        self.jt.sync([v for calls in self.out.values() for c in calls for v in c]
                     + [g for gs in self.grads.values() for g in gs])
        self.out = {k: [[v.numpy() for v in c] for c in calls] for k, calls in self.out.items()}
        self.grads = {k: [g.numpy() for g in gs] for k, gs in self.grads.items()}


def _float_var(v) -> bool:
    return str(v.dtype).startswith(("float", "bfloat")) and not v.is_stop_grad()


# --------------------------------------------------------------------------- the steps
def copy_weights(port_entries: dict, original, name_map: NameMap, jt) -> dict:
    """Original parameters and buffers -> the port, by mapped name; returns what happened."""
    keys = {"copied": 0, "original_only": [], "port_only": [], "shape_mismatch": [],
            "known_torch_only": 0, "pairs": {}}
    targeted = set()
    state = list(original.named_parameters()) + list(original.named_buffers())
    for name, t in state:
        if name.rpartition(".")[2] in TORCH_ONLY_BUFFERS:
            keys["known_torch_only"] += 1
            continue
        target = name_map(name)
        entry = port_entries.get(target)
        if entry is None:
            keys["original_only"].append(name)
            continue
        targeted.add(target)
        keys["pairs"][name] = target
        value = t.detach().cpu().numpy()
        if tuple(entry.var.shape) != tuple(value.shape):
            keys["shape_mismatch"].append({
                "name": target, "original_name": name, "port": list(entry.var.shape),
                "original": list(value.shape),
                "transposed": transposed(list(entry.var.shape), list(value.shape))})
            continue
        dtype = str(entry.var.dtype)      # the port keeps its own dtype (float32, int64...)
        entry.var.update(jt.array(value.astype(dtype if dtype in np.sctypeDict else value.dtype)))
        keys["copied"] += 1
    keys["port_only"] = [n for n in port_entries if n not in targeted]
    return keys


def bn_settings(port_model, original, name_map: NameMap, torch) -> list:
    port_mods = dict(port_model.named_modules())
    bad = []
    for name, m in original.named_modules():
        if not isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            continue
        mine = port_mods.get(name_map(name))
        if mine is None or not hasattr(mine, "eps"):
            continue
        for attr in ("eps", "momentum"):
            a, b = getattr(mine, attr, None), getattr(m, attr)
            if a is None or b is None:
                if a != b:
                    bad.append({"module": name_map(name), "original_module": name, "setting": attr,
                                "port": a, "original": b})
                continue
            if not math.isclose(float(a), float(b), rel_tol=1e-6):
                bad.append({"module": name_map(name), "original_module": name, "setting": attr,
                            "port": float(a), "original": float(b)})
    return bad


def _port_step(workload, batch, extra_trainable, jt, recorder=None):
    """Forward, loss and the optimizer's backward on the port: (loss, terms, {id: grad})."""
    from gradcheck.probe import call_loss

    loss, terms, _ = call_loss(workload.loss, workload.model, batch, workload.name)
    if recorder is not None:
        recorder.output_grads(loss)
    opt = workload.optimizer
    opt.backward(loss, retain_graph=bool(extra_trainable))
    extra_grads = jt.grad(loss, extra_trainable) if extra_trainable else []
    grads = {}
    for g in opt.param_groups:
        for v in g["params"]:
            if not v.is_stop_grad():
                grads[id(v)] = v.opt_grad(opt)
    for v, g in zip(extra_trainable, extra_grads):
        grads[id(v)] = g
    jt.sync([loss, *terms.values(), *grads.values()])
    return (float(loss.item()), {k: float(v.item()) for k, v in terms.items()},
            {k: g.numpy() for k, g in grads.items()})


def _torch_step(workload, model, optimizer, batch, torch, recorder=None):
    from gradcheck.torch_probe import call_loss

    optimizer.zero_grad(set_to_none=True)
    for p in model.parameters():
        p.grad = None
    loss, terms, _ = call_loss(workload, batch, model=model)
    if recorder is not None:
        recorder.output_grads(loss)
    if loss.requires_grad:
        loss.backward()
    grads = {n: (None if p.grad is None else p.grad.detach().cpu().numpy().astype(np.float64))
             for n, p in model.named_parameters()}
    return float(loss.detach()), {k: float(v.detach()) for k, v in terms.items()}, grads


def _default_torch_optimizer(model, torch):
    return torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01)


# --------------------------------------------------------------------------- align
def align(port: Workload, original: Workload, name_map: Optional[NameMap] = None, steps: int = 1,
          tolerances: Optional[Tolerances] = None, seed: Optional[int] = 0,
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
    keys = copy_weights(entries, om, name_map, jt)
    pairs = keys.pop("pairs")
    keys["port_only"] = [n for n in keys["port_only"]
                         if n in {e.name for e in p_params + p_buffers}]
    res.keys = keys
    res.bn_mismatch = bn_settings(pm, om, name_map, torch)

    # 2. frozen set and optimizer membership
    if port.optimizer is None:
        port.optimizer = default_optimizer([e.var for e in p_params if not e.var.is_stop_grad()])
    if original.optimizer is None:
        original.optimizer = _default_torch_optimizer(om, torch)
    p_opt = {id(v) for v in optimizer_params(port.optimizer)}
    o_opt = {id(p) for g in original.optimizer.param_groups for p in g["params"]}
    o_named = dict(om.named_parameters())
    frozen_diff, opt_diff = [], []
    for oname, p in o_named.items():
        target = pairs.get(oname)
        e = entries.get(target) if target else None
        if e is None or e.buffer:
            continue
        pt, ot = not e.var.is_stop_grad(), bool(p.requires_grad)
        if pt != ot:
            frozen_diff.append({"name": e.name, "original_name": oname,
                                "port": "trainable" if pt else "frozen",
                                "original": "trainable" if ot else "frozen"})
        pin, oin = id(e.var) in p_opt, id(p) in o_opt
        if pin != oin and (pt or ot):
            opt_diff.append({"name": e.name, "original_name": oname, "port": pin, "original": oin})
    res.membership = {"frozen_diff": frozen_diff, "optimizer_diff": opt_diff}

    initial = {n: p.detach().cpu().numpy().astype(np.float64) for n, p in o_named.items()}
    # 3. the float64 reference: a copy taken before anything runs (same weights and buffers)
    ref = None
    if calibrate:
        try:
            m64, opt64 = copy.deepcopy((om, original.optimizer))
            m64.double()
            ref = (m64, opt64)
        except Exception as exc:   # a model that cannot be copied: judge without a floor
            res.verdict["warnings"].append(f"no float64 reference ({type(exc).__name__}: {exc})")
    extra_port = [e.var for e in p_params if not e.var.is_stop_grad() and id(e.var) not in p_opt]

    losses = {"port": [], "original": [], "original_f64": []}
    terms_log = {"port": [], "original": [], "original_f64": []}
    grads_p = grads_o = grads_64 = None
    outs_p = outs_o = outs_64 = None
    for step in range(1, steps + 1):
        batch_o = original.batch_for(step)
        batch_np = to_numpy_tree(batch_o)
        batch_p = batch_for_port(batch_np, port.batch_for(step) if port.batch is not None
                                 else None, jt)
        batch_t = _to_torch_like(batch_np, batch_o, torch)
        # the port runs first: Jittor compiles before torch's thread pools do any work
        rec_p = JittorOutputs(pm, jt) if step == 1 else None
        if rec_p:
            with rec_p:
                lp, tp, gp = _port_step(port, batch_p, extra_port, jt, rec_p)
            rec_p.fetch()
            outs_p, grads_p, grads_out_p = rec_p.out, gp, rec_p.grads
        else:
            lp, tp, _ = _port_step(port, batch_p, extra_port, jt)
        rec_o = TorchOutputs(om, torch) if step == 1 else None
        if rec_o:
            with rec_o:
                lo, to, go = _torch_step(original, om, original.optimizer, batch_t, torch,
                                         rec_o)
            outs_o, grads_o = rec_o, go
        else:
            lo, to, _ = _torch_step(original, om, original.optimizer, batch_t, torch)
        if ref is not None:
            try:
                old = torch.get_default_dtype()
                torch.set_default_dtype(torch.float64)
                try:
                    rec_64 = TorchOutputs(ref[0], torch) if step == 1 else None
                    b64 = batch_to_double(batch_t, torch)
                    if rec_64:
                        with rec_64:
                            l64, t64, g64 = _torch_step(original, ref[0], ref[1], b64, torch,
                                                        rec_64)
                        outs_64, grads_64 = rec_64, g64
                    else:
                        l64, t64, _ = _torch_step(original, ref[0], ref[1], b64, torch)
                    ref[1].step()
                finally:
                    torch.set_default_dtype(old)
                losses["original_f64"].append(l64)
                terms_log["original_f64"].append(t64)
            except WorkloadError as exc:
                res.verdict["warnings"].append(f"no float64 reference: {exc}")
                ref, outs_64, grads_64 = None, None, None
        port.optimizer.step()
        original.optimizer.step()
        losses["port"].append(lp)
        losses["original"].append(lo)
        terms_log["port"].append(tp)
        terms_log["original"].append(to)
    res.calibrated = ref is not None

    # 4. modules, 5. loss, gradients, 6. values
    res.modules = judge_modules(outs_p, outs_o, outs_64, name_map, dict(pm.named_modules()), tol,
                                grads_out_p)
    res.first_backward_divergence = next(
        ({"module": m["original_module"], "port_module": m["module"], "rel": m["grad_rel"],
          "type": m["type"]} for m in reversed(res.modules) if m.get("grad_ok") is False), None)
    res.first_divergence = next(({"module": m["original_module"], "port_module": m["module"],
                                  "rel": m["rel"], "type": m["type"], "note": m.get("note")}
                                 for m in res.modules if m["ok"] is False), None)
    res.loss = judge_loss(losses, terms_log, tol, res.calibrated)
    port_values = {e.name: e.var.numpy() for e in p_params}
    res.params = judge_params(p_params, entries, pairs, o_named, grads_p, grads_o, grads_64,
                              port_values, dict(ref[0].named_parameters()) if ref else None,
                              tol, frozen_diff, initial)
    verdict(res)
    res.seconds = time.time() - t0
    return res


def _to_torch_like(batch_np, batch_o, torch):
    """The original's own batch, as torch tensors where it has them (numpy kept as numpy)."""
    if isinstance(batch_o, dict):
        return {k: _to_torch_like(batch_np[k], v, torch) for k, v in batch_o.items()}
    if isinstance(batch_o, (list, tuple)):
        items = [_to_torch_like(a, b, torch) for a, b in zip(batch_np, batch_o)]
        return type(batch_o)(*items) if hasattr(batch_o, "_fields") else type(batch_o)(items)
    if isinstance(batch_o, torch.Tensor):
        return torch.from_numpy(np.ascontiguousarray(batch_np))
    return batch_o


def judge_modules(outs_p, rec_o, rec_64, name_map, port_modules, tol, grads_p=None) -> list:
    rows = []
    grads_p = grads_p or {}
    for name, call, typ in rec_o.order:
        target = name_map(name)
        row = {"module": target, "original_module": name, "type": typ, "call": call,
               "rel": None, "noise_floor": None, "ok": None}
        rows.append(row)
        o = rec_o.out[name][call]
        ref = rec_64.out[name][call] if rec_64 is not None and name in rec_64.out and \
            call < len(rec_64.out[name]) else o
        if target not in port_modules:
            row["note"] = "no module of that name in the port"
            continue
        calls = outs_p.get(target, [])
        if call >= len(calls):
            row.update(ok=False, rel=math.inf, note=("never called in the port" if not calls else
                                                     f"called {len(calls)} time(s) in the port"))
            continue
        p = calls[call]
        if len(p) != len(o):
            # an API difference (e.g. the original also returns its feature maps): the
            # leading outputs are compared, and must then agree in shape
            row["note"] = (f"{len(p)} output(s) in the port, {len(o)} in the original: "
                           f"the first {min(len(p), len(o))} compared")
            if not p or not o:
                row.update(ok=False, rel=math.inf)
                continue
        rel, floor = 0.0, 0.0
        for a, b, r in zip(p, o, ref):
            if tuple(a.shape) != tuple(b.shape):
                row.update(ok=False, rel=math.inf,
                           note=f"output shape {list(a.shape)} vs {list(b.shape)}")
                break
            rel = max(rel, rel_scale(a, r))
            if rec_64 is not None:
                floor = max(floor, rel_scale(b, r))
        else:
            row["rel"] = rel
            row["noise_floor"] = floor if rec_64 is not None else None
            row["ok"] = bool(rel <= tol.allowed(tol.output, row["noise_floor"]))
        # backward: d loss / d this output, on both sides
        gp, go = grads_p.get((target, call)), rec_o.grads.get((name, call))
        g64 = rec_64.grads.get((name, call)) if rec_64 is not None else None
        gref = g64 if g64 is not None else go
        if gp is None or go is None or len(gp) != len(go) or \
                any(tuple(a.shape) != tuple(b.shape) for a, b in zip(gp, go)):
            continue
        row["grad_rel"] = max((rel_scale(a, r) for a, r in zip(gp, gref)), default=0.0)
        row["grad_floor"] = (max((rel_scale(b, r) for b, r in zip(go, g64)), default=0.0)
                             if g64 is not None else None)
        row["grad_ok"] = bool(row["grad_rel"] <= tol.allowed(tol.grad, row["grad_floor"]))
    return rows


def judge_loss(losses, terms_log, tol, calibrated) -> dict:
    def one(p, o, r):
        ref = r if r is not None else o
        rel = abs(p - ref) / (abs(ref) + TINY) if p != ref else 0.0
        floor = abs(o - r) / (abs(r) + TINY) if r is not None else None
        return rel, floor, bool(rel <= tol.allowed(tol.loss, floor))

    r0 = losses["original_f64"][0] if calibrated else None
    rel, floor, ok = one(losses["port"][0], losses["original"][0], r0)
    out = {"port": losses["port"], "original": losses["original"],
           "original_f64": losses["original_f64"] if calibrated else None,
           "rel": rel, "noise_floor": floor, "ok": ok, "terms": []}
    tp, to = terms_log["port"][0], terms_log["original"][0]
    t64 = terms_log["original_f64"][0] if calibrated else {}
    for name in list(to) + [n for n in tp if n not in to]:
        if name not in tp or name not in to:
            out["terms"].append({"name": name, "port": tp.get(name), "original": to.get(name),
                                 "ok": False, "note": "on one side only"})
            continue
        rel, floor, ok = one(tp[name], to[name], t64.get(name))
        out["terms"].append({"name": name, "port": tp[name], "original": to[name], "rel": rel,
                             "noise_floor": floor, "ok": ok})
    return out


def judge_params(p_params, entries, pairs, o_named, grads_p, grads_o, grads_64, port_values,
                 named_64, tol, frozen_diff, initial) -> list:
    frozen_names = {d["original_name"]: d for d in frozen_diff}
    ref_grads = grads_64 if grads_64 is not None else grads_o
    gmax = max((float(np.linalg.norm(g)) for g in ref_grads.values() if g is not None),
               default=0.0)
    rows = []
    for oname, p in o_named.items():
        target = pairs.get(oname)
        e = entries.get(target) if target else None
        if e is None or e.buffer:
            continue
        row = {"name": e.name, "original_name": oname, "shape": list(e.var.shape),
               "grad_rel": None, "noise_floor": None, "ok": True}
        rows.append(row)
        if list(e.var.shape) != list(p.shape):
            row.update(ok=False, note="shape mismatch: not copied, not compared")
            continue
        go, gr = grads_o.get(oname), ref_grads.get(oname)
        trainable_p = not e.var.is_stop_grad()
        gp = grads_p.get(id(e.var)) if trainable_p else None
        if oname in frozen_names:
            row.update(ok=False, note=f"{frozen_names[oname]['port']} in the port, "
                                      f"{frozen_names[oname]['original']} in the original")
        if gr is None and gp is None:
            row["grad_rel"] = 0.0 if p.requires_grad or trainable_p else None
        else:
            gr = np.zeros(p.shape) if gr is None else gr
            gp = np.zeros(p.shape) if gp is None else _f64(gp)
            diff = float(np.linalg.norm((gp - gr).ravel()))
            den = float(np.linalg.norm(gr.ravel()))
            row["grad_rel"] = 0.0 if diff == 0 else diff / (den + TINY)
            floor_abs = None
            if grads_64 is not None:
                go = np.zeros(p.shape) if go is None else go
                floor_abs = float(np.linalg.norm((go - gr).ravel()))
                row["noise_floor"] = 0.0 if floor_abs == 0 else floor_abs / (den + TINY)
            allowed = max(tol.grad * den, 1e-6 * gmax,
                          tol.noise_factor * floor_abs if floor_abs is not None else 0.0)
            row["grad_norm"] = den
            if diff > allowed:
                row["ok"] = False
    # values after the steps, judged on the update (value - initial value) like a gradient
    updates = {}
    for row in rows:
        oname = row["original_name"]
        wp = port_values.get(row["name"])
        wo = o_named[oname].detach().cpu().numpy().astype(np.float64)
        if wp is None or wp.shape != wo.shape:
            continue
        w64 = named_64[oname].detach().numpy() if named_64 else wo
        updates[oname] = (_f64(wp) - initial[oname], wo - initial[oname], w64 - initial[oname])
        row["value_rel"] = rel_norm(wp, w64)
    umax = max((float(np.linalg.norm(u[2])) for u in updates.values()), default=0.0)
    for row in rows:
        u = updates.get(row["original_name"])
        if u is None:
            continue
        up, uo, u64 = u
        diff = float(np.linalg.norm((up - u64).ravel()))
        den = float(np.linalg.norm(u64.ravel()))
        row["update_rel"] = 0.0 if diff == 0 else diff / (den + TINY)
        floor_abs = float(np.linalg.norm((uo - u64).ravel())) if named_64 else None
        row["update_floor"] = (None if floor_abs is None else
                               0.0 if floor_abs == 0 else floor_abs / (den + TINY))
        allowed = max(tol.value * den, 1e-6 * umax,
                      tol.noise_factor * floor_abs if floor_abs is not None else 0.0)
        row["value_ok"] = bool(diff <= allowed)
    return rows


def verdict(res: Alignment) -> None:
    reasons = res.verdict["reasons"]
    k = res.keys

    def names(items, key=None, n=3):
        shown = [i[key] if key else i for i in items[:n]]
        return ", ".join(map(str, shown)) + (f" (+{len(items) - n})" if len(items) > n else "")

    if k["shape_mismatch"]:
        reasons.append(f"shape mismatch: {len(k['shape_mismatch'])} "
                       f"({names(k['shape_mismatch'], 'name')})"
                       + (" -- transposed" if any(s["transposed"] for s in k["shape_mismatch"])
                          else ""))
    if k["original_only"]:
        reasons.append(f"in the original only: {len(k['original_only'])} "
                       f"({names(k['original_only'])})")
    if k["port_only"]:
        reasons.append(f"in the port only: {len(k['port_only'])} ({names(k['port_only'])})")
    if res.bn_mismatch:
        reasons.append("BatchNorm settings differ: " + ", ".join(
            f"{b['module']}.{b['setting']} {b['port']:g} vs {b['original']:g}"
            if isinstance(b["port"], float) and isinstance(b["original"], float)
            else f"{b['module']}.{b['setting']} {b['port']} vs {b['original']}"
            for b in res.bn_mismatch[:3]))
    if res.membership["frozen_diff"]:
        reasons.append(f"frozen set differs: {names(res.membership['frozen_diff'], 'name')}")
    if res.membership["optimizer_diff"]:
        reasons.append(f"optimizer membership differs: "
                       f"{names(res.membership['optimizer_diff'], 'name')}")
    if res.first_divergence:
        f = res.first_divergence
        reasons.append(f"first diverging module: {f['port_module']} (original "
                       f"{f['module']}, {f['type']}): "
                       + (f["note"] if f.get("note") else f"rel {f['rel']:.2e}"))
    if not res.loss["ok"]:
        reasons.append(f"loss differs: {res.loss['port'][0]:.6g} vs {res.loss['original'][0]:.6g} "
                       f"(rel {res.loss['rel']:.2e})")
    bad_terms = [t["name"] for t in res.loss["terms"] if not t["ok"]]
    if bad_terms:
        reasons.append(f"loss terms differ: {', '.join(bad_terms)}")
    bad = [p for p in res.params if not p["ok"]]
    if bad:
        fb = res.first_backward_divergence
        reasons.append(f"gradients beyond tolerance: {len(bad)} parameter(s) "
                       f"({names(bad, 'name')})"
                       + (f"; backward from the loss, d loss/d output first diverges at "
                          f"{fb['port_module'] or '<root>'} (rel {fb['rel']:.2e})" if fb else ""))
    badv = [p for p in res.params if p.get("value_ok") is False]
    if badv:
        reasons.append(f"values after {res.steps} step(s) beyond tolerance: {len(badv)} "
                       f"({names(badv, 'name')})")
    if not res.calibrated:
        res.verdict["warnings"].append("no float64 reference: judged on the plain tolerances")
    res.verdict["result"] = "not_aligned" if reasons else "aligned"


def run(port_spec: str, original_spec: str, map_path: Optional[str] = None,
        config_path: Optional[str] = None, steps: int = 1, seed: int = 0) -> Alignment:
    """What ``gradcheck align`` does: load both factories (Jittor made fork-safe before the
    original's torch code runs), read rename rules and tolerances, align."""
    from gradcheck import runtime
    from gradcheck.across import load_name_map
    from gradcheck.policy import load_config
    from gradcheck.resolve import check_spec, load_workload

    check_spec(port_spec)
    check_spec(original_spec)
    policy = load_config(config_path).policy
    name_map = load_name_map(map_path, config_path)
    runtime.setup()
    torchenv.make_jittor_fork_safe()
    runtime.seed_everything(seed)
    port = load_workload(port_spec, seed=seed)
    original = load_workload(original_spec, seed=seed)
    return align(port, original, name_map=name_map, steps=steps,
                 tolerances=Tolerances.from_policy(policy), seed=seed)
