"""The step recorder: the one home of a parameter record's bookkeeping.

Every producer of a report goes through here: the Jittor probe (:mod:`gradcheck.probe`, also
for the script observer, :mod:`gradcheck.observe`), the torch probe
(:mod:`gradcheck.parity.torch_probe`) and rank 0's MPI merge (:mod:`gradcheck.distributed.merge`).

* :func:`new_param` opens a record, padded with ``absent`` steps for a parameter that appeared
  after the run began;
* :func:`record_step` appends what one step measured (status, gradient norm, value change,
  learning rate, the rounding answer): raw facts only;
* :func:`derive` computes every field that follows from those facts (run status, first
  non-zero and non-finite step, updated, moved without a gradient, last norms), so a merge
  that replaces the step statuses calls it again and cannot disagree with a probe;
* :func:`close` derives every record at the end of a run and notes which loss terms reach it;
* :func:`report` assembles the :class:`~gradcheck.report.Report` from the closed records: loss
  terms, causes (:mod:`gradcheck.explain`), summary and verdict (:mod:`gradcheck.summary`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

from gradcheck.enums import Status
from gradcheck.schema import LossTermRecord, ParamRecord
from gradcheck.status import run_status

# a step on which a value change is "moved without a gradient"
NO_GRADIENT = (Status.MISSING, Status.ZERO, Status.FROZEN)


def new_param(
    name: str, shape: Sequence[int], numel: int, *, absent: int = 0, **fields
) -> ParamRecord:
    """A record with no step yet, or ``absent`` steps it did not exist on; ``fields``: the
    record's fixed facts (``requires_grad``, ``in_optimizer``, ``module``, ...)."""
    return ParamRecord(
        name=name,
        shape=list(shape),
        numel=int(numel),
        steps=[Status.ABSENT] * absent,
        grad_norms=[None] * absent,
        update_norms=[None] * absent,
        updated_steps=[False] * absent,
        read_steps=[False] * absent,
        lrs=[None] * absent,
        rounded=[None] * absent,
        **fields,
    )


def record_step(
    rec: ParamRecord, state: str, gnorm, change, lr=None, rounded: bool | None = None
) -> None:
    """One step of one parameter: its status, gradient norm, value change
    (:class:`gradcheck.snapshot.Change`), the learning rate its optimizer group applied and,
    for an update that did not happen, :func:`gradcheck.probe.rounding`'s answer."""
    if rec.weight_norm is None:  # its value before the first step it existed on
        rec.weight_norm = change.before_norm
    rec.steps.append(state)
    rec.grad_norms.append(gnorm)
    rec.update_norms.append(change.delta_norm)
    rec.updated_steps.append(change.changed)
    rec.lrs.append(lr)
    rec.rounded.append(rounded)


def derive(rec: ParamRecord, numbers: Sequence[int] | None = None) -> None:
    """Every field of ``rec`` that follows from its per-step facts.  ``numbers``: the step
    number of each entry of ``rec.steps`` (a watched run samples steps 100, 200, ...);
    default 1, 2, ..."""
    steps = rec.steps
    numbers = range(1, len(steps) + 1) if numbers is None else numbers
    rec.status = run_status(steps)
    rec.first_nonzero_step = next((n for n, s in zip(numbers, steps) if s == Status.NONZERO), None)
    rec.first_nonfinite_step = next(
        (n for n, s in zip(numbers, steps) if s == Status.NONFINITE), None
    )
    rec.updated = any(rec.updated_steps)
    rec.moved_without_grad = any(u and s in NO_GRADIENT for u, s in zip(rec.updated_steps, steps))
    rec.grad_norm = rec.grad_norms[-1] if rec.grad_norms else None
    rec.update_norm = rec.update_norms[-1] if rec.update_norms else None


def close(
    records: Sequence[ParamRecord],
    numbers: Sequence[int] | None = None,
    reach_by_term: dict | None = None,
) -> None:
    """The end of a run: :func:`derive` every record and, where loss terms were traced, name
    the terms that reach each one (``reach_by_term``: term -> set of record indices)."""
    for idx, rec in enumerate(records):
        derive(rec, numbers)
        if reach_by_term:
            rec.reached_by = [t for t, found in reach_by_term.items() if idx in found]


def loss_terms(reach_by_term: dict, step_log: list) -> list:
    """One record per named loss term: how many parameters it reaches, its values, and whether
    it stayed constant (the same value on every step, and either several steps or exactly 0)."""
    out = []
    for term, reached_set in reach_by_term.items():
        values = [s.terms.get(term) for s in step_log]
        constant = all(v == values[0] for v in values) and (len(values) > 1 or values[0] == 0)
        out.append(
            LossTermRecord(name=term, reaches=len(reached_set), constant=constant, values=values)
        )
    return out


def report(
    *,
    config: dict,
    environment: dict,
    params: list,
    buffers: list,
    warnings: list,
    steps: list,
    reach_by_term: dict,
    calls=None,
    policy=None,
    zero_hint=None,
):
    """The report of a closed run (see :func:`close`): every framework's probe ends here, so
    causes, summary and verdict are decided once, the same way.  ``calls``: the module-call
    record :mod:`gradcheck.explain` reads (:class:`gradcheck.explain.ModuleCalls`)."""
    from gradcheck import explain, summary
    from gradcheck.policy import Policy
    from gradcheck.report import Report

    out = Report(
        config=config,
        environment=environment,
        params=params,
        buffers=buffers,
        warnings=warnings,
        steps=steps,
        loss_terms=loss_terms(reach_by_term, steps),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    explain.explain(out, calls=calls, policy=policy, zero_hint=zero_hint)
    summary.finalize(out, policy or Policy())
    return out
