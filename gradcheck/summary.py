"""Totals and verdict derived from a report's records (no rendering here).

:func:`finalize` fills ``report.summary``, ``report.modules`` and ``report.verdict`` from the
per-parameter records and a :class:`~gradcheck.policy.Policy`.  It is pure: running it twice,
or on a report loaded from JSON, gives the same result.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from gradcheck.policy import Policy
from gradcheck.report import RUN_STATUSES, ParamRecord, Report, Verdict

# worst first: the status a module shows when its subtree mixes several ("frozen" only
# shows for a subtree that is all frozen: frozen-and-covered reads as covered)
SEVERITY = ("nonfinite", "missing", "zero", "covered", "frozen")


def findings(rec: ParamRecord) -> list:
    """The policy words (see :mod:`gradcheck.policy`) that apply to one parameter."""
    out = []
    if rec.status in ("missing", "nonfinite", "zero"):
        out.append(rec.status)
    if rec.requires_grad and not rec.in_optimizer:
        out.append("not_in_optimizer")
    if rec.status == "frozen" and not rec.frozen_reason:
        out.append("frozen_undeclared")
    if rec.requires_grad and rec.frozen_reason:
        out.append("frozen_but_trained")
    out.extend(f for f in rec.flags if f in ("vanishing", "exploding", "rank_divergent",
                                             "replicas_diverged", "optimizer_mismatch"))
    return out


def worst(statuses) -> str:
    present = set(statuses)
    for s in SEVERITY:
        if s in present:
            return s
    return "covered"


def module_rollup(params: list) -> list:
    """Covered/total per module subtree (every ancestor of every parameter), model order."""
    order: list = []
    stats: dict = defaultdict(lambda: {"params": 0, "numel": 0, "covered": 0,
                                       "trainable": 0, "by_status": Counter()})
    for rec in params:
        parts = rec.name.split(".")[:-1]
        prefixes = [""] + [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
        for prefix in prefixes:
            if prefix not in stats:
                order.append(prefix)
            s = stats[prefix]
            s["params"] += 1
            s["numel"] += rec.numel
            s["trainable"] += int(rec.requires_grad)
            s["covered"] += int(rec.status == "covered")
            s["by_status"][rec.status] += 1
    out = []
    for prefix in order:
        s = stats[prefix]
        out.append({"module": prefix, "depth": 0 if not prefix else prefix.count(".") + 1,
                    "params": s["params"], "numel": s["numel"], "trainable": s["trainable"],
                    "covered": s["covered"], "by_status": dict(s["by_status"]),
                    "worst": worst(s["by_status"])})
    return out


def summarize(report: Report) -> dict:
    params = report.params
    by_status = Counter(p.status for p in params)
    numel_by_status = Counter()
    for p in params:
        numel_by_status[p.status] += p.numel
    trainable = [p for p in params if p.requires_grad]
    find = Counter(f for p in params for f in findings(p))
    covered = by_status.get("covered", 0)
    return {
        "params": len(params),
        "numel": sum(p.numel for p in params),
        "trainable": len(trainable),
        "trainable_numel": sum(p.numel for p in trainable),
        "frozen": by_status.get("frozen", 0),
        "buffers": len(report.buffers),
        "buffer_numel": sum(b.numel for b in report.buffers),
        "by_status": {s: by_status.get(s, 0) for s in RUN_STATUSES},
        "numel_by_status": {s: numel_by_status.get(s, 0) for s in RUN_STATUSES},
        "coverage": round(covered / len(trainable), 6) if trainable else None,
        "in_optimizer": sum(p.in_optimizer for p in params),
        "updated": sum(p.updated for p in params),
        "moved_without_grad": sum(p.moved_without_grad for p in params),
        "findings": dict(find),
        "steps": len(report.steps),
        "jittor_warnings": len(report.warnings),
    }


def judge(report: Report, policy: Policy) -> Verdict:
    by_finding: dict = defaultdict(list)
    for p in report.params:
        for f in findings(p):
            by_finding[f].append(p.name)
    verdict = Verdict()
    failing = policy.failing()
    for finding, names in by_finding.items():
        shown = ", ".join(names[:5]) + (f", ... (+{len(names) - 5})" if len(names) > 5 else "")
        line = f"{finding}: {len(names)} parameter{'s' if len(names) != 1 else ''} ({shown})"
        if finding in failing:
            verdict.reasons.append(line)
        elif finding in policy.warn_on:
            verdict.warnings.append(line)
    for term in report.loss_terms:
        if term.get("reaches") == 0:
            verdict.warnings.append(f"loss term {term['name']!r} reaches no parameter")
        elif term.get("constant"):
            verdict.warnings.append(f"loss term {term['name']!r} is constant "
                                    f"({term['values'][0]} on every step): a dead loss term?")
    intermittent = [p.name for p in report.params if "intermittent" in p.flags]
    if intermittent:
        verdict.warnings.append(f"intermittent: {len(intermittent)} parameter(s) covered on some "
                                f"steps only (data-dependent), e.g. {intermittent[0]}")
    for glob in policy.expected_frozen:
        import fnmatch

        if not any(fnmatch.fnmatchcase(p.name, glob) for p in report.params):
            verdict.warnings.append(f"expected_frozen {glob!r} matches no parameter")
    verdict.result = "fail" if verdict.reasons else "pass"
    return verdict


def finalize(report: Report, policy: Policy) -> Report:
    for p in report.params:
        if p.frozen_reason is None:
            p.frozen_reason = policy.frozen_reason(p.name)
    report.summary = summarize(report)
    report.modules = module_rollup(report.params)
    report.verdict = judge(report, policy)
    report.config.setdefault("policy", {"fail_on": list(policy.fail_on),
                                        "warn_on": list(policy.warn_on),
                                        "strict": policy.strict, "source": policy.source})
    return report
