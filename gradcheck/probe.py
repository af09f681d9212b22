"""The probe: run real training steps and record, for every parameter, what training did to it.

One probe step runs every phase of the workload (one phase per optimizer; a plain workload has
one), in order.  A phase (see :func:`run_phase`):

1. forward and loss, exactly as the workload defines them, ``accumulate`` times;
2. **the graph**: after each forward, which parameters have a differentiable path to the loss
   (and to each named loss term), and which ones an op of this forward read at all
   (:func:`gradcheck.graph.analyse`);
3. the optimizer's own backward (``optimizer.backward(loss)``), then the gradient read back with
   ``param.opt_grad(optimizer)``; trainable parameters outside every optimizer get theirs from
   the probe's own ``jt.grad``.  Each call runs in its own log capture, so a Jittor warning
   ``grads[N] ... doesn't have gradient`` is mapped through the list of the call that raised it;
4. the optimizer step.

Values are compared before and after the step ("updated" is not "has a gradient": decay and
momentum move parameters).  A step status comes from the graph and the gradient values only
(:mod:`gradcheck.status`); a warning is evidence that records whether the graph agrees.  The
model runs as handed over: no ``train()`` unless ``train_mode``, ``requires_grad`` untouched.
"""

from __future__ import annotations

import platform
import re
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import numpy as np

from gradcheck import graph, recorder, runtime, status
from gradcheck.enums import Status
from gradcheck.optimizers import backward_list, describe_optimizer, optimizer_params, rounds_away
from gradcheck.report import Report, jsonable
from gradcheck.schema import BufferRecord, ParamRecord, StepRecord, WarningRecord
from gradcheck.snapshot import GradSummary, Snapshot, grads_alongside, host_norm
from gradcheck.workload import Workload, WorkloadError, call_loss, default_optimizer

if TYPE_CHECKING:  # explain imports this module
    from gradcheck import explain

_GRAD_WARNING = re.compile(r"grads\[(\d+)\] '([^']*)' doesn't have gradient")


# --------------------------------------------------------------------- one run
@dataclass
class Run:
    """Per-run lookups: the model's Vars, the phases, who trains what."""

    workload: Workload
    params: list  # [graph.Entry]
    buffers: list
    phases: list  # [workload.Phase] with optimizers resolved
    owned: dict  # phase name -> indices of trainable params its optimizer holds
    extra: list  # trainable params outside every optimizer: the probe's jt.grad
    exact: set = field(default_factory=set)  # params whose gradients several calls sum
    calls: explain.CallRecorder | None = None  # set by check() (script mode has none)
    reads: graph.ReadRecorder | None = None
    on_step: Callable | None = None  # (step, steps, phase) progress callback
    steps: int = 1
    targets: list = field(default_factory=list)  # params then buffers: graph target indices
    snapshots: tuple = ()  # values before the step: compared with the last update
    seen: dict = field(default_factory=dict)  # id(Var) -> graph.Entry, every Var listed
    names: set = field(default_factory=set)  # every name listed (aliases too)
    tracked: set = field(default_factory=set)  # ids of model.parameters() when the run began
    held: set = field(default_factory=set)  # ids of the Vars any optimizer holds
    late: list = field(default_factory=list)  # Snapshots of the params new this step

    @property
    def multi(self) -> bool:
        return len(self.phases) > 1

    def tell(self, step: int, what: str) -> None:
        if self.on_step:
            self.on_step(step, self.steps, what)

    def owners(self, i: int) -> list:
        return [p.name for p in self.phases if i in self.owned[p.name]]


@dataclass
class PhaseResult:
    """What one phase of one step found."""

    name: str
    losses: list = field(default_factory=list)  # per micro-batch
    terms: dict = field(default_factory=dict)  # term -> [value per micro-batch]
    stats: dict = field(default_factory=dict)
    reached: set = field(default_factory=set)  # param indices with a path to a loss
    read: set = field(default_factory=set)  # param indices an op of a forward read
    term_reach: dict = field(default_factory=dict)
    grads: dict = field(default_factory=dict)  # param index -> (status, norm) of its gradient
    arrays: dict = field(default_factory=dict)  # param index -> gradient, for run.exact only
    warnings: list = field(default_factory=list)
    lrs: dict = field(default_factory=dict)  # param index -> its group's learning rate
    proofs: dict = field(default_factory=dict)  # param index -> graph.zero_proofs' finding


def prepare(workload: Workload) -> tuple:
    """Check the workload, switch to train mode if asked, list Vars, resolve optimizers.
    Returns ``(run, mode_changes, eval_frozen)``.

    The inventory is every Var the model holds (:func:`gradcheck.graph.walk`: Jittor's
    module tree and the plain lists and dicts it misses) and every Var an optimizer holds that
    the model does not (named ``optimizer[g].params[i]``).  A default optimizer trains what
    the model's own ``parameters()`` lists, as a user's ``SGD(model.parameters())`` would."""
    jt = runtime.import_jittor()
    model = workload.model
    if not isinstance(model, jt.nn.Module):
        raise WorkloadError(f"the model is a {type(model).__name__}, not a jittor Module")
    mode_changes = {}
    if workload.train_mode:
        before = {id(v): v.is_stop_grad() for v in model.parameters()}
        model.train()
        for v in model.parameters():
            if id(v) in before and before[id(v)] != v.is_stop_grad():
                mode_changes[id(v)] = "frozen" if v.is_stop_grad() else "unfrozen"
    frozen_by_eval = graph.eval_frozen(model)
    phases = workload.plan()
    held_vars = [
        v for p in phases if p.optimizer is not None for v in optimizer_params(p.optimizer)
    ]
    params, buffers = graph.inventory(model, workload.buffers, held=held_vars)
    for phase in phases:
        if not isinstance(phase.accumulate, int) or phase.accumulate < 1:
            raise WorkloadError(f"accumulate must be a positive integer, got {phase.accumulate!r}")
        if phase.optimizer is None:
            if len(phases) > 1:
                raise WorkloadError(f"phase {phase.name!r} has no optimizer")
            own = [e.var for e in params if e.tracked and not e.var.is_stop_grad()]
            if not own:
                why = (
                    f" ({len(frozen_by_eval)} frozen by eval mode: call model.train() or "
                    "use train_mode)"
                    if frozen_by_eval
                    else ""
                )
                raise WorkloadError("the model has no trainable parameters" + why)
            phase.optimizer = default_optimizer(own)
            if not workload.phases:
                workload.optimizer = phase.optimizer
    run = Run(workload, params, buffers, phases, owned={}, extra=[])
    run.tracked = {id(e.var) for e in params + buffers if e.tracked}
    for e in params + buffers:
        run.seen[id(e.var)] = e
        run.names.update([e.name, *e.aliases])
    for phase in phases:
        for g, group in enumerate(getattr(phase.optimizer, "param_groups", [])):
            for j, var in enumerate(group.get("params", [])):
                run.held.add(id(var))
                if id(var) not in run.seen and graph.is_float(var) and not var.is_stop_grad():
                    # the optimizer trains a Var the model does not hold (replaced after the
                    # optimizer was built?): listed, so that a gradient never reaching it shows
                    where = f"{phase.name}." if len(phases) > 1 else ""
                    entry = graph.Entry(
                        f"{where}optimizer[{g}].params[{j}]", var, "", tracked=False, held_only=True
                    )
                    run.seen[id(var)] = entry
                    run.names.add(entry.name)
                    params.append(entry)
    resolve_owners(run)
    return run, mode_changes, frozen_by_eval


def resolve_owners(run: Run) -> None:
    """Who trains what: each phase's optimizer's trainable parameters, the ones outside every
    optimizer (the probe's own gradient call serves them), and the targets of the graph."""
    trainable = [i for i, e in enumerate(run.params) if not e.var.is_stop_grad()]
    run.owned = {}
    for phase in run.phases:
        ids = {id(v) for v in optimizer_params(phase.optimizer)}
        run.owned[phase.name] = {i for i in trainable if id(run.params[i].var) in ids}
    run.extra = [i for i in trainable if id(run.params[i].var) not in run.held]
    # a step's gradient of these is the sum over several calls (every phase serves params
    # outside the optimizers; a param in two phases' optimizers gets two): kept as arrays
    several = {i for i in trainable if sum(i in o for o in run.owned.values()) > 1}
    run.exact = set(run.extra) | several
    run.targets = [e.var for e in run.params + run.buffers]


def refresh(run: Run) -> list:
    """Vars that appeared on the model since the inventory (a layer created lazily in the
    forward, after the optimizer was built): listed from this step on.  Returns the new
    parameter indices; a Var whose name is already listed (an attribute recomputed every
    forward) is not new."""
    jt = runtime.import_jittor()
    # Vars a forward leaves in plain lists or dicts are activations or inputs it caches, not
    # layers: only Vars of Modules (a layer made in the forward) count as new here
    walked = [w for w in graph.walk(run.workload.model) if isinstance(w[3], jt.nn.Module)]
    found = graph.new_entries(
        walked, run.seen, run.names, run.workload.buffers, tracked=run.tracked
    )
    if not found:
        return []
    graph.mark_derived(found, run.params + run.buffers + found)
    first = len(run.params)
    run.params += [e for e in found if not e.buffer]
    run.buffers += [e for e in found if e.buffer]
    added = list(range(first, len(run.params)))
    for i in added:
        if run.reads is not None:
            run.reads.add(i, run.params[i])
    if added:  # values before this step's update: they did not exist before its forward
        run.late.append(Snapshot(run.params[i].var for i in added))
    resolve_owners(run)
    return added


def map_warnings(logs, call_list, call, run, reached, step, phase, probe_from=None) -> list:
    """Jittor's captured log lines as :class:`WarningRecord`: ``grads[N]`` is an index into
    ``call_list``, the list passed to the gradient call that raised it.  From ``probe_from``
    on, that list holds what the probe asked for alongside the optimizer (``call`` probe)."""
    index_of = {id(v): i for i, v in enumerate(run.targets)}
    entries = run.params + run.buffers
    out = []
    for log in logs:
        text = str(log.get("msg", ""))
        rec = WarningRecord(
            text=text.split(": Var(")[0],
            level=str(log.get("level", "w")),
            step=step,
            call=call,
            phase=phase if run.multi else None,
        )
        m = _GRAD_WARNING.search(text)
        if m:
            rec.index = int(m.group(1))
            if probe_from is not None and rec.index >= probe_from:
                rec.call = "probe"
            if rec.index < len(call_list):
                t = index_of.get(id(call_list[rec.index]))
                rec.param = entries[t].name if t is not None else m.group(2)
                rec.agrees = None if t is None else t not in reached
        out.append(rec)
    return out


def run_phase(run: Run, phase, step: int) -> PhaseResult:
    """Forward, graph, backward (``accumulate`` times), then the optimizer step."""
    jt, res = runtime.import_jittor(), PhaseResult(phase.name)
    opt, model = phase.optimizer, run.workload.model
    where = run.workload.name + (f" phase {phase.name!r}" if run.multi else "")
    extra = [run.targets[i] for i in run.extra]
    pending, probe_grads = [], []
    for _ in range(phase.accumulate):
        run.tell(step, "forward")
        batch = run.workload.batch_for(step)
        fence = graph.fence()
        assert run.calls is not None and run.reads is not None  # check() sets both
        run.reads.read = res.read
        with run.calls, run.reads:
            loss, terms, stats = call_loss(phase.loss, model, batch, where)
        if refresh(run):
            extra = [run.targets[i] for i in run.extra]
        n = len(run.params)  # graph targets are params then buffers: keep param indices
        reach, read, view = graph.analyse(
            {"__loss__": loss, **terms}, run.targets, fence, keep=True
        )
        reach = {k: {i for i in v if i < n} for k, v in reach.items()}
        reached = reach.pop("__loss__")
        res.reached |= reached
        res.read |= {i for i in read if i < n}
        for term, found in reach.items():
            res.term_reach.setdefault(term, set()).update(found)
        got = _backward(run, phase, res, loss, extra, reached, step)
        if extra:
            probe_grads.append(list(got))
        pending.append((loss, terms))
        res.stats = stats
    grads = {i: run.params[i].var.opt_grad(opt) for i in sorted(run.owned[phase.name])}
    for i, gs in zip(run.extra, zip(*probe_grads)):  # summed over the micro-batches
        grads[i] = sum(gs[1:], gs[0])
    # status and norm computed next to the backward: no host copy of the model's gradients
    summary = GradSummary(grads.values())
    exact = [i for i in grads if i in run.exact]
    with jt.flag_scope(node_order=1):  # as optimizer.step() runs a backward: fewer live activations
        jt.sync(
            [v for loss, terms in pending for v in (loss, *terms.values())]
            + summary.vars
            + [grads[i] for i in exact]
        )  # one execution for all
    for loss, terms in pending:
        res.losses.append(float(loss.item()))
        for k, v in terms.items():
            res.terms.setdefault(k, []).append(float(v.item()))
    res.grads = dict(zip(grads, summary.results()))
    res.arrays = {i: grads[i].numpy() for i in exact}
    del grads, summary, probe_grads
    zero = {i for i, (state, _) in res.grads.items() if state == Status.ZERO and i in reached}
    if zero:  # before the update: the values the forward used
        res.proofs = prove_zero(run, zero, reached, view)
    del view
    res.lrs = group_lrs(opt, run, phase.name)
    run.tell(step, "update")
    opt.step()
    if phase is run.phases[-1]:
        for snap in (*run.snapshots, *run.late):
            snap.queue()  # compared inside the update's execution: no copies
    jt.sync_all()
    return res


def _backward(run: Run, phase, res: PhaseResult, loss, extra: list, reached: set, step: int):
    """One backward through the optimizer, the params outside it riding along, its warnings
    mapped into ``res``; the gradients of ``extra``."""
    jt, opt = runtime.import_jittor(), phase.optimizer
    run.tell(step, "backward")
    with jt.log_capture_scope(log_v=0, log_silent=1) as logs:
        # params outside the optimizer ride along in its own gradient call: one backward
        with grads_alongside(extra) as got:
            opt.backward(loss, retain_graph=bool(extra))
    served, own = len(got) == len(extra), backward_list(opt)
    res.warnings += map_warnings(
        logs,
        own + (extra if served else []),
        "optimizer",
        run,
        reached,
        step,
        phase.name,
        probe_from=len(own),
    )
    if extra and not served:  # a custom backward that never called jt.grad
        with jt.log_capture_scope(log_v=0, log_silent=1) as logs:
            got = jt.grad(loss, extra)
        res.warnings += map_warnings(logs, extra, "probe", run, reached, step, phase.name)
    return got


def prove_zero(run: Run, zero: set, reached: set, view) -> dict:
    """What the graph of this step proves about exactly-zero gradients
    (:func:`gradcheck.graph.zero_proofs`): the parameters that are exactly zero now, on the
    path of each one to the loss, or an empty Var on that path.  Costs one reduction per
    reached parameter, only on a step with an exactly-zero gradient."""
    jt = runtime.import_jittor()
    candidates = sorted(i for i in reached if graph.is_float(run.params[i].var))
    values = GradSummary(run.params[i].var for i in candidates)
    jt.sync(values.vars)
    zero_valued = {i for i, (state, _) in zip(candidates, values.results()) if state == Status.ZERO}
    return graph.zero_proofs(view, "__loss__", zero, zero_valued)


def group_lrs(opt, run: Run, phase: str) -> dict:
    """param index -> the learning rate its group of ``opt`` applies on this step (a
    scheduler may have changed it since the last one)."""
    index = {id(run.params[i].var): i for i in run.owned[phase]}
    out: dict = {}
    for group in getattr(opt, "param_groups", []):
        lr = group.get("lr", getattr(opt, "lr", None))
        for var in group.get("params", []):
            i = index.get(id(var))
            if i is not None and isinstance(lr, (int, float)):
                out.setdefault(i, float(lr))
    return out


# --------------------------------------------------------------------- records
def new_records(run: Run, mode_changes: dict, frozen_by_eval: dict, policy=None) -> tuple:
    records = [
        param_record(run, i, mode_changes, frozen_by_eval, policy) for i in range(len(run.params))
    ]
    return records, [buffer_record(run, e) for e in run.buffers]


def param_record(
    run: Run, i: int, mode_changes: dict, frozen_by_eval: dict, policy=None, absent: int = 0
) -> ParamRecord:
    """The record of parameter ``i``; ``absent``: steps that ran before it appeared."""
    from gradcheck.policy import declared_reason

    e = run.params[i]
    frozen = e.var.is_stop_grad()
    return recorder.new_param(
        e.name,
        e.var.shape,
        e.var.numel(),
        absent=absent,
        requires_grad=not frozen,
        in_optimizer=id(e.var) in run.held,
        module=e.module,
        aliases=list(e.aliases),
        frozen_reason=declared_reason(
            e.name, run.workload.frozen, getattr(policy, "expected_frozen", None)
        ),  # one lookup
        eval_module=frozen_by_eval.get(id(e.var)) if frozen else None,
        mode_change=mode_changes.get(id(e.var)),
        optimizers=run.owners(i) if run.multi else [],
        tracked=e.tracked,
        held_only=e.held_only,
    )


def buffer_record(run: Run, e) -> BufferRecord:
    return BufferRecord(
        name=e.name,
        shape=list(e.var.shape),
        numel=int(e.var.numel()),
        kind=e.kind,
        in_optimizer=id(e.var) in run.held,
        trainable=not e.var.is_stop_grad(),
    )


def classify(run: Run, i: int, results: list) -> tuple:
    """(step status, gradient norm) of parameter ``i`` from this step's phase results: the
    calls that train it (its optimizers' phases; every phase for one outside them all)."""
    if run.params[i].var.is_stop_grad():
        return Status.FROZEN, None
    calls = [r for r in results if i in run.owned[r.name] or i in run.extra]
    step = status.combine(
        Status.MISSING if i not in r.reached else r.grads.get(i, (Status.ZERO, 0.0))[0]
        for r in calls
    )
    if i in run.exact:  # several calls: the norm of their sum
        arrays = [r.arrays[i] for r in calls if i in r.arrays]
        return step, (host_norm(sum(arrays)) if arrays else 0.0)
    return step, next((r.grads[i][1] for r in calls if i in r.grads), 0.0)


def step_lr(i: int, results: list):
    """The learning rate this step applied to parameter ``i``'s gradient.  Of the phases whose
    optimizer holds it, the largest among those that gave it a non-zero gradient (the ones
    that could move it: a parameter shared by a GAN's two optimizers, one at lr 0, is stuck
    only if the phase that trains it runs at 0); else the first such phase's."""
    held = [r for r in results if i in r.lrs]
    moving = [
        r.lrs[i]
        for r in held
        if r.lrs[i] is not None and r.grads.get(i, (None,))[0] == Status.NONZERO
    ]
    if moving:
        return max(moving)
    return held[0].lrs[i] if held else None


def rounding(run: Run, phases, i: int, state: str, change, lr) -> bool | None:
    """For parameter ``i`` when its non-zero gradient left it unchanged under a learning rate
    above 0: whether its optimizers' own float32 arithmetic rounds that update away (True),
    would have moved it (False: a masked update) or cannot be told (None).  Asked right after
    the step, while the optimizers hold that step's state; costs nothing on other steps."""
    if state != Status.NONZERO or change.changed or not lr:
        return None
    answers = [
        rounds_away(p.optimizer, run.params[i].var)
        for p in phases
        if i in run.owned.get(p.name, ())
    ]
    return None if not answers or None in answers else all(answers)


def record_proof(rec: ParamRecord, proofs: list, run: Run) -> None:
    """What the graph proved about a zero gradient of ``rec`` on one step."""
    for kind, blockers in proofs:
        if kind == "blocked":
            names = [run.params[b].name for b in blockers]
            rec.zero_blockers += [n for n in names if n not in rec.zero_blockers]
        elif kind == "empty" and rec.zero_why is None:
            rec.zero_why = "empty"


def step_entry(run: Run, step: int, results: list, seconds: float) -> StepRecord:
    """The report's per-step line: loss (the first phase's), terms, stats, phase losses."""
    terms, mean = {}, (lambda values: sum(values) / len(values))
    for r in results:
        for k, v in r.terms.items():
            terms[f"{r.name}/{k}" if run.multi else k] = mean(v)
    return StepRecord(
        step=step,
        loss=mean(results[0].losses),
        terms=terms,
        stats=jsonable(results[0].stats if not run.multi else {r.name: r.stats for r in results}),
        seconds=round(seconds, 4),
        phases={r.name: mean(r.losses) for r in results} if run.multi else None,
    )


# --------------------------------------------------------------------- the probe
def check(
    workload: Workload,
    steps: int = 1,
    seed: int | None = 0,
    on_step: Callable[[int, int, str], None] | None = None,
    policy=None,
) -> Report:
    """Run ``steps`` real training steps of ``workload`` and return the :class:`Report`."""
    from gradcheck import explain

    if not isinstance(steps, int) or steps < 1:
        raise WorkloadError(f"steps must be a positive integer, got {steps!r}")
    runtime.import_jittor()
    if seed is not None:
        runtime.seed_everything(seed)
    run, mode_changes, frozen_by_eval = prepare(workload)
    run.calls = explain.CallRecorder(workload.model)
    run.reads = graph.ReadRecorder(run.params)
    run.on_step, run.steps = on_step, steps
    records, buf_records = new_records(run, mode_changes, frozen_by_eval, policy)
    warnings_out: list = []
    step_log: list = []
    reach_by_term: dict = {}

    for step in range(1, steps + 1):
        t0 = time.perf_counter()
        # values before the forward: a BatchNorm forward already queues its running-stat update
        before = Snapshot(e.var for e in run.params)  # lazy: no copy while values stand
        buf_before = Snapshot(e.var for e in run.buffers)
        run.snapshots = (before, buf_before)
        results = []
        for phase in run.phases:
            results.append(run_phase(run, phase, step))
        for r in results:
            warnings_out.extend(r.warnings)
            for term, found in r.term_reach.items():
                key = f"{r.name}/{term}" if run.multi else term
                reach_by_term.setdefault(key, set()).update(found)
        read = set().union(*(r.read for r in results))
        changes, run.snapshots = before.compare(), ()
        for snap in run.late:  # parameters that appeared during this step
            changes += snap.compare()
        run.late = []
        records += [
            param_record(run, i, mode_changes, frozen_by_eval, policy, absent=step - 1)
            for i in range(len(records), len(run.params))
        ]
        buf_changes = buf_before.compare()
        buf_records += [buffer_record(run, e) for e in run.buffers[len(buf_records) :]]
        for i, (e, rec) in enumerate(zip(run.params, records)):
            state, gnorm = classify(run, i, results)
            lr = step_lr(i, results)
            recorder.record_step(
                rec,
                state,
                gnorm,
                changes[i],
                lr,
                rounding(run, run.phases, i, state, changes[i], lr),
            )
            if state == Status.ZERO:
                record_proof(rec, [r.proofs[i] for r in results if i in r.proofs], run)
            rec.read_steps.append(i in read)
            rec.reassigned = rec.reassigned or e.current() is not e.var
        for rec, change in zip(buf_records, buf_changes):
            rec.changed = rec.changed or change.changed
        step_log.append(step_entry(run, step, results, time.perf_counter() - t0))

    return finish(
        run,
        records,
        buf_records,
        warnings_out,
        step_log,
        reach_by_term,
        run_config(run, steps, seed, mode_changes),
        policy,
    )


def finish(
    run: Run,
    records: list,
    buf_records: list,
    warnings_out: list,
    step_log: list,
    reach_by_term: dict,
    config: dict,
    policy=None,
) -> Report:
    """The report from the recorded steps: run statuses, explanations, summary and verdict
    (shared by :func:`check` and the script observer, :mod:`gradcheck.observe`)."""
    recorder.close(records, [s.step for s in step_log], reach_by_term)
    records = [r for r in records if r.tracked or r.in_optimizer or r.status in status.REACHED]
    buf_records = [b for b, e in zip(buf_records, run.buffers) if e.tracked or b.in_optimizer]
    return recorder.report(
        config=config,
        environment=environment(),
        params=records,
        buffers=buf_records,
        warnings=warnings_out,
        steps=step_log,
        reach_by_term=reach_by_term,
        calls=run.calls,
        policy=policy,
        zero_hint=run.workload.zero_hint,
    )


def run_config(run: Run, steps: int, seed, mode_changes: dict) -> dict:
    w = run.workload
    cfg = {
        "model": w.name,
        "steps": steps,
        "seed": seed,
        "device": runtime.state().device,
        "optimizer": describe_optimizer(run.phases[0].optimizer),
        "train_mode": w.train_mode,
    }
    if run.multi or run.phases[0].accumulate > 1:
        cfg["phases"] = [
            {
                "name": p.name,
                "accumulate": p.accumulate,
                "optimizer": describe_optimizer(p.optimizer),
            }
            for p in run.phases
        ]
    if mode_changes:
        names = {id(e.var): e.name for e in run.params + run.buffers}
        cfg["mode_changes"] = {names.get(k, "?"): v for k, v in mode_changes.items()}
    return {**cfg, **w.info}


def environment() -> dict:
    jt = runtime.import_jittor()
    st = runtime.state()
    return {
        "framework": "jittor",
        "jittor": getattr(jt, "__version__", "?"),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "onednn": st.onednn,
        "onednn_lib": st.onednn_lib,
        "device": st.device,
        "host": socket.gethostname(),
        "platform": platform.platform(),
    }


class _JittorBackend:
    """:class:`gradcheck.backend.Backend` for Jittor: :func:`check`."""

    name = "jittor"

    def accepts(self, model) -> bool:
        jt = sys.modules.get("jittor")  # not loaded: not a Jittor module
        return jt is not None and isinstance(model, jt.Module)

    def check(self, workload, steps=1, seed=0, on_step=None, policy=None) -> Report:
        return check(workload, steps=steps, seed=seed, on_step=on_step, policy=policy)


BACKEND = _JittorBackend()
