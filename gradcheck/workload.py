"""What gradcheck probes: a model, a batch, a loss and an optimizer.

A :class:`Workload` is the whole contract between a user's code and the probe::

    def make():                                   # mypkg/checks.py
        model = MyNet()
        batch = (jt.randn(4, 3, 32, 32), jt.randint(0, 10, (4,)))
        def loss(model, batch):
            x, y = batch
            logits = model(x)
            ce = nn.cross_entropy_loss(logits, y)
            return ce + 1e-4 * reg, {"ce": ce, "reg": 1e-4 * reg}
        return gradcheck.Workload(model, batch, loss, frozen={"embed.*": "pretrained"})

    $ gradcheck run --model mypkg.checks:make      # or --model path/to/checks.py:make

Several optimizers (a GAN's alternating G/D steps) are ``phases``: each :class:`Phase` has its
own loss and optimizer and runs, in order, once per probe step (forward, backward, optimizer
step); ``accumulate=N`` runs N forward/backward passes before the one optimizer step
(gradient accumulation)::

    Workload(model, batch, phases=[Phase("D", d_loss, opt_d), Phase("G", g_loss, opt_g)])

The probe runs the model exactly as handed over: it never calls ``train()`` and never changes
``requires_grad``.  ``train_mode=True`` (CLI ``--train-mode``) calls ``model.train()`` first,
and the report names every parameter whose frozen state that switch changed.

(:mod:`gradcheck.resolve` turns ``--model`` into a Workload.)

``loss(model, batch)`` returns a scalar Var, or ``(scalar, {term_name: Var})``, or
``(scalar, terms, stats)`` with a dict of JSON-able statistics kept per step in the report.
``zero_hint(record, report)`` may return a model-specific sentence explaining an exactly-zero
gradient (the bundled Gold-YOLO workloads name a detection level without usable positives).
``batch`` may also be a callable ``batch(step) -> batch`` (steps count from 1) for data that
changes from step to step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable


class WorkloadError(ValueError):
    """The workload cannot be loaded or run as given (a user error: exit code 2)."""


@dataclass
class Phase:
    """One optimizer's part of a training step: its loss, its optimizer, its micro-batches."""

    name: str
    loss: Callable | None  # (model, batch) -> like Workload.loss; None: a script's own
    optimizer: Any = None  # None: SGD over the trainable parameters (one phase only)
    accumulate: int = 1  # backward passes summed before the one optimizer step


@dataclass
class Workload:
    model: Any
    batch: Any
    loss: Callable | None = None  # None only when ``phases`` are given
    optimizer: Any = None
    frozen: Mapping[str, str] | None = None  # glob -> reason it is frozen on purpose
    name: str = "custom"
    buffers: tuple = ()  # extra globs of non-trainable Vars (buffers)
    info: dict = field(default_factory=dict)  # settings to record in the report's config
    # model-specific explanation of an exactly-zero gradient: (record, report) -> sentence
    zero_hint: Callable | None = None
    train_mode: bool = False  # call model.train() before probing
    accumulate: int = 1  # backward passes per optimizer step
    phases: list | None = None  # [Phase]: several optimizers, run in order

    def plan(self) -> list:
        """The phases of one step: ``phases``, or one phase from ``loss``/``optimizer``."""
        if self.phases:
            names = [getattr(p, "name", None) for p in self.phases]
            if not all(isinstance(p, Phase) for p in self.phases):
                raise WorkloadError("phases must be a list of gradcheck.workload.Phase")
            if len(set(names)) != len(names):
                raise WorkloadError(f"phase names must differ, got {names}")
            return list(self.phases)
        if self.loss is None:
            raise WorkloadError("the workload has no loss (give loss or phases)")
        return [Phase("main", self.loss, self.optimizer, self.accumulate)]

    def batch_for(self, step: int):
        return self.batch(step) if callable(self.batch) else self.batch


def default_optimizer(params, lr: float = 0.01):
    from gradcheck import runtime

    jt = runtime.import_jittor()
    return jt.optim.SGD(list(params), lr)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def unpack_loss(loss_fn, model, batch, where: str) -> tuple:
    """Run one loss callable; return ``(loss, terms, stats)`` as the contract above shapes
    them, whatever the framework.  A broken contract is the user's (exit 2)."""
    try:
        out = loss_fn(model, batch)
    except WorkloadError:
        raise
    except Exception as exc:
        raise WorkloadError(
            f"the loss of {where} raised {type(exc).__name__}: {_one_line(exc)}"
        ) from exc
    if not isinstance(out, tuple):
        return out, {}, {}
    if not 2 <= len(out) <= 3:
        raise WorkloadError(
            f"the loss returned a tuple of {len(out)}; expected "
            "scalar, (scalar, terms) or (scalar, terms, stats)"
        )
    terms = out[1] or {}
    if not isinstance(terms, dict):
        raise WorkloadError(f"the loss terms are a {type(terms).__name__}, expected a dict")
    return out[0], dict(terms), dict((out[2] if len(out) == 3 else None) or {})


def call_loss(loss_fn, model, batch, where: str):
    """Run one loss callable and check it keeps the contract above for Jittor; return
    ``(scalar Var, {term: Var}, stats dict)``."""
    from gradcheck import graph, runtime

    jt = runtime.import_jittor()
    loss, terms, stats = unpack_loss(loss_fn, model, batch, where)
    if not isinstance(loss, jt.Var):
        raise WorkloadError(f"the loss is a {type(loss).__name__}, not a jittor Var")
    if loss.numel() != 1:
        raise WorkloadError(f"the loss is not a scalar: shape {list(loss.shape)}")
    if not graph.is_float(loss):
        raise WorkloadError(f"the loss has dtype {loss.dtype}; gradients need a float")
    for k, v in terms.items():
        if not isinstance(v, jt.Var) or v.numel() != 1:
            raise WorkloadError(f"loss term {k!r} is not a scalar Var")
    return loss, terms, stats
