"""The status rules, in one place: how a step status, a run status and a module's worst status
are decided.  Everything else (probe, report, summary, compare, renderers) imports them from here.

Per-step statuses (``ParamRecord.steps``):

* ``nonzero``   -- a gradient call that trains the parameter reached it, and the gradient is
  not all zeros;
* ``zero``      -- it reaches that call's loss, but its gradient is exactly zero;
* ``missing``   -- no differentiable path from the parameter to that loss in Jittor's graph;
* ``nonfinite`` -- the gradient holds NaN or Inf;
* ``frozen``    -- the parameter does not take gradients (``stop_grad`` / eval mode);
* ``absent``    -- it did not exist yet (a layer created lazily on a later step's forward).

The graph and the gradient values decide; Jittor's ``doesn't have gradient`` warnings never do
(they are evidence, kept in ``Report.warnings`` with whether they agree).
"""

from __future__ import annotations

from gradcheck.enums import REACHED, RUN_STATUSES, STEP_STATUSES, UNCOVERED, WORST_FIRST, Status

# the status sets are re-exported from here (older imports, and probe.py's status.REACHED)
__all__ = [
    "REACHED",
    "RUN_STATUSES",
    "STEP_STATUSES",
    "UNCOVERED",
    "SEVERITY",
    "Status",
    "step_status",
    "combine",
    "run_status",
    "worst",
]

SEVERITY = WORST_FIRST  # the older name: statuses worst first (not a verdict Severity)


def step_status(reached: bool, grad) -> Status:
    """One gradient call's verdict on one trainable parameter.

    The "missing" rule: ``reached`` (a path from the parameter to the call's loss) is False.
    Otherwise the values decide: NaN/Inf, all zeros, or non-zero.
    """
    if not reached:
        return Status.MISSING
    import numpy as np  # here: reading a report (show, compare) never needs numpy

    g = np.asarray(grad)
    if not np.isfinite(g).all():
        return Status.NONFINITE
    return Status.NONZERO if np.any(g != 0) else Status.ZERO


def combine(statuses) -> Status:
    """One step's status from several gradient calls (phases, accumulated micro-batches):
    a NaN anywhere is a NaN; otherwise the best any call gave."""
    present = set(statuses)
    for s in (Status.FROZEN, Status.NONFINITE, Status.NONZERO, Status.ZERO):
        if s in present and (s != Status.FROZEN or present == {Status.FROZEN}):
            return s
    return Status.MISSING


def run_status(steps: list) -> Status:
    """The run's status from the per-step ones: covered if any step had a non-zero gradient."""
    steps = [s for s in steps if s != Status.ABSENT]
    if not steps:
        return Status.MISSING
    if all(s == Status.FROZEN for s in steps):
        return Status.FROZEN
    if Status.NONFINITE in steps:
        return Status.NONFINITE
    if Status.NONZERO in steps:
        return Status.COVERED
    if Status.ZERO in steps:
        return Status.ZERO
    return Status.MISSING


def worst(statuses) -> Status:
    present = set(statuses)
    for s in WORST_FIRST:
        if s in present:
            return s
    return Status.COVERED
