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

import numpy as np

STEP_STATUSES = ("nonzero", "zero", "missing", "nonfinite", "frozen", "absent")
RUN_STATUSES = ("covered", "zero", "missing", "nonfinite", "frozen")
UNCOVERED = ("missing", "zero", "nonfinite")
REACHED = ("covered", "zero", "nonfinite")   # run statuses of a parameter some loss reached
# worst first: the status a module shows when its subtree mixes several ("frozen" only
# shows for a subtree that is all frozen: frozen-and-covered reads as covered)
SEVERITY = ("nonfinite", "missing", "zero", "covered", "frozen")


def step_status(reached: bool, grad) -> str:
    """One gradient call's verdict on one trainable parameter.

    The "missing" rule: ``reached`` (a path from the parameter to the call's loss) is False.
    Otherwise the values decide: NaN/Inf, all zeros, or non-zero.
    """
    if not reached:
        return "missing"
    g = np.asarray(grad)
    if not np.isfinite(g).all():
        return "nonfinite"
    return "nonzero" if np.any(g != 0) else "zero"


def combine(statuses) -> str:
    """One step's status from several gradient calls (phases, accumulated micro-batches):
    a NaN anywhere is a NaN; otherwise the best any call gave."""
    present = set(statuses)
    for s in ("frozen", "nonfinite", "nonzero", "zero"):
        if s in present and (s != "frozen" or present == {"frozen"}):
            return s
    return "missing"


def run_status(steps: list) -> str:
    """The run's status from the per-step ones: covered if any step had a non-zero gradient."""
    steps = [s for s in steps if s != "absent"]
    if not steps:
        return "missing"
    if all(s == "frozen" for s in steps):
        return "frozen"
    if "nonfinite" in steps:
        return "nonfinite"
    if "nonzero" in steps:
        return "covered"
    if "zero" in steps:
        return "zero"
    return "missing"


def worst(statuses) -> str:
    present = set(statuses)
    for s in SEVERITY:
        if s in present:
            return s
    return "covered"
