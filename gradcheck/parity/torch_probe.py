"""The probe for a PyTorch model: the same semantics and report as :mod:`gradcheck.probe`.

A :class:`gradcheck.Workload` whose model is a ``torch.nn.Module`` (its loss returns torch
tensors, its optimizer is a ``torch.optim.Optimizer``) is probed here; ``gradcheck run`` and
:func:`gradcheck.api.check` dispatch on the model's type.  Per step:

1. forward and loss, exactly as the workload defines them, with forward pre-hooks recording
   which modules ran (``not_called``);
2. **structural reach**: the parameters with a path to the loss (and to each loss term),
   found by walking autograd's ``grad_fn`` graph down to its ``AccumulateGrad`` leaves;
3. the optimizer's own ``zero_grad()``, then ``loss.backward()``, then ``param.grad`` read
   back (``None`` is no gradient at all); trainable parameters outside the optimizer get
   theirs from the same backward (and are cleared by us, since no optimizer does);
4. ``optimizer.step()``, then every value compared before and after.

``in_optimizer`` comes from ``optimizer.param_groups``; buffers (``named_buffers``) are kept
apart from parameters.  The report is the Jittor one (:class:`gradcheck.report.Report`), with
``environment.framework = "torch"``; statuses, causes, totals and verdict come from the same
code (:func:`gradcheck.status.run_status`, :mod:`gradcheck.explain`, :mod:`gradcheck.summary`).
"""

from __future__ import annotations

import platform
import random
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from gradcheck import recorder
from gradcheck.enums import Status
from gradcheck.parity import torchenv
from gradcheck.policy import declared_reason
from gradcheck.report import Report, jsonable
from gradcheck.schema import BufferRecord, ParamRecord, StepRecord
from gradcheck.snapshot import Change, host_norm
from gradcheck.status import step_status  # the status rules' one home
from gradcheck.workload import Workload, WorkloadError, unpack_loss


class TorchCallRecorder:
    """Which modules ran, seen by forward pre-hooks (removed on exit); a
    :class:`gradcheck.explain.ModuleCalls`, as Jittor's :class:`gradcheck.explain.CallRecorder`."""

    def __init__(self, model):
        self.modules = list(model.named_modules())
        self.called: set = set()
        self._handles: list = []

    def __enter__(self):
        for name, module in self.modules:

            def hook(mod, args, _name=name):
                self.called.add(_name)

            self._handles.append(module.register_forward_pre_hook(hook))
        return self

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        self._handles = []
        return False

    def ran(self, module_name: str) -> bool | None:
        if not self.called:
            return None
        return module_name in self.called or module_name == ""


@dataclass
class TorchParam:
    """One parameter of a torch model, once however many names reach it."""

    name: str  # its first name (named_parameters order)
    tensor: Any  # the torch.nn.Parameter
    module: str  # the owning module's path ("" the root)
    aliases: list[str] = field(default_factory=list)  # its other names (a shared parameter)


def inventory(model) -> tuple[list[TorchParam], list[tuple[str, Any]]]:
    """The parameters and ``[(name, buffer)]`` in model order; a parameter reachable under
    several names is listed once, with the others as aliases."""
    params: list[TorchParam] = []
    first: dict[int, TorchParam] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) in first:
            first[id(p)].aliases.append(name)
            continue
        first[id(p)] = entry = TorchParam(name, p, name.rpartition(".")[0])
        params.append(entry)
    buffers = [(name, b) for name, b in model.named_buffers()]
    return params, buffers


def graph_reach(roots: dict, params: list) -> dict:
    """For each named root tensor, the indices of ``params`` that autograd would reach from
    it: a walk of ``grad_fn.next_functions`` down to ``AccumulateGrad`` nodes."""
    index_of = {id(p): i for i, p in enumerate(params)}
    reach = {}
    for name, root in roots.items():
        found: set = set()
        start = getattr(root, "grad_fn", None)
        if start is None:
            if getattr(root, "requires_grad", False) and id(root) in index_of:
                found.add(index_of[id(root)])  # the loss is a parameter itself
            reach[name] = found
            continue
        seen, stack = {start}, [start]
        while stack:
            node = stack.pop()
            var = getattr(node, "variable", None)
            if var is not None and id(var) in index_of:
                found.add(index_of[id(var)])
            for nxt, _ in getattr(node, "next_functions", ()):
                if nxt is not None and nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        reach[name] = found
    return reach


def call_loss(workload: Workload, batch, model=None):
    """Run the workload's loss on torch; return (scalar tensor, {term: tensor}, stats)."""
    torch = torchenv.import_torch(with_jittor=False)
    loss, terms, stats = unpack_loss(
        workload.loss, workload.model if model is None else model, batch, workload.name
    )
    if not isinstance(loss, torch.Tensor):
        raise WorkloadError(f"the loss is a {type(loss).__name__}, not a torch Tensor")
    if loss.numel() != 1:
        raise WorkloadError(f"the loss is not a scalar: shape {list(loss.shape)}")
    if not loss.is_floating_point():
        raise WorkloadError(f"the loss has dtype {loss.dtype}; gradients need a float")
    for k, v in terms.items():
        if not isinstance(v, torch.Tensor) or v.numel() != 1:
            raise WorkloadError(f"loss term {k!r} is not a scalar tensor")
    return loss.reshape(()), terms, stats


def _np(t) -> np.ndarray:
    return t.detach().cpu().numpy().copy()


def environment() -> dict:
    torch = torchenv.import_torch(with_jittor=False)
    return {
        "framework": "torch",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "device": "cpu",
        "threads": torch.get_num_threads(),
        "host": socket.gethostname(),
        "platform": platform.platform(),
    }


def seed_everything(seed: int) -> None:
    torch = torchenv.import_torch(with_jittor=False)
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def check(
    workload: Workload,
    steps: int = 1,
    seed: int | None = 0,
    on_step: Callable[[int, int, str], None] | None = None,
    config: dict | None = None,
    policy=None,
) -> Report:
    """Run ``steps`` real training steps of a torch ``workload``; return the :class:`Report`."""
    from gradcheck.optimizers import describe_optimizer

    torch = torchenv.import_torch(with_jittor=False)
    model = _checked_model(workload, steps, torch)
    if seed is not None:
        seed_everything(seed)
    model.train()
    params, buffers = inventory(model)
    tensors = [p.tensor for p in params]
    optimizer = _optimizer(workload, tensors, torch)
    opt_ids = {id(p) for g in optimizer.param_groups for p in g["params"]}
    records = _param_records(params, opt_ids, workload, policy)
    buf_records = [
        BufferRecord(name=n, shape=list(b.shape), numel=int(b.numel())) for n, b in buffers
    ]
    step_log: list[StepRecord] = []
    reach_by_term: dict[str, set[int]] = {}
    hooks = TorchCallRecorder(model)
    probe = _StepProbe(workload, optimizer, tensors, opt_ids, hooks, steps, on_step)
    for step in range(1, steps + 1):
        step_log.append(probe.step(step, records, buffers, buf_records, reach_by_term))
    recorder.close(records, [s.step for s in step_log], reach_by_term)
    cfg = {
        "model": workload.name,
        "steps": steps,
        "seed": seed,
        "device": "cpu",
        "optimizer": describe_optimizer(optimizer),
        **workload.info,
        **(config or {}),
    }
    return recorder.report(
        config=cfg,
        environment=environment(),
        params=records,
        buffers=buf_records,
        warnings=[],
        steps=step_log,
        reach_by_term=reach_by_term,
        calls=hooks,
        policy=policy,
        zero_hint=workload.zero_hint,
    )


def _checked_model(workload: Workload, steps: int, torch):
    """The workload's model, once ``steps`` and the model's type are right (WorkloadError)."""
    if not isinstance(steps, int) or steps < 1:
        raise WorkloadError(f"steps must be a positive integer, got {steps!r}")
    model = workload.model
    if not isinstance(model, torch.nn.Module):
        raise WorkloadError(f"the model is a {type(model).__name__}, not a torch Module")
    return model


def _optimizer(workload: Workload, tensors: list, torch):
    """The workload's torch optimizer; SGD on the trainable parameters where it has none."""
    if workload.optimizer is None:
        trainable = [p for p in tensors if p.requires_grad]
        if not trainable:
            raise WorkloadError("the model has no trainable parameters")
        workload.optimizer = torch.optim.SGD(trainable, lr=0.01)
    optimizer = workload.optimizer
    if not hasattr(optimizer, "param_groups") or not hasattr(optimizer, "step"):
        raise WorkloadError(f"the optimizer is a {type(optimizer).__name__}, not a torch optimizer")
    return optimizer


def _param_records(
    params: list[TorchParam], opt_ids: set[int], workload: Workload, policy
) -> list[ParamRecord]:
    """A report record per parameter, before any step."""
    return [
        recorder.new_param(
            p.name,
            p.tensor.shape,
            p.tensor.numel(),
            requires_grad=bool(p.tensor.requires_grad),
            in_optimizer=id(p.tensor) in opt_ids,
            module=p.module,
            aliases=list(p.aliases),
            frozen_reason=declared_reason(  # the one lookup, as probe.py
                p.name, workload.frozen, getattr(policy, "expected_frozen", None)
            ),
        )
        for p in params
    ]


class _StepProbe:
    """One real training step of the torch model at a time, recorded as Jittor's probe
    records its steps."""

    def __init__(
        self,
        workload: Workload,
        optimizer,
        tensors: list,
        opt_ids: set[int],
        hooks: TorchCallRecorder,
        steps: int,
        on_step: Callable[[int, int, str], None] | None,
    ):
        self.workload, self.optimizer, self.tensors = workload, optimizer, tensors
        self.hooks, self.steps, self.on_step = hooks, steps, on_step
        # trainable parameters outside the optimizer: theirs come from the same backward
        self.extra = [p for p in tensors if p.requires_grad and id(p) not in opt_ids]

    def _phase(self, step: int, phase: str) -> None:
        """Tell ``on_step`` which phase of which step begins."""
        if self.on_step:
            self.on_step(step, self.steps, phase)

    def step(
        self,
        step: int,
        records: list[ParamRecord],
        buffers: list,
        buf_records: list[BufferRecord],
        reach_by_term: dict[str, set[int]],
    ) -> StepRecord:
        """Forward, backward and update of ``step``; each parameter's and buffer's record
        updated, the loss terms' reach gathered; the step's record returned."""
        t0 = time.perf_counter()
        self._phase(step, "forward")
        batch = self.workload.batch_for(step)
        before = [_np(p) for p in self.tensors]
        buf_before = [_np(b) for _, b in buffers]
        self.optimizer.zero_grad(set_to_none=True)
        for p in self.extra:  # no optimizer clears these: gradients must not pile up
            p.grad = None
        with self.hooks:
            loss, terms, stats = call_loss(self.workload, batch)
        reach = graph_reach({"__loss__": loss, **terms}, self.tensors)
        for term in terms:
            reach_by_term.setdefault(term, set()).update(reach[term])
        self._phase(step, "backward")
        if loss.requires_grad:
            loss.backward()
        grads = [None if p.grad is None else _np(p.grad) for p in self.tensors]
        self._phase(step, "update")
        self.optimizer.step()
        self._record(step, records, before, grads, reach["__loss__"])
        for (_, b), brec, old in zip(buffers, buf_records, buf_before):
            if not np.array_equal(_np(b), old):
                brec.changed = True
        return StepRecord(
            step=step,
            loss=float(loss.detach()),
            terms={k: float(v.detach()) for k, v in terms.items()},
            stats=jsonable(stats),
            seconds=round(time.perf_counter() - t0, 4),
        )

    def _record(
        self, step: int, records: list[ParamRecord], before: list, grads: list, reached: set[int]
    ) -> None:
        """Each parameter's status, gradient norm and change in ``step``: the same
        bookkeeping as Jittor's (:func:`gradcheck.recorder.record_step`)."""
        for i, rec in enumerate(records):
            p = self.tensors[i]
            after = _np(p)
            changed = not np.array_equal(after, before[i])
            if not p.requires_grad:
                status, gnorm = Status.FROZEN, None
            elif grads[i] is None or i not in reached:
                status, gnorm = Status.MISSING, 0.0
            else:
                status, gnorm = step_status(True, grads[i]), host_norm(grads[i])
            change = Change(
                changed, host_norm(after - before[i]) if changed else 0.0, host_norm(before[i])
            )
            recorder.record_step(rec, status, gnorm, change)


class _TorchBackend:
    """:class:`gradcheck.backend.Backend` for PyTorch: :func:`check`."""

    name = "torch"

    def accepts(self, model) -> bool:
        return torchenv.is_torch_module(model)

    def check(self, workload, steps=1, seed=0, on_step=None, policy=None) -> Report:
        return check(workload, steps=steps, seed=seed, on_step=on_step, policy=policy)


BACKEND = _TorchBackend()
