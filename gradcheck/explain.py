"""Why a parameter is not plainly covered: a stable cause code plus one sentence.

Codes (stored in ``ParamRecord.cause``; the sentence in ``cause_detail``):

=========================  ==================================================================
``not_called``             no op of any step read it (its module never ran, or the code that
                           uses it, e.g. a method training does not call, never ran)
``cut``                    an op read it, but no differentiable path reaches the loss
                           (detached, ``stop_grad``, ``no_grad``, or the output is unused)
``frozen``                 frozen on purpose, with the declared reason
``eval_mode``              frozen because ``Module.eval()`` stop-grads every parameter (it took
                           gradients before); training never calls ``train()``
``train_mode``             its frozen state differs from the model as handed over, because
                           ``train_mode`` called ``model.train()``
``frozen_undeclared``      frozen (``stop_grad``/``requires_grad=False``) without a declaration
``zero_gradient``          reaches the loss but the gradient is exactly zero, with what is proven
                           about why (never a layer that is not on its path)
``nonfinite``              NaN/Inf in its gradient, from the step it first appeared
``not_in_optimizer``       it has a gradient, but no optimizer group will apply it
``update_below_precision`` its gradient was non-zero but too small to change the float32 value
                           (the optimizer's step, replayed: :func:`optimizers.rounds_away`)
``decay_only``             it got no gradient, yet weight decay or momentum changed its value
``untracked``              the loss reaches it, but no optimizer holds it and the model's
                           ``parameters()`` does not list it (a sub-module in a plain list or
                           dict, or a layer created after the optimizer was built)
``stale_var``              an optimizer holds this Var, but the forward uses another one (the
                           model replaced the attribute, or recomputes it every forward, as
                           weight norm does), so no loss reaches it
``never_updated``          a non-zero gradient and an optimizer, yet the value never changed,
                           with the reason (a learning rate of 0, a masked update)
=========================  ==================================================================

Flags (``ParamRecord.flags``): ``intermittent`` (a gradient on some steps, none on a later
one: data-dependent coverage), ``vanishing`` and ``exploding`` (gradient norm over weight
norm beyond the policy's thresholds), ``stopped_training`` (a :func:`gradcheck.watch` run: a
gradient on earlier samples, zero or none on every later one, from ``stopped_step``).
"""

from __future__ import annotations

from typing import Protocol

from gradcheck.enums import CAUSES, Cause, Finding, Status  # noqa: F401 (CAUSES re-exported)
from gradcheck.report import ParamRecord, Report

F32_EPS = 2.0**-23  # float32's relative precision: a smaller step leaves a value unchanged
F32_MIN = 2.0**-126  # smallest normal float32: Jittor's kernels flush smaller results to 0


class ModuleCalls(Protocol):
    """What the causes need of a recorder of module calls: :class:`CallRecorder` (Jittor) or
    :class:`gradcheck.parity.torch_probe.TorchCallRecorder` (torch)."""

    def ran(self, module_name: str) -> bool | None:
        """Did the module's forward run?  None if unknown."""


class CallRecorder:
    """Record which modules run, with Jittor pre-forward hooks (chained, and restored after).
    Only for the sentence: whether a parameter was read is decided from the graph."""

    _HOOK = "__fhook2__"

    def __init__(self, model):
        self.modules = list(model.named_modules())
        self.called: set = set()

    def __enter__(self):
        self._saved = []
        for name, module in self.modules:
            prev = module.__dict__.get(self._HOOK)
            self._saved.append((module, prev))

            def hook(mod, args, *kw, _name=name, _prev=prev):
                self.called.add(_name)
                if _prev is not None:
                    return _prev(mod, args, *kw)
                return None

            module.register_pre_forward_hook(hook)
        return self

    def __exit__(self, *exc):
        for module, prev in self._saved:
            if prev is None:
                module.__dict__.pop(self._HOOK, None)
            else:
                module.__dict__[self._HOOK] = prev
        return False

    def ran(self, module_name: str) -> bool | None:
        """Did the module's forward (``execute``) run?  None if unknown."""
        if not self.called:
            return None
        return module_name in self.called


def _fmt_steps(steps: list, status: str) -> str:
    idx = [str(i + 1) for i, s in enumerate(steps) if s == status]
    return ", ".join(idx)


def _zero_reason(rec: ParamRecord, report: Report, zero_hint=None) -> str:
    """Why a gradient is exactly zero, as far as it is proven: a model-specific hint, the
    zero-valued weights the graph found on this parameter's own path to the loss, or an empty
    Var on that path (:func:`gradcheck.graph.zero_proofs`); otherwise it says it does not
    know, never naming a layer that is not on the path."""
    head = "reaches the loss, but its gradient is exactly zero: "
    if zero_hint is not None:
        specific = zero_hint(rec, report)
        if specific:
            return head + specific
    if rec.zero_blockers:
        shown = ", ".join(rec.zero_blockers[:3]) + (" ..." if len(rec.zero_blockers) > 3 else "")
        return (
            head + f"weights on its path to the loss that start at exactly zero ({shown}) "
            "block the gradient until they move"
        )
    if rec.zero_why == "empty":
        return (
            head + "no data was routed through it on that step (an empty tensor on its path "
            "to the loss: e.g. an expert that received no tokens)"
        )
    terms = rec.reached_by or []
    if len(terms) >= 2:
        return (
            head
            + "not proven why; the loss terms "
            + ", ".join(repr(t) for t in terms)
            + " reach it, and their gradients can cancel exactly; a mask, a saturated "
            "activation or a zero multiplier on its path can also zero it"
        )
    return (
        head + "not proven why (a mask, a saturated activation or a zero multiplier on "
        "its path are the usual causes)"
    )


def cause_of(rec: ParamRecord, report: Report, calls: ModuleCalls | None, zero_hint=None) -> tuple:
    """(code, sentence) for one parameter, or (None, None) when it is plainly covered."""
    if rec.status == Status.FROZEN:
        return _frozen_cause(rec)
    if rec.status == Status.NONFINITE:
        return Cause.NONFINITE, (
            f"NaN/Inf in its gradient from step {rec.first_nonfinite_step} "
            f"(steps {_fmt_steps(rec.steps, Status.NONFINITE)})"
        )
    if rec.status in (Status.MISSING, Status.ZERO):
        return _no_gradient_cause(rec, report, calls, zero_hint)
    return _covered_cause(rec)


def _frozen_cause(rec: ParamRecord) -> tuple:
    """(code, sentence) for a frozen parameter: declared, frozen by eval() or train(), or not
    declared."""
    if rec.frozen_reason:
        return Cause.FROZEN, f"frozen on purpose: {rec.frozen_reason}"
    if rec.eval_module is not None:
        return Cause.EVAL_MODE, (
            f"frozen by eval mode: {rec.eval_module or '<root>'!r}.eval() "
            "stop-grads every parameter and this one took gradients before; "
            "call model.train() before training (gradcheck: --train-mode), "
            "or declare it in expected_frozen if that is on purpose"
        )
    if rec.mode_change == "frozen":
        return Cause.TRAIN_MODE, (
            "frozen by the model's own train() (train_mode): it took gradients as handed over"
        )
    return Cause.FROZEN_UNDECLARED, (
        "frozen (stop_grad / requires_grad=False) but not declared "
        "in expected_frozen: a bug, or add it there"
    )


def _no_gradient_cause(
    rec: ParamRecord, report: Report, calls: ModuleCalls | None, zero_hint=None
) -> tuple:
    """(code, sentence) for a parameter whose gradient is missing or exactly zero: a stale
    Var, never read, moved by decay alone, cut from the loss, or zeroed on its path."""
    if rec.status == Status.MISSING and rec.in_optimizer and (rec.held_only or rec.reassigned):
        where = (
            "the model does not hold it (an attribute replaced after the optimizer was built?)"
            if rec.held_only
            else "the forward replaces its attribute with a new "
            "Var (recomputed every forward, as weight norm recomputes weight from "
            "weight_g and weight_v)"
        )
        return Cause.STALE_VAR, (
            f"an optimizer holds this Var, but {where}, so no loss reaches the "
            "Var the optimizer holds: it never trains; build the optimizer from "
            "the Vars the forward uses"
        )
    if rec.status == Status.MISSING and not any(rec.read_steps):
        return Cause.NOT_CALLED, f"no op of any step read it: {_unread_because(rec, calls)}"
    if rec.moved_without_grad and rec.in_optimizer:
        why = (
            "no path to the loss"
            if rec.status == Status.MISSING
            else _zero_reason(rec, report, zero_hint).replace(
                "reaches the loss, but its gradient is exactly zero", "an exactly-zero gradient"
            )
        )
        return Cause.DECAY_ONLY, (
            f"{why}, yet its value changed: weight decay or momentum alone "
            "moved it (updated is not trained)"
        )
    if rec.status == Status.MISSING:
        return Cause.CUT, (
            "an op read it, but no differentiable path reaches the loss (detached, "
            "stop_grad, no_grad, or the output is unused)"
        )
    return Cause.ZERO_GRADIENT, _zero_reason(rec, report, zero_hint)


def _unread_because(rec: ParamRecord, calls: ModuleCalls | None) -> str:
    """Why no op read a parameter, as far as the recorded module calls tell."""
    ran = calls.ran(rec.module) if calls is not None else None
    where = (
        f"its module {rec.module or '<root>'!r} never ran in the forward pass (unused "
        "module, or a branch taken only in eval mode)"
        if ran is False
        else f"its module {rec.module or '<root>'!r} ran, but never read it (used only by "
        "code training does not call)"
        if ran
        else "nothing read it"
    )
    if rec.reassigned:
        where += (
            "; its attribute is replaced during the forward, so the forward reads "
            "another Var than the one the optimizer holds"
        )
    return where


def _covered_cause(rec: ParamRecord) -> tuple:
    """(code, sentence) for a parameter with a gradient that still does not train: untracked,
    in no optimizer, never updated, unfrozen by train(), or updates rounded away; else
    (None, None)."""
    if rec.requires_grad and not rec.in_optimizer and not rec.tracked:
        return Cause.UNTRACKED, (
            "the loss reaches it with a gradient, but no optimizer holds it and "
            "the model's parameters() does not list it (a sub-module kept in a "
            "plain list or dict, or a layer created after the optimizer was "
            "built): it never trains"
        )
    if rec.requires_grad and not rec.in_optimizer:
        return Cause.NOT_IN_OPTIMIZER, (
            "has a gradient, but no optimizer group holds it: it is never trained"
        )
    never = never_updated(rec)
    if never is not None:
        if rec.frozen_reason:
            return Cause.FROZEN, f"frozen on purpose: {rec.frozen_reason} ({never})"
        return Cause.NEVER_UPDATED, never
    if rec.mode_change == "unfrozen":
        return Cause.TRAIN_MODE, (
            "takes gradients only because train_mode called model.train(): "
            "as handed over, an eval() had frozen it"
        )
    stuck = [
        i + 1
        for i, (s, u) in enumerate(zip(rec.steps, rec.updated_steps))
        if s == Status.NONZERO and not u
    ]
    if stuck and rec.in_optimizer:
        return Cause.UPDATE_BELOW_PRECISION, (
            f"non-zero gradient on step(s) {', '.join(map(str, stuck))} left the float32 value "
            f"unchanged (gradient norm {rec.grad_norms[stuck[0] - 1]:.3g} is below its "
            "precision)"
        )
    return None, None


def never_updated(rec: ParamRecord) -> str | None:
    """Why a parameter with a non-zero gradient and an optimizer never changed, or None when it
    did change (or the change was below float32 precision: ``update_below_precision``)."""
    if not rec.in_optimizer or rec.updated or Status.NONZERO not in rec.steps:
        return None
    graded = [k for k, s in enumerate(rec.steps) if s == Status.NONZERO]
    lrs = [rec.lrs[k] if k < len(rec.lrs) else None for k in graded]
    if lrs and all(lr == 0 for lr in lrs):
        return (
            "its optimizer group's learning rate is 0 on every step it had a gradient (a "
            "group frozen with lr=0, or a schedule at 0): it never trains"
        )
    rounded = [rec.rounded[k] if k < len(rec.rounded) else None for k in graded]
    if all(below_precision(rec, k, lr, r) for k, lr, r in zip(graded, lrs, rounded)):
        return None  # the optimizer's float32 arithmetic rounds each update away
    known = [lr for lr in lrs if lr is not None]
    at = f" and learning rate {max(known):.3g}" if known else ""
    replayed = (
        ", though its optimizer's own arithmetic would have moved it" if False in rounded else ""
    )
    return (
        f"a non-zero gradient (norm {max(rec.grad_norms[k] or 0.0 for k in graded):.3g}){at} "
        "on step(s) " + ", ".join(str(k + 1) for k in graded) + ", yet the optimizer's step "
        f"never changed its value{replayed} (a masked or skipped update?)"
    )


def below_precision(rec: ParamRecord, k: int, lr, rounded: bool | None) -> bool:
    """Whether step ``k``'s update of ``rec`` is too small for float32.  The probe's replay of
    the optimizer's own step (:func:`gradcheck.optimizers.rounds_away`) decides where it ran;
    otherwise (an optimizer it does not know, an older report) a bound for a plain step: each
    element's move under its half ulp, or under the smallest normal float32 (Jittor flushes
    the subnormal result of a zero weight), taken as norms and summed."""
    if rounded is not None:
        return rounded
    floor = F32_EPS * (rec.weight_norm or 0.0) + F32_MIN * max(rec.numel, 1) ** 0.5
    return lr is not None and (rec.grad_norms[k] or 0.0) * lr <= floor


def health_flags(rec: ParamRecord, policy) -> list:
    flags = []
    if rec.first_nonzero_step is not None and any(
        s in (Status.ZERO, Status.MISSING) for s in rec.steps[rec.first_nonzero_step :]
    ):
        flags.append("intermittent")  # covered on some steps only: data-dependent
    if not rec.requires_grad or not rec.weight_norm:
        return flags
    norms = [g for g in rec.grad_norms if g is not None]
    if not norms:
        return flags
    ratios = [g / rec.weight_norm for g in norms]
    nonzero = [r for r in ratios if r > 0]
    # vanishing: tiny on every step that had a gradient, over at least two such steps (a
    # gradient that has just arrived through a zero-initialised layer starts tiny)
    if len(nonzero) >= 2 and max(nonzero) < policy.vanishing_grad:
        flags.append(Finding.VANISHING)
    if any(r > policy.exploding_grad for r in ratios):
        flags.append(Finding.EXPLODING)
    return flags


def explain(
    report: Report, calls: ModuleCalls | None = None, policy=None, zero_hint=None
) -> Report:
    from gradcheck.policy import Policy

    policy = policy or Policy()
    sampled = report.config.get("mode") == "watch"
    for rec in report.params:  # rec.frozen_reason: resolved once, when the report was built
        rec.flags = health_flags(rec, policy)
        if sampled:
            rec.stopped_step = stopped_step(rec, [s.step for s in report.steps])
            if rec.stopped_step is not None:
                rec.flags.append(Finding.STOPPED_TRAINING)
        rec.cause, rec.cause_detail = cause_of(rec, report, calls, zero_hint)
    return report


def stopped_step(rec: ParamRecord, step_numbers: list) -> int | None:
    """Over the samples of a long run (gradcheck.watch): the step of the first sample after
    the last one with a gradient, when every sample from there on had none or a zero one."""
    steps = rec.steps
    last = max((i for i, s in enumerate(steps) if s == Status.NONZERO), default=None)
    if last is None or last == len(steps) - 1:
        return None
    if all(s in (Status.ZERO, Status.MISSING) for s in steps[last + 1 :]):
        return step_numbers[last + 1]
    return None
