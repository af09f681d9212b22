"""Totals and verdict derived from a report's records (no rendering here).

:func:`finalize` fills ``report.summary``, ``report.modules`` and ``report.verdict`` from the
per-parameter records and a :class:`~gradcheck.policy.Policy`.  It is pure: running it twice,
or on a report loaded from JSON, gives the same result.  The verdict (:func:`judge`) groups
the findings by cause (:func:`finding_groups`), each group with its fix, so 444 exactly-zero
gradients read as one line that says why and what to run next (:func:`next_command`).
"""

from __future__ import annotations

import fnmatch
import re
import shlex
from collections import Counter
from typing import TYPE_CHECKING

from gradcheck.enums import (
    ALLOWABLE,
    BUFFER_FINDINGS,
    FLAG_FINDINGS,
    REACHED,
    RUN_STATUSES,
    UNCOVERED,
    Cause,
    Finding,
    Severity,
    Status,
)
from gradcheck.policy import Policy
from gradcheck.schema import BufferRecord, ModuleRollup, ParamRecord, Summary, Verdict, VerdictGroup
from gradcheck.status import SEVERITY, worst  # noqa: F401 (re-exported)

if TYPE_CHECKING:  # a Report holds the records; report.py derives its totals from here
    from gradcheck.report import Report


def findings(rec: ParamRecord) -> list:
    """The policy words (see :mod:`gradcheck.policy`) that apply to one parameter."""
    out: list[Finding | None] = []
    if rec.status in UNCOVERED:
        out.append(Finding(rec.status))
    if rec.requires_grad and not rec.in_optimizer:
        out.append(
            Finding.NOT_IN_OPTIMIZER
            if rec.tracked
            else Finding.UNTRACKED
            if rec.status in REACHED
            else None
        )
    if rec.cause == Cause.NEVER_UPDATED:
        out.append(Finding.NEVER_UPDATED)
    if rec.status == Status.FROZEN and not rec.frozen_reason:
        out.append(Finding.FROZEN_UNDECLARED)
    if rec.requires_grad and rec.frozen_reason and rec.cause != Cause.FROZEN:
        out.append(Finding.FROZEN_BUT_TRAINED)
    out.extend(Finding(f) for f in rec.flags if f in FLAG_FINDINGS)
    return [f for f in out if f]


def buffer_findings(rec: BufferRecord) -> list:
    """The policy words that apply to one buffer: ``trained_buffer``, a buffer an optimizer
    holds that takes gradients (Jittor's ``register_buffer`` does not stop-grad it)."""
    return (
        [Finding.TRAINED_BUFFER]
        if rec.kind == "buffer" and rec.in_optimizer and rec.trainable
        else []
    )


def module_rollup(params: list) -> list:
    """Covered/total per module subtree (every ancestor of every parameter), model order."""
    # first per module that holds parameters, then once per such module into its ancestors:
    # a deep model has 3x fewer modules than parameters
    direct: dict = {}
    for rec in params:
        s = direct.get(rec.name.rpartition(".")[0])
        if s is None:
            s = direct[rec.name.rpartition(".")[0]] = [0, 0, 0, 0, Counter()]
        s[0] += 1
        s[1] += rec.numel
        s[2] += int(rec.requires_grad)
        s[3] += int(rec.status == Status.COVERED)
        s[4][rec.status] += 1
    order: list = []  # a prefix first met with the first parameter under it
    stats: dict = {}
    for module, s in direct.items():
        parts = module.split(".") if module else []
        for prefix in [""] + [".".join(parts[:i]) for i in range(1, len(parts) + 1)]:
            t = stats.get(prefix)
            if t is None:
                order.append(prefix)
                t = stats[prefix] = [0, 0, 0, 0, Counter()]
            for k in range(4):
                t[k] += s[k]
            t[4].update(s[4])
    out = []
    for prefix in order:
        n, numel, trainable, covered, by = stats[prefix]
        out.append(
            ModuleRollup(
                module=prefix,
                depth=0 if not prefix else prefix.count(".") + 1,
                params=n,
                numel=numel,
                trainable=trainable,
                covered=covered,
                by_status=dict(by),
                worst=worst(by),
            )
        )
    return out


def summarize(report: Report) -> Summary:
    params = report.params
    by_status = Counter(p.status for p in params)
    numel_by_status: Counter[str] = Counter()
    for p in params:
        numel_by_status[p.status] += p.numel
    trainable = [p for p in params if p.requires_grad]
    find = Counter(f for p in params for f in findings(p))
    find.update(f for b in report.buffers for f in buffer_findings(b))
    covered = by_status.get(Status.COVERED, 0)
    return Summary(
        params=len(params),
        numel=sum(p.numel for p in params),
        trainable=len(trainable),
        trainable_numel=sum(p.numel for p in trainable),
        frozen=by_status.get(Status.FROZEN, 0),
        buffers=len(report.buffers),
        buffer_numel=sum(b.numel for b in report.buffers),
        by_status={s: by_status.get(s, 0) for s in RUN_STATUSES},
        numel_by_status={s: numel_by_status.get(s, 0) for s in RUN_STATUSES},
        coverage=round(covered / len(trainable), 6) if trainable else None,
        in_optimizer=sum(p.in_optimizer for p in params),
        updated=sum(p.updated for p in params),
        moved_without_grad=sum(p.moved_without_grad for p in params),
        findings=dict(find),
        steps=len(report.steps),
        jittor_warnings=len(report.warnings),
        # a warning the graph contradicts: evidence against the probe, never a status
        jittor_warnings_disagree=sum(1 for w in report.warnings if w.agrees is False),
    )


# why a finding's parameters are in that state, and what to do: (finding, cause) -> (why, fix)
WHY: dict[tuple[str, str], tuple[str, str | None]] = {
    (Finding.MISSING, Cause.NOT_CALLED): (
        "its module never ran in the forward pass",
        "call it in training, remove it, or list it under allow_uncovered",
    ),
    (Finding.MISSING, Cause.STALE_VAR): (
        "an optimizer holds this Var, but the forward uses another one (an attribute "
        "replaced, or recomputed every forward as weight norm's weight)",
        "build the optimizer from the Vars the forward uses (weight norm: weight_g, weight_v)",
    ),
    (Finding.MISSING, Cause.CUT): (
        "no differentiable path reaches the loss (detach, stop_grad, no_grad, or an unused output)",
        "find the detach / stop_grad / no_grad on its path to the loss",
    ),
    (Finding.ZERO, Cause.ZERO_GRADIENT): (
        "a zero multiplier, a mask or a saturated activation on its path",
        "find what zeroes it, or list it under allow_uncovered",
    ),
    (Finding.NONFINITE, Cause.NONFINITE): (
        "NaN/Inf in its gradient",
        "look at the first step with NaN/Inf (a log, sqrt or division of a non-positive value?)",
    ),
    (Finding.NOT_IN_OPTIMIZER, Cause.NOT_IN_OPTIMIZER): (
        "it has a gradient, but no optimizer group holds it",
        "add it to an optimizer parameter group",
    ),
    (Finding.FROZEN_UNDECLARED, Cause.FROZEN_UNDECLARED): (
        "frozen without an expected_frozen declaration",
        "declare it under expected_frozen (glob: reason), or let it train",
    ),
    (Finding.FROZEN_BUT_TRAINED, Finding.FROZEN_BUT_TRAINED): (
        "an expected_frozen glob matches it, yet it trains",
        "drop the glob, or stop_grad it",
    ),
    (Finding.VANISHING, Finding.VANISHING): (
        "gradient norm / weight norm below vanishing_grad",
        "check the initialisation and normalisation on its path",
    ),
    (Finding.STOPPED_TRAINING, Finding.STOPPED_TRAINING): (
        "a gradient on earlier samples, none or zero on every later one (a dead ReLU, a "
        "collapsed expert, a branch a schedule turned off)",
        "look at what changed in training around that step",
    ),
    (Finding.EXPLODING, Finding.EXPLODING): (
        "gradient norm / weight norm above exploding_grad",
        "check the learning rate, initialisation and normalisation",
    ),
    (Finding.UNTRACKED, Cause.UNTRACKED): (
        "the loss reaches it, but no optimizer holds it and model.parameters() does not list "
        "it (a sub-module in a plain list or dict, or a layer created after the optimizer)",
        "keep sub-modules in nn.ModuleList / nn.ModuleDict or attributes, and build the "
        "optimizer after every layer exists",
    ),
    (Finding.NEVER_UPDATED, "lr_zero"): (  # never_updated, told apart by its sentence
        "a gradient and an optimizer, but its group's learning rate is 0 on every step",
        "give its group a learning rate, or declare it under expected_frozen if it is frozen "
        "on purpose",
    ),
    (Finding.NEVER_UPDATED, Cause.NEVER_UPDATED): (
        "a gradient, a learning rate and an optimizer, yet the step never changed its value "
        "(a masked or skipped update)",
        "find what masks or undoes its update",
    ),
    (Finding.TRAINED_BUFFER, Finding.TRAINED_BUFFER): (
        "an optimizer holds this buffer and it takes gradients, so the optimizer rewrites it",
        "build the optimizer from the trainable parameters only, or stop_grad the buffer",
    ),
}
ZERO_INIT = "downstream weights start at zero"
_ZERO_INIT_MARKS = ("start at exactly zero",)
_TRY = re.compile(r"\s*\((try [^)]*)\)\s*$")


def _steps_fix(report) -> tuple:
    """(why, fix, rerun) for exactly-zero gradients behind zero-initialised weights."""
    from gradcheck import registry
    from gradcheck.settings import DEFAULT_STEPS

    steps = len(report.steps) or int(report.config.get("steps") or 1)
    spreading = steps == 1 or any(p.first_nonzero_step == steps for p in report.params)
    if not spreading:
        return (
            f"{ZERO_INIT} and stayed there (nothing new was covered on step {steps})",
            "see what keeps them at zero (a zero learning rate, a frozen layer), or list "
            "them under allow_uncovered",
            None,
        )
    rec = registry.recommended(report.config.get("model"))
    if rec is not None and rec.steps and rec.steps > steps:
        more = rec.steps
    else:
        more = DEFAULT_STEPS if steps < DEFAULT_STEPS else 2 * steps
    return (
        f"{ZERO_INIT}; coverage spreads one layer per step",
        f"run with --steps {more}",
        {"steps": more},
    )


def _why(finding: str, rec: ParamRecord, steps_fix) -> tuple:
    """(cause, why, fix, rerun) of one parameter's finding: the key it is grouped under."""
    if finding == Finding.ZERO:
        detail = rec.cause_detail or ""
        if any(mark in detail for mark in _ZERO_INIT_MARKS):
            return (Cause.ZERO_GRADIENT,) + steps_fix()
        text = detail.split("exactly zero: ", 1)[-1].split(", yet its value changed")[0]
        text = text[len("likely ") :] if text.startswith("likely ") else text  # schema 1
        m = _TRY.search(text)
        if text and m:
            return Cause.ZERO_GRADIENT, text[: m.start()], m.group(1), None
        if text and rec.cause in (Cause.ZERO_GRADIENT, Cause.DECAY_ONLY):
            return Cause.ZERO_GRADIENT, text, WHY[Finding.ZERO, Cause.ZERO_GRADIENT][1], None
        return (Cause.ZERO_GRADIENT,) + WHY[Finding.ZERO, Cause.ZERO_GRADIENT] + (None,)
    if finding == Finding.MISSING:
        cause = Cause(rec.cause) if rec.cause in (Cause.NOT_CALLED, Cause.STALE_VAR) else Cause.CUT
        why, fix = WHY[Finding.MISSING, cause]
        if rec.cause == Cause.DECAY_ONLY:
            why += "; weight decay or momentum moves it anyway"
        return cause, why, fix, None
    if finding == Finding.NEVER_UPDATED and "learning rate is 0" in (rec.cause_detail or ""):
        return (Cause.NEVER_UPDATED,) + WHY[Finding.NEVER_UPDATED, "lr_zero"] + (None,)
    if finding == Finding.STOPPED_TRAINING:
        why, fix = WHY[finding, finding]
        return finding, f"from step {rec.stopped_step}: {why}", fix, None
    return (finding,) + WHY.get((finding, finding), ("", None)) + (None,)


def finding_groups(report: Report, policy: Policy) -> list:
    """The findings of a run grouped by cause, failing first: one
    :class:`~gradcheck.schema.VerdictGroup` per (finding, severity, cause, why)."""
    failing = policy.failing()
    cache: list = []

    def steps_fix():
        if not cache:
            cache.append(_steps_fix(report))
        return cache[0]

    groups: dict = {}
    records = [(p, findings(p)) for p in report.params]
    records += [(b, buffer_findings(b)) for b in report.buffers]
    for p, found in records:
        for finding in found:
            allowed = policy.allowed_reason(p.name) if finding in ALLOWABLE else None
            if allowed is not None:
                severity, cause, why, fix, rerun = Severity.ALLOWED, finding, allowed, None, None
            elif finding in failing or finding in policy.warn_on:
                severity = Severity.FAIL if finding in failing else Severity.WARN
                cause, why, fix, rerun = _why(finding, p, steps_fix)
            else:
                continue
            key = (finding, severity, cause, why)
            g = groups.setdefault(
                key,
                VerdictGroup(
                    finding=finding,
                    severity=severity,
                    cause=cause,
                    why=why,
                    fix=fix,
                    rerun=rerun,
                    count=0,
                    names=[],
                ),
            )
            g.count += 1
            g.names.append(p.name)
    order = {severity: i for i, severity in enumerate(Severity)}  # failing first
    return sorted(groups.values(), key=lambda g: order[g.severity])


def group_line(g: VerdictGroup, shown: int = 3) -> str:
    """One line for a group: '444 parameters: zero_gradient, why: fix (a, b, c, ... +441)'."""
    n = g.count
    names = ", ".join(g.names[:shown]) + (f", ... (+{n - shown})" if n > shown else "")
    fix = f": {g.fix}" if g.fix else ""
    return f"{g.finding}: {counted(g)}: {g.cause}, {g.why}{fix} ({names})"


def counted(g: VerdictGroup) -> str:
    """'444 parameters', '1 buffer': how many records a group holds, and of what kind."""
    noun = "buffer" if g.finding in BUFFER_FINDINGS else "parameter"
    return f"{g.count} {noun}{'s' if g.count != 1 else ''}"


def next_command(report: Report) -> str | None:
    """The command to run next after a failing run: the same run with the settings that fix
    the first failing group, or with --verbose to see every parameter."""
    v = report.verdict
    if v.passed:
        return None
    cfg, src = report.config, report.config.get("settings_source") or {}
    args = {
        key: cfg.get(key)
        for key in ("steps", "img_size", "batch_size", "seed", "data")
        if src.get(key) == "flag" and cfg.get(key) is not None
    }
    rerun = next((g.rerun for g in v.groups if g.severity == Severity.FAIL and g.rerun), None)
    args.update(rerun or {})
    script = cfg.get("command") if cfg.get("mode") == "script" else None
    if script:  # a script's own run: only the probe's settings are gradcheck's
        args = {k: v for k, v in args.items() if k == "steps"}
    cmd = ["gradcheck", "run"] + ([] if script else ["--model", shlex.quote(str(cfg.get("model")))])
    for key, value in args.items():
        cmd += [f"--{key.replace('_', '-')}", shlex.quote(str(value))]
    cmd += [] if rerun else ["--verbose"]
    return " ".join(cmd + (["--"] + [shlex.quote(str(w)) for w in script] if script else []))


def judge(report: Report, policy: Policy) -> Verdict:
    verdict = Verdict(groups=finding_groups(report, policy))
    for g in verdict.groups:
        if g.severity == Severity.FAIL:
            verdict.reasons.append(group_line(g))
        elif g.severity == Severity.WARN:
            verdict.warnings.append(group_line(g))
    for term in report.loss_terms:
        if term.reaches == 0:
            verdict.warnings.append(f"loss term {term.name!r} reaches no parameter")
        elif term.constant:
            verdict.warnings.append(
                f"loss term {term.name!r} is constant "
                f"({term.values[0]} on every step): a dead loss term?"
            )
    intermittent = [p.name for p in report.params if "intermittent" in p.flags]
    if intermittent:
        verdict.warnings.append(
            f"intermittent: {len(intermittent)} parameter(s) covered on some "
            f"steps only (data-dependent), e.g. {intermittent[0]}"
        )
    for table, label in (
        (policy.expected_frozen, "expected_frozen"),
        (policy.allow_uncovered, "allow_uncovered"),
    ):
        for glob in table:
            if not any(fnmatch.fnmatchcase(p.name, glob) for p in report.params):
                verdict.warnings.append(f"{label} {glob!r} matches no parameter")
    verdict.result = "fail" if verdict.reasons else "pass"
    return verdict


def finalize(report: Report, policy: Policy) -> Report:
    report.summary = summarize(report)
    report.modules = module_rollup(report.params)
    report.verdict = judge(report, policy)
    report.config.setdefault("policy", policy.record())
    return report
