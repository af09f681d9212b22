"""Record a user's own training loop from the outside: the probe without a Workload.

:class:`StepRecorder` is attached to ``jittor.optim.Optimizer`` itself (:meth:`attach` patches
the base class's ``backward``, ``pre_step``, ``post_step`` and ``zero_grad``; :meth:`detach`
puts them back), so it sees every optimizer (built-in ones, user subclasses, optimizers built
inside other libraries), whatever the loop calls: ``opt.step(loss)``, ``opt.backward(loss);
opt.step()``, several ``backward`` calls before one step (accumulation), ``clip_grad_norm``
between them, LR schedulers (they only write ``param_groups``).

Per optimizer step it records what :func:`gradcheck.probe.run_phase` records per phase:

* at each ``backward(loss)``: reach from that loss in Jittor's graph and the parameters an op
  read since the previous optimizer call (:func:`gradcheck.graph.analyse`), Jittor's warnings
  of that backward (log capture, mapped by :func:`gradcheck.probe.map_warnings`), and the
  gradients of trainable parameters outside every optimizer (ridden along the optimizer's own
  ``jt.grad``, :func:`gradcheck.snapshot.grads_alongside`);
* at the end of ``pre_step`` (after the backward and anything the loop did to the gradients,
  e.g. clipping): the optimizer's own gradient, ``param.opt_grad(optimizer)``;
* values before and after (:class:`gradcheck.snapshot.Snapshot`), compared per round.

Several optimizers are phases, in the order the loop first steps them.  A *round* (one step of
the report) starts with a step of the first optimizer and holds every optimizer step until the
first optimizer steps again after all others have stepped (a GAN's G then D; a WGAN's five
critic steps then one generator step); a step status over a round combines its calls, as
for accumulated micro-batches.  The model is found from the optimizers' parameters: the
outermost ``nn.Module`` objects holding them (several get a prefix each, the name the script
gives them).  Frozen state is read as the loop left it at each step; nothing calls
``train()``/``eval()``.

After ``steps`` rounds the recorder raises :class:`StopScript` out of the optimizer call that
completed them (or, with ``keep_going``, detaches and lets the loop run on).
"""

from __future__ import annotations

import gc
import os
import sys
import time
import types
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable

from gradcheck import graph, probe, recorder, runtime
from gradcheck.enums import Status
from gradcheck.optimizers import backward_list, optimizer_params
from gradcheck.snapshot import GradSummary, Snapshot, grads_alongside
from gradcheck.workload import Phase, Workload

MAX_WAIT = 10  # steps of the first optimizer a round waits for the others (see _round_complete)
PATCHED = ("__init__", "backward", "pre_step", "post_step", "zero_grad")
_OWN_DIRS = (os.path.dirname(os.path.abspath(__file__)),)


def _framework_dirs() -> tuple:
    """gradcheck's and Jittor's own folders: their frames name nothing of the script's."""
    jt = runtime.import_jittor()
    return _OWN_DIRS + (os.path.dirname(os.path.abspath(jt.__file__)),)


class StopScript(BaseException):
    """Raised out of the optimizer call that completed the probed steps: the training loop
    stops there (a BaseException, so a script's ``except Exception`` does not swallow it)."""


@dataclass
class _Open:
    """One optimizer step being recorded."""

    res: probe.PhaseResult
    losses: list = field(default_factory=list)  # loss Vars of its backward calls
    probe_grads: list = field(default_factory=list)  # per backward: grads of run.extra
    gathered: bool = False
    view: object = None  # the last backward's graph (zero proofs)


@dataclass
class _Round:
    index: int
    before: Snapshot
    buf_before: Snapshot
    t0: float
    results: list = field(default_factory=list)
    frozen: set | None = None  # params stop-grad at the round's first optimizer step


@dataclass
class _Done:
    """One finished round, classified."""

    index: int
    results: list
    seconds: float
    states: list  # per param: (status, grad norm, Change, read, reassigned, lr)
    buffers_changed: list


class StepRecorder:
    """Observe every Jittor optimizer; record the first ``steps`` rounds (see the module doc)."""

    def __init__(
        self,
        steps: int,
        name: str = "script",
        keep_going: bool = False,
        on_step: Callable[[int, int, str], None] | None = None,
        models: list | None = None,
        optimizers: list | None = None,
    ):
        self.steps, self.name, self.keep_going, self.on_step = steps, name, keep_going, on_step
        # given (gradcheck.watch): [(name, Module)] and the optimizers, in phase order
        self.models, self.optimizers = models, optimizers
        self.next_index: int | None = None  # the number of the next round (watch: its step)
        self.run: probe.Run | None = None
        self.frozen_by_eval: dict = {}
        self.phase_of: dict = {}  # id(optimizer) -> Phase
        self.order: list = []  # phases, in the order the loop first stepped them
        self.fixed = False  # no new phase after the first round
        self.open: dict = {}  # id(optimizer) -> _Open
        self.round: _Round | None = None
        self.done: list = []  # [_Done]
        self.next_before: tuple | None = None  # values at the last optimizer step
        self.first_before: tuple | None = None  # values when the recorder started
        self.fence = 0
        self.finished = False
        self.notes: list = []  # sentences for the verdict's warnings
        self.ignored: set = set()  # ids of optimizers outside the run
        self.candidates: set = set()  # phase names of the optimizers found at the start
        self.warnings: list = []
        self._saved: dict | None = None
        self._in_post = False
        self.created: list = []  # weakrefs to the optimizers created while attached
        self.walk_again = False  # started before the first forward: look for new layers

    # ------------------------------------------------------------------ attach / detach
    @property
    def _live(self) -> probe.Run:
        """The run being recorded: made at the first optimizer step, before any hook that
        reads it."""
        assert self.run is not None, "the recorder has not started a run"
        return self.run

    @property
    def _rnd(self) -> _Round:
        """The round in progress: begun with the step that opened it."""
        assert self.round is not None, "no round in progress"
        return self.round

    def attach(self) -> StepRecorder:
        jt = runtime.import_jittor()
        cls = jt.optim.Optimizer
        saved = self._saved = {n: cls.__dict__[n] for n in PATCHED}
        rec = self

        def __init__(opt, *args, **kw):  # the optimizers this run creates
            saved["__init__"](opt, *args, **kw)
            rec.created.append(weakref.ref(opt))

        def backward(opt, loss, retain_graph=False):
            return rec._on_backward(opt, loss, retain_graph, saved["backward"])

        def pre_step(opt, loss, retain_graph=False):
            return rec._on_pre_step(opt, loss, retain_graph, saved["pre_step"])

        def post_step(opt):
            return rec._on_post_step(opt, saved["post_step"])

        def zero_grad(opt):
            return rec._on_zero_grad(opt, saved["zero_grad"])

        f: Any  # a function, given the attribute that names what it wraps
        for n, f in (
            ("__init__", __init__),
            ("backward", backward),
            ("pre_step", pre_step),
            ("post_step", post_step),
            ("zero_grad", zero_grad),
        ):
            f.__wrapped__ = saved[n]
            setattr(cls, n, f)
        return self

    def detach(self) -> None:
        if self._saved is None:
            return
        cls = runtime.import_jittor().optim.Optimizer
        for n, f in self._saved.items():
            setattr(cls, n, f)
        self._saved = None

    @property
    def steps_made(self) -> int:
        return len(self.done)

    def arm(self, index: int) -> None:
        """Record one more round, numbered ``index``, then detach (gradcheck.watch)."""
        self.finished, self.keep_going = False, True
        self.steps, self.next_index = self.steps_made + 1, index
        if self.run is not None:
            self.first_before = self._snapshots()
            self.fence = graph.fence()
        self.attach()

    # ------------------------------------------------------------------ the hooks
    def _passive(self, opt) -> bool:
        if self.finished:
            if not self.keep_going:
                raise StopScript()
            return True
        return id(opt) in self.ignored

    def _on_zero_grad(self, opt, orig):
        if not self._in_post and not self.finished and self.run is None:
            self._start(opt)  # before the forward: buffers' first change is seen too
            self.walk_again = True  # and a layer the forward makes is not listed yet
        return orig(opt)

    def _on_backward(self, opt, loss, retain_graph, orig):
        jt = runtime.import_jittor()
        if self._passive(opt) or not isinstance(loss, jt.Var):
            return orig(opt, loss, retain_graph)
        cur = self._begin(opt)
        if cur is None:
            return orig(opt, loss, retain_graph)
        run, phase = self._live, self.phase_of[id(opt)]
        if self.walk_again:  # once: a layer made lazily in the first forward
            self.walk_again = False
            if probe.refresh(run):
                self._own(run)
        self._tell(phase.name, "backward")
        reach, read, cur.view = graph.analyse(
            {"__loss__": loss}, run.targets, self.fence, keep=True
        )
        n = len(run.params)  # graph targets are params then buffers: keep param indices
        reached = {i for i in reach["__loss__"] if i < n}
        cur.res.reached |= reached
        cur.res.read |= {i for i in read if i < n}
        extra = [run.targets[i] for i in run.extra]
        got: list = []
        with jt.log_capture_scope(log_v=0, log_silent=1) as logs:
            if extra and not retain_graph:  # ride along the optimizer's own jt.grad
                with grads_alongside(extra) as got:
                    out = orig(opt, loss, retain_graph)
            else:
                out = orig(opt, loss, retain_graph)
        served, own = bool(extra) and len(got) == len(extra), backward_list(opt)
        cur.res.warnings += probe.map_warnings(
            logs,
            own + (extra if served else []),
            "optimizer",
            run,
            reached,
            self._rnd.index,
            phase.name,
            probe_from=len(own),
        )
        if extra and not served:
            with jt.log_capture_scope(log_v=0, log_silent=1) as logs:
                got = jt.grad(loss, extra, True)
            cur.res.warnings += probe.map_warnings(
                logs, extra, "probe", run, reached, self._rnd.index, phase.name
            )
        if extra:
            cur.probe_grads.append(list(got))
        cur.losses.append(loss)
        cur.gathered = False
        self.fence = graph.fence()
        return out

    def _on_pre_step(self, opt, loss, retain_graph, orig):
        if self._passive(opt):
            return orig(opt, loss, retain_graph)
        cur = self._begin(opt)
        out = orig(opt, loss, retain_graph)  # calls backward(loss) when given one
        if cur is not None:
            self._gather(opt, cur)
        return out

    def _on_post_step(self, opt, orig):
        self._in_post = True
        try:
            out = orig(opt)
        finally:
            self._in_post = False
        if self.finished or id(opt) not in self.open:
            return out
        cur = self.open.pop(id(opt))
        if not cur.gathered:  # a subclass step() that skips pre_step
            self._gather(opt, cur)
        phase = self.phase_of[id(opt)]
        if phase not in self.order:
            self.order.append(phase)
        self._rnd.results.append(cur.res)
        self.next_before = self._snapshots()
        self.fence = graph.fence()
        errors_reclaim()
        # the last phase's N-th step: stop here, not at the next forward
        if (
            self.fixed
            and self.steps_made + 1 == self.steps
            and phase is self.order[-1]
            and all(any(r.name == p.name for r in self._rnd.results) for p in self.order)
        ):
            self._finish_round()
            self._stop()
        return out

    # ------------------------------------------------------------------ rounds
    def _begin(self, opt) -> _Open | None:
        """The open step of ``opt``, starting one (and a round) if needed; None when this
        optimizer is not recorded."""
        if id(opt) in self.open:
            return self.open[id(opt)]
        if self.run is None:
            self._start(opt)
        phase = self.phase_of.get(id(opt))
        if phase is None or (self.fixed and phase not in self.order):
            self.ignored.add(id(opt))
            self.notes.append(
                f"an optimizer ({type(opt).__name__}) first stepped after the "
                "first step: not recorded (phases are the optimizers of step 1)"
            )
            return None
        if self.round is None:
            before, buf_before = self.first_before or self._snapshots()
            self.round = _Round(
                self.next_index or self.steps_made + 1, before, buf_before, time.perf_counter()
            )
        elif self.order and phase is self.order[0] and self._round_complete():
            self.fixed = True  # the first optimizer again: a new round
            self._finish_round()
            if self.steps_made >= self.steps:
                self._stop()
                if self.finished:  # keep_going: the loop runs on unobserved
                    return None
            before, buf_before = self.next_before or self._snapshots()
            self.round = _Round(self.steps_made + 1, before, buf_before, time.perf_counter())
        cur = self.open[id(opt)] = _Open(probe.PhaseResult(phase.name))
        return cur

    def _round_complete(self) -> bool:
        """Has every phase stepped in this round (in the first round: every optimizer the run
        made)?  A critic stepped several times per generator step (WGAN) keeps the round open
        until the generator steps; after MAX_WAIT steps of the first optimizer it closes
        anyway (an optimizer that is made but never stepped is then no phase)."""
        stepped = {r.name for r in self._rnd.results}
        want = {p.name for p in self.order} if self.fixed else self.candidates
        if want <= stepped:
            return True
        first = self.order[0].name
        return sum(r.name == first for r in self._rnd.results) >= MAX_WAIT

    def _gather(self, opt, cur: _Open) -> None:
        """The optimizer's own gradient as it will apply it, the losses: one execution."""
        jt = runtime.import_jittor()
        run, phase = self._live, self.phase_of[id(opt)]
        self._tell(phase.name, "update")
        res = cur.res
        grads = {}
        frozen = {i for i, e in enumerate(run.params) if e.var.is_stop_grad()}
        if self._rnd.frozen is None:  # frozen state as the script left it, at step time
            self._rnd.frozen = frozen
        if cur.losses:
            grads = {
                i: run.params[i].var.opt_grad(opt)
                for i in sorted(run.owned[phase.name])
                if i not in frozen
            }
        for i, gs in zip(run.extra, zip(*cur.probe_grads)):  # summed over the micro-batches
            grads[i] = sum(gs[1:], gs[0])
        summary = GradSummary(grads.values())
        exact = [i for i in grads if i in run.exact]
        jt.sync(list(cur.losses) + summary.vars + [grads[i] for i in exact])
        res.losses = [float(v.item()) for v in cur.losses] or [float("nan")]
        res.grads = dict(zip(grads, summary.results()))
        res.arrays = {i: grads[i].numpy() for i in exact}
        res.lrs = probe.group_lrs(opt, run, phase.name)
        zero = {
            i for i, (state, _) in res.grads.items() if state == Status.ZERO and i in res.reached
        }
        if zero and cur.view is not None:  # before the update: the values the forward used
            res.proofs = probe.prove_zero(run, zero, res.reached, cur.view)
        cur.losses, cur.probe_grads, cur.gathered, cur.view = [], [], True, None

    def _finish_round(self) -> None:
        rnd = self.round
        if rnd is None or not rnd.results:
            self.round = None
            return
        run = self._live
        changes, buf_changes = rnd.before.compare(), rnd.buf_before.compare()
        for snap in run.late:  # parameters listed since the round began
            changes += snap.compare()
        run.late = []
        across_ranks(rnd.results)
        read = set().union(*(r.read for r in rnd.results))
        states = []
        frozen = rnd.frozen or set()
        for i, e in enumerate(run.params):
            state, gnorm = (
                (Status.FROZEN, None) if i in frozen else probe.classify(run, i, rnd.results)
            )
            lr = probe.step_lr(i, rnd.results)
            states.append(
                (
                    state,
                    gnorm,
                    changes[i],
                    i in read,
                    e.current() is not e.var,
                    lr,
                    probe.rounding(run, self.order, i, state, changes[i], lr),
                )
            )
        for r in rnd.results:
            r.arrays = {}
            self.warnings.extend(r.warnings)
        self.done.append(
            _Done(
                rnd.index,
                rnd.results,
                time.perf_counter() - rnd.t0,
                states,
                [c.changed for c in buf_changes],
            )
        )
        self.round = None

    def _stop(self) -> None:
        self.finished = True
        self.next_before = self.first_before = None
        if self.keep_going:
            self.detach()
        else:
            raise StopScript()

    def end(self) -> None:
        """The loop ended (or raised) on its own: keep the round it was in."""
        if self.finished or self.run is None:
            return
        self.open.clear()
        if self.round is not None:  # drop a phase result that never got to its step
            self.round.results = [r for r in self.round.results if r.grads or r.losses]
        self._finish_round()
        self.finished = True
        self.next_before = self.first_before = None

    # ------------------------------------------------------------------ start
    def _start(self, trigger) -> None:
        """The first optimizer call: find the optimizers and the models they train."""
        made = [o for o in (r() for r in self.created) if o is not None and optimizer_params(o)]
        # the given optimizers; else the run's own when it made them (not those of an earlier
        # run in this process); else every live one
        if self.optimizers:
            opts = list(self.optimizers)
        elif made:
            opts = [trigger] + [o for o in made if o is not trigger]
        else:
            opts = live_optimizers(trigger)
        names = name_objects([trigger, *opts])
        phases: list = []
        used: set[str] = set()
        for i, o in enumerate(opts):
            default = (
                "main" if len(opts) == 1 and self.optimizers else f"{type(o).__name__.lower()}{i}"
            )
            name = unique(names.get(id(o)) or default, used)
            phases.append(Phase(name, loss=None, optimizer=o))
        if self.optimizers:  # known phases, in the given order
            self.order, self.fixed = list(phases), True
        roots = self.models or find_models(opts)
        if not roots:
            from gradcheck.workload import WorkloadError

            raise WorkloadError("no jittor Module holds the parameters of the optimizers")
        model = container(roots)
        workload = Workload(model=model, batch=None, phases=phases, name=self.name)
        run, _, self.frozen_by_eval = probe.prepare(workload)
        self._own(run)
        held = {id(v) for o in opts for v in optimizer_params(o)}
        known = {id(e.var) for e in run.params + run.buffers}
        outside = len(held - known)
        if outside:
            self.notes.append(
                f"{outside} optimizer parameter(s) belong to no Module the "
                "script holds: not reported"
            )
        self.run = run
        self.phase_of = {id(p.optimizer): p for p in phases}
        self.candidates = {p.name for p in phases}
        self.first_before = self._snapshots()
        # the first step's forward may already be in the graph (a zero_grad() between the
        # forward and the backward): every live op counts as read on the first step
        self.fence = 0

    @staticmethod
    def _own(run) -> None:
        """A script may unfreeze parameters later (a staged unfreeze): an optimizer owns every
        parameter it holds, and which ones take gradients is read at each step."""
        for p in run.phases:
            ids = {id(v) for v in optimizer_params(p.optimizer)}
            run.owned[p.name] = {i for i, e in enumerate(run.params) if id(e.var) in ids}

    def _snapshots(self) -> tuple:
        run = self._live
        return (Snapshot(e.var for e in run.params), Snapshot(e.var for e in run.buffers))

    def _tell(self, phase: str, what: str) -> None:
        if self.on_step:
            index = self.round.index if self.round else self.steps_made + 1
            self.on_step(index, self.steps, what if len(self.order) < 2 else f"{phase}: {what}")

    # ------------------------------------------------------------------ the report
    def report(self, policy=None, config: dict | None = None, short_note: bool = True):
        """The :class:`~gradcheck.report.Report` of the recorded rounds (at least one)."""
        from gradcheck.probe import (
            finish,
            new_records,
            record_proof,
            run_config,
            step_entry,
        )

        run = self._live
        run.phases = list(self.order)
        for p in run.phases:  # micro-batches of its first step
            p.accumulate = max(1, len(self._first(p.name).losses))
        records, buf_records = new_records(run, {}, self.frozen_by_eval, policy)
        step_log = []
        for d in self.done:
            for i, (rec, (state, gnorm, change, read, reassigned, lr, rounded)) in enumerate(
                zip(records, d.states)
            ):
                recorder.record_step(rec, state, gnorm, change, lr, rounded)
                if state == Status.ZERO:
                    record_proof(rec, [r.proofs[i] for r in d.results if i in r.proofs], run)
                rec.read_steps.append(read)
                rec.reassigned = rec.reassigned or reassigned
            for rec, changed in zip(buf_records, d.buffers_changed):
                rec.changed = rec.changed or changed
            step_log.append(step_entry(run, d.index, d.results, d.seconds))
        cfg = {**run_config(run, self.steps, None, {}), **(config or {})}
        report = finish(run, records, buf_records, list(self.warnings), step_log, {}, cfg, policy)
        if short_note and self.steps_made < self.steps:
            report.verdict.warnings.append(
                f"the script stopped after {self.steps_made} of {self.steps} optimizer "
                "step(s): this report covers those"
            )
        report.verdict.warnings.extend(self.notes)
        return report

    def _first(self, name: str):
        for d in self.done:
            for r in d.results:
                if r.name == name:
                    return r
        return probe.PhaseResult(name)


def across_ranks(results: list) -> None:
    """Under Jittor's MPI data parallelism (``gradcheck run --nproc N -- python ...``): every
    rank's reach and reads, merged into each phase result, so a parameter is ``missing`` only
    if no rank reaches it; its gradient is the all-reduced one the optimizer uses (every rank
    records the same steps, so this collective is called in step on every rank)."""
    jt = runtime.import_jittor()
    if not getattr(jt, "in_mpi", False):
        return
    from gradcheck.distributed.rank import allgather_json

    mine = [[r.name, sorted(r.reached), sorted(r.read)] for r in results]
    for theirs in allgather_json(mine, jt):
        for r, (name, reached, read) in zip(results, theirs):
            if r.name == name:
                r.reached.update(reached)
                r.read.update(read)


def errors_reclaim() -> None:
    from gradcheck import errors

    errors.reclaim_signals()  # the script's Jittor may have put its own handlers back


# ---------------------------------------------------------------------- finding the models
def live_optimizers(first=None) -> list:
    """Every live ``jittor.optim.Optimizer`` holding parameters, ``first`` first."""
    jt = runtime.import_jittor()
    gc.collect()
    # type(), not isinstance: the latter reads __class__, which some lazy objects warn about
    kinds = subclasses(jt.optim.Optimizer)
    found = [o for o in gc.get_objects() if type(o) in kinds and optimizer_params(o)]
    if first is not None:
        found = [first] + [o for o in found if o is not first]
    return found


def subclasses(cls) -> set:
    """``cls`` and every class derived from it so far: ``type(o) in`` that set is a third of
    the cost of ``issubclass(type(o), cls)`` over the 175k objects of a Gold-YOLO process."""
    out, todo = set(), [cls]
    while todo:
        c = todo.pop()
        if c not in out:
            out.add(c)
            todo.extend(type.__subclasses__(c))
    return out


def find_models(opts) -> list:
    """``[(name, module)]``: the outermost live Modules holding the optimizers' parameters,
    ordered by where their parameters first appear in the optimizers."""
    jt = runtime.import_jittor()
    order: dict[int, int] = {}
    for o in opts:
        for v in optimizer_params(o):
            order.setdefault(id(v), len(order))
    kinds = subclasses(jt.nn.Module)
    modules = [m for m in gc.get_objects() if type(m) in kinds]

    def own(m):
        attrs = m.params if isinstance(m, jt.nn.ParameterList) else m.__dict__
        return [order[id(v)] for v in list(attrs.values()) if id(v) in order]

    holders = {id(m) for m in modules if own(m)}
    trees, inner = {}, set()
    for m in modules:
        sub = {id(x) for _, x in m.named_modules()}
        if sub & holders:
            trees[id(m)] = (m, sub)
            inner |= sub - {id(m)}
    roots = [m for key, (m, _) in trees.items() if key not in inner]

    def first_param(m):
        return min((p for _, x in m.named_modules() for p in own(x)), default=len(order))

    roots.sort(key=first_param)
    names = name_objects(roots)
    used: set = set()
    return [(unique(names.get(id(m)) or type(m).__name__.lower(), used), m) for m in roots]


def container(roots: list):
    """One model for the probe: the model itself, or a Module holding each under its name."""
    if len(roots) == 1:
        return roots[0][1]
    jt = runtime.import_jittor()
    box = jt.nn.Module()
    for name, m in roots:
        setattr(box, name, m)
    return box


def name_objects(objs) -> dict:
    """``{id(obj): name}``: the names the running script gives ``objs``, from its frames'
    variables (innermost first) or one attribute deep (``self.model``)."""
    want = {id(o) for o in objs}
    out: dict = {}
    skip = _framework_dirs()
    frame: types.FrameType | None = sys._getframe(1)
    while frame is not None and len(out) < len(want):
        fname = os.path.abspath(frame.f_code.co_filename)
        if not fname.startswith(skip) and "runpy" not in os.path.basename(fname):
            for scope in (frame.f_locals, frame.f_globals):
                for k, v in list(scope.items()):
                    if k.startswith("__"):
                        continue
                    if id(v) in want:
                        out.setdefault(id(v), k)
                    elif (
                        hasattr(v, "__dict__")
                        and not isinstance(v, (type, types.ModuleType))
                        and not callable(v)
                    ):
                        try:
                            attrs = list(vars(v).items())
                        except TypeError:
                            continue
                        for ak, av in attrs:
                            if id(av) in want and not ak.startswith("_"):
                                out.setdefault(id(av), ak)
        frame = frame.f_back
    return out


def unique(name: str, used: set) -> str:
    base, n = name, 2
    while name in used:
        name, n = f"{base}_{n}", n + 1
    used.add(name)
    return name
