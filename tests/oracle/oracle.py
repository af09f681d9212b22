"""The brute-force oracle: what training did to every Var of a set-up, with plain Jittor.

Nothing here comes from gradcheck's probe.  The oracle runs the same training steps as the
probe (per step, per phase in order: ``accumulate`` x (forward, loss, ``optimizer.backward``),
then ``optimizer.step()``) on its own copy of the set-up, and for every Var it finds:

* **names**: every attribute path that leads to it from the model (module attributes,
  ``Sequential``/``ModuleList`` children and plain list/tuple/dict attributes, with indices or
  keys: ``plain.0.weight``, ``heads.n3.bias``), else ``optimizer[g].params[i]`` of the phase
  whose optimizer holds it; the walk runs before step 1 and after every forward, so a layer
  created lazily is found on the step it appears;
* **gradients**: for each trainable Var separately, ``jt.grad(loss, [v])`` of every loss that
  trains it (its optimizers' phases; every phase for one no optimizer holds), each call with a
  fresh Var name (Jittor warns once per name per process) inside a log capture.  Jittor's
  ``doesn't have gradient`` warning means no path: ``missing``; otherwise the values of the
  gradient summed over the micro-batches decide ``nonfinite`` / ``zero`` / ``nonzero``;
* **updates**: the value before the step's first forward against the value after its last
  optimizer step, and, for a step that left a value with a non-zero gradient unchanged,
  why: its group's lr is 0, or the update is below float32 precision (SGD: every
  ``|lr * (g + wd * w)|`` is under half an ulp of ``w``);
* **membership**: in ``model.parameters()`` before step 1, held by which optimizers, a buffer
  (``register_buffer`` or a norm's running statistics) or a parameter, trainable or not.

:func:`findings` turns a Var's truth into the words gradcheck must report (the target
semantics of issue 21: ``untracked``, ``never_updated``, ``trained_buffer`` included).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from gradcheck import runtime

jt = runtime.import_jittor()

BUFFER_KEYS = ("running_mean", "running_var", "num_batches_tracked")
_fresh = itertools.count()


@dataclass
class VarTruth:
    names: list                          # attribute paths, walk order; [] if none
    opt_names: list = field(default_factory=list)   # "optimizer[g].params[i]" per holding phase
    buffer: bool = False
    is_float: bool = True
    requires_grad: bool = True
    in_parameters: bool = False          # in model.parameters() before step 1
    phases: list = field(default_factory=list)      # phase names whose optimizer holds it
    lrs: dict = field(default_factory=dict)         # phase -> its group's lr
    appeared: int = 1                    # the step it was first seen
    steps: list = field(default_factory=list)       # per-step status from `appeared` on
    updated_steps: list = field(default_factory=list)
    stuck: list = field(default_factory=list)       # per step: None | "lr0" | "precision" | "?"
    changed: bool = False
    derived: bool = False                # computed from other Vars (weight norm's weight)

    @property
    def name(self) -> str:
        return self.names[0] if self.names else (self.opt_names[0] if self.opt_names else "?")

    @property
    def in_optimizer(self) -> bool:
        return bool(self.phases)

    @property
    def updated(self) -> bool:
        return any(self.updated_steps)

    @property
    def reached(self) -> bool:
        return any(s in ("nonzero", "zero", "nonfinite") for s in self.steps)

    @property
    def status(self) -> str:
        """The run status (the rules of the issue, written out again here)."""
        s = self.steps
        if not self.requires_grad or (s and all(x == "frozen" for x in s)):
            return "frozen"
        if "nonzero" in s:
            return "covered" if "nonfinite" not in s else "nonfinite"
        if "nonfinite" in s:
            return "nonfinite"
        return "zero" if "zero" in s else "missing"

    @property
    def optional(self) -> bool:
        """Not compared: a Var computed from others (weight norm's weight, each forward), or
        a frozen Var that neither parameters() nor an optimizer holds (created under no_grad,
        or a frozen lazy layer), or a frozen Var only an optimizer holds (Jittor's optimizers
        skip stop_grad Vars: it trains nothing either way): the probe may list it or not."""
        return ((self.derived and not self.in_optimizer)
                or (not self.requires_grad and not self.in_parameters and not self.in_optimizer)
                or (not self.requires_grad and not self.names))

    @property
    def expected_record(self) -> bool:
        """Must gradcheck list it?  What ``parameters()`` held before step 1, what an optimizer
        holds, and any other trainable Var of the model a loss reaches."""
        if self.buffer:      # a buffer outside parameters() and every optimizer: either way
            return self.in_parameters or self.in_optimizer
        return (self.in_parameters or self.in_optimizer
                or (bool(self.names) and self.requires_grad and self.reached))


def findings(t: VarTruth) -> set:
    """The findings (policy words) gradcheck must report for ``t``, in the target semantics."""
    if t.buffer:
        trained = t.in_optimizer and t.requires_grad and t.is_float
        return {"trained_buffer"} if trained else set()
    out = set()
    status = t.status
    if status in ("missing", "zero", "nonfinite"):
        out.add(status)
    if status == "frozen":
        out.add("frozen_undeclared")       # the generator never declares expected_frozen
    if t.requires_grad and not t.in_optimizer:
        out.add("not_in_optimizer" if t.in_parameters else "untracked")
    if (t.requires_grad and t.in_optimizer and "nonzero" in t.steps and not t.updated
            and not all(k == "precision" for s, k in zip(t.steps, t.stuck) if s == "nonzero")):
        out.add("never_updated")
    if "untracked" in out and status == "missing":
        out.discard("untracked")             # reached by no loss: not a trainable Var in use
    return out


# --------------------------------------------------------------------- walking the model
def walk(model) -> dict:
    """``{id(Var): (Var, [paths])}`` over the model's attributes, depth first, in attribute
    order; private attributes (``_x``) are skipped, as Jittor's own walk does."""
    out: dict = {}
    seen: set = set()

    def visit(obj, path):
        if isinstance(obj, jt.Var):
            out.setdefault(id(obj), (obj, []))[1].append(path)
            return
        if isinstance(obj, jt.nn.Module):
            if id(obj) in seen:
                return
            seen.add(id(obj))
            items = obj.__dict__.items()
            if isinstance(obj, jt.nn.Sequential):
                items = list(items) + list(obj.layers.items())
            elif isinstance(obj, jt.nn.ParameterList):
                items = list(items) + list(obj.params.items())
            for k, v in items:
                if isinstance(k, str) and k.startswith("_"):
                    continue
                if isinstance(obj, jt.nn.Sequential) and k == "layers":
                    continue
                visit(v, f"{path}.{k}" if path else str(k))
        elif isinstance(obj, (list, tuple)):
            for k, v in enumerate(obj):
                visit(v, f"{path}.{k}")
        elif isinstance(obj, dict):
            for k, v in obj.items():
                visit(v, f"{path}.{k}")

    visit(model, "")
    return out


def is_buffer(var, names) -> bool:
    """register_buffer'd, a norm's running statistics, or not a float (no gradient can
    flow to an integer Var)."""
    return (hasattr(var, "persistent") or not _is_float(var)
            or any(n.rsplit(".", 1)[-1] in BUFFER_KEYS for n in names))


def _is_float(var) -> bool:
    return str(var.dtype).startswith(("float", "bfloat"))


def derived(var, others: list) -> bool:
    """Is ``var`` computed from one of ``others`` (a path for gradients from it to them)?
    One ``jt.grad`` of its sum, fresh names: every Var it does not depend on warns."""
    if not _is_float(var) or var.is_stop_grad():
        return False
    unique = {id(o): o for o in others}      # one name each: a duplicate warns only once
    cands = [o for o in unique.values()
             if o is not var and _is_float(o) and not o.is_stop_grad()]
    if not cands:
        return False
    for o in cands:
        o.name(f"oracle_{next(_fresh)}")
    with jt.log_capture_scope(log_v=0, log_silent=1) as logs:
        jt.grad(var.sum(), cands)
    warned = sum("doesn't have gradient" in str(log.get("msg", "")) for log in logs)
    return warned < len(cands)


# --------------------------------------------------------------------- gradients
def _grad_status(loss, var):
    """(reached, gradient as numpy or None) of one Var: its own ``jt.grad`` call."""
    var.name(f"oracle_{next(_fresh)}")        # a fresh name: Jittor warns once per name
    with jt.log_capture_scope(log_v=0, log_silent=1) as logs:
        g = jt.grad(loss, [var])[0]
    missing = any("doesn't have gradient" in str(log.get("msg", "")) for log in logs)
    return (not missing), g


def values_status(g) -> str:
    g = np.asarray(g)
    if not np.isfinite(g).all():
        return "nonfinite"
    return "nonzero" if np.any(g != 0) else "zero"


def combine(statuses: list) -> str:
    """One step's status from its calls (phases): NaN anywhere wins, then the best."""
    for s in ("nonfinite", "nonzero", "zero"):
        if s in statuses:
            return s
    return "missing"


def _half_ulp(w):
    w = np.asarray(w, dtype=np.float32)
    return (np.spacing(np.abs(w)).astype(np.float64)) / 2


def _why_stuck(w, groups: list) -> str:
    """Why a non-zero gradient left ``w`` unchanged: ``lr0``, ``precision`` or ``?``.
    ``groups``: (lr, optimizer class, that phase's gradient or None) per group holding it.

    SGD: one plain step moves each element by ``|lr * g|`` (momentum, decay and accumulation
    change that by small factors: a slack of 2), and Jittor's kernels flush results below the
    smallest normal float32 to zero: the step is below precision when every element's move is
    under ``max(2 * half ulp, FLT_MIN)``.  Adam's arithmetic is not modelled: an Adam step with
    lr > 0 that left the value unchanged is taken as below precision."""
    moving = [(lr, kind, g) for lr, kind, g in groups
              if g is not None and np.any(np.asarray(g) != 0)]
    if all(lr == 0 for lr, _, _ in moving):
        return "lr0"
    if any(kind == "Adam" and lr > 0 for lr, kind, _ in moving):
        return "precision"
    bound = sum(lr * np.abs(np.asarray(g, dtype=np.float64)) for lr, _, g in moving)
    floor = np.maximum(2 * _half_ulp(w), np.finfo(np.float32).tiny)
    return "precision" if np.all(bound <= floor) else "?"


# --------------------------------------------------------------------- the run
@dataclass
class Truth:
    vars: dict                           # id -> VarTruth (ids of the oracle's copy)
    steps: int

    def params(self) -> list:
        return [t for t in self.vars.values() if not t.buffer and t.is_float]

    def buffers(self) -> list:
        return [t for t in self.vars.values() if t.buffer]


def _opt_params(opt) -> list:
    """[(group index, param index, Var, lr)] of an optimizer."""
    out = []
    for g, group in enumerate(opt.param_groups):
        for i, v in enumerate(group.get("params", [])):
            out.append((g, i, v, group.get("lr", opt.lr)))
    return out


def run(setup) -> Truth:
    """Train ``setup`` (a :class:`generate.Setup`) as the probe does and return the truth."""
    model, phases = setup.model, setup.phases
    multi = len(phases) > 1
    start = {id(v) for v in model.parameters()}
    held: dict = {}                      # id -> [(phase, g, i, lr)]
    kinds: dict = {}                     # phase -> optimizer class name
    for name, _, opt, _ in phases:
        kinds[name] = type(opt).__name__
        for g, i, v, lr in _opt_params(opt):
            held.setdefault(id(v), []).append((name, g, i, lr, v))
    truths: dict = {}
    live: dict = {}                      # id -> Var

    def discover(step: int, before: dict) -> None:
        found = walk(model)
        others = list(live.values()) + [v for v, _ in found.values()]
        for vid, (var, names) in found.items():
            if vid not in truths:
                t = _new_truth(var, names, step, vid in start, held.get(vid, ()), multi)
                t.derived = derived(var, others)
                t.buffer = t.buffer or (t.derived and not t.in_optimizer)
                truths[vid] = t
                live[vid] = var
                before[vid] = var.numpy().copy()
            else:
                t = truths[vid]
                t.names += [n for n in names if n not in t.names]
                t.buffer = is_buffer(var, t.names) or (t.derived and not t.in_optimizer)

    discover(1, {})                      # before step 1: what the model holds
    for vid, entries in held.items():    # Vars only an optimizer holds
        if vid not in truths:
            var = entries[0][4]
            truths[vid] = _new_truth(var, [], 1, vid in start, entries, multi)
            live[vid] = var

    for step in range(1, setup.steps + 1):
        before = {vid: v.numpy().copy() for vid, v in live.items()}
        discover(step, before)
        per_phase: dict = {}             # id -> [status per phase that trains it]
        lrs_now: dict = {}               # id -> [lr of each group holding it]
        for name, loss_fn, opt, acc in phases:
            reached: dict = {}
            gsum: dict = {}
            for _ in range(acc):
                loss = loss_fn(model, setup.batch(step))
                discover(step, before)
                trains = [vid for vid, t in truths.items()
                          if t.is_float and live[vid].is_stop_grad() is False
                          and (name in t.phases or not t.phases)
                          and not (t.derived and not t.in_optimizer)]
                got = {}
                for vid in trains:
                    ok, g = _grad_status(loss, live[vid])
                    got[vid] = (ok, g)
                jt.sync([g for _, g in got.values()])
                for vid, (ok, g) in got.items():
                    if ok:
                        reached[vid] = True
                        arr = g.numpy().astype(np.float64)
                        gsum[vid] = arr if vid not in gsum else gsum[vid] + arr
                    else:
                        reached.setdefault(vid, False)
                with jt.log_capture_scope(log_v=0, log_silent=1):
                    opt.backward(loss)
            with jt.log_capture_scope(log_v=0, log_silent=1):
                opt.step()
            for vid, ok in reached.items():
                per_phase.setdefault(vid, []).append(
                    values_status(gsum[vid]) if ok else "missing")
            for _g, _i, v, lr in _opt_params(opt):   # (lr, optimizer, this phase's gradient)
                lrs_now.setdefault(id(v), []).append((lr, kinds[name], gsum.get(id(v))))
        jt.sync_all()
        for vid, t in truths.items():
            if step < t.appeared:
                continue
            var = live[vid]
            after = var.numpy()
            changed = not np.array_equal(after, before[vid], equal_nan=True) \
                if _is_float(var) else not np.array_equal(after, before[vid])
            if var.is_stop_grad():
                st = "frozen"
            else:
                st = combine(per_phase.get(vid, ["missing"]))
            t.steps.append(st)
            t.updated_steps.append(changed)
            t.changed = t.changed or changed
            why = None
            if st == "nonzero" and not changed and t.in_optimizer:
                why = _why_stuck(before[vid], lrs_now.get(vid, []))
            t.stuck.append(why)
            t.requires_grad = t.requires_grad and not var.is_stop_grad()
    return Truth(truths, setup.steps)


def _new_truth(var, names, step, in_params, entries, multi) -> VarTruth:
    phases, opt_names, lrs = [], [], {}
    for name, g, i, lr, _ in entries:
        if name not in phases:
            phases.append(name)
        lrs[name] = lr
        opt_names.append(f"{name}.optimizer[{g}].params[{i}]" if multi
                         else f"optimizer[{g}].params[{i}]")
    return VarTruth(names=list(names), opt_names=opt_names, buffer=is_buffer(var, names),
                    is_float=_is_float(var), requires_grad=not var.is_stop_grad(),
                    in_parameters=in_params, phases=phases, lrs=lrs, appeared=step)
