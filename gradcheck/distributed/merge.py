"""Rank 0's merge of the per-rank records into one report (:func:`merge`).

Where the across-ranks findings (:data:`FINDINGS`, that is
:data:`gradcheck.enums.RANK_FINDINGS`: ``rank_divergent``, ``replicas_diverged``,
``optimizer_mismatch``) are found, and how a parameter's step status is taken
across the ranks.
"""

from __future__ import annotations

from gradcheck import recorder
from gradcheck.enums import RANK_FINDINGS, Finding, Status

FINDINGS = RANK_FINDINGS  # the across-ranks findings, in the order the report counts them

# a step status across the ranks without a synchronised gradient: the first any rank had
_ORDER = (Status.NONFINITE, Status.NONZERO, Status.ZERO, Status.MISSING)


def merge(report, blobs: list, policy, zero_hint=None):
    """Rank 0's report, with every parameter's step statuses taken across the ranks, the
    per-rank statuses under ``report.distributed`` and the three findings as flags."""
    from gradcheck import explain, summary

    sync = all(b["sync"] for b in blobs)
    members = [set(b["in_optimizer"]) for b in blobs]
    per_param = {}
    counts = {f: 0 for f in FINDINGS}
    for rec in report.params:
        entry, found = _merge_param(rec, report, blobs, members, sync, zero_hint)
        rec.flags = explain.health_flags(rec, policy) + found  # on the merged steps
        for f in found:
            counts[f] += 1
        per_param[rec.name] = entry
    report.distributed = _distributed(blobs, sync, counts, per_param)
    report.config["nproc"] = len(blobs)
    summary.finalize(report, policy)
    return report


def _merge_param(
    rec, report, blobs: list, members: list, sync: bool, zero_hint=None
) -> tuple[dict, list]:
    """One parameter across the ranks: ``rec`` takes the merged steps, and the findings go
    into its cause's sentence; returns its entry under ``report.distributed["params"]`` and
    its across-ranks findings."""
    n = rec.name
    local = [b["local"][n] for b in blobs]
    reduced = blobs[0]["reduced"][n]
    merged, divergent_steps, diverged_steps = _merge_steps(
        len(rec.steps),
        local,
        reduced if sync else None,
        [b["digests"][n] for b in blobs] if sync else None,
    )
    in_opt = [n in m for m in members]
    entry = {
        "local": local,
        "reduced": reduced if sync else None,
        "in_optimizer": in_opt,
        "local_grad_norms": [b["local_grad_norms"][n] for b in blobs],
        "value_norms": [b["value_norms"][n] for b in blobs],
    }
    _take_steps(rec, merged, all(in_opt), report, zero_hint)
    found = []
    if divergent_steps:
        found.append(Finding.RANK_DIVERGENT)
        entry["divergent_steps"] = divergent_steps
        note = _divergence_note(local, divergent_steps)
        rec.cause_detail = f"{rec.cause_detail}; {note}" if rec.cause_detail else note
    if diverged_steps:
        found.append(Finding.REPLICAS_DIVERGED)
        entry["diverged_steps"] = diverged_steps
    if len(set(in_opt)) > 1:
        found.append(Finding.OPTIMIZER_MISMATCH)
    return entry, found


def _merge_steps(
    steps: int, local: list, reduced: list | None, digests: list | None
) -> tuple[list, list, list]:
    """A parameter's first ``steps`` step statuses taken across the ranks (``local``, one
    list a rank; ``reduced``, the all-reduced statuses, and ``digests``, each rank's value
    digests, are None when Jittor did not synchronise the ranks), with the 1-based steps it
    was covered on some ranks only and those its values differ across the ranks."""
    merged, divergent_steps, diverged_steps = [], [], []
    for s in range(steps):
        statuses = [loc[s] for loc in local]
        if all(x == Status.FROZEN for x in statuses):
            merged.append(Status.FROZEN)
            continue
        if Status.NONZERO in statuses and any(x in (Status.ZERO, Status.MISSING) for x in statuses):
            divergent_steps.append(s + 1)
        if all(x == Status.MISSING for x in statuses):
            merged.append(Status.MISSING)
        elif reduced is not None and reduced[s] is not None:
            merged.append(reduced[s])
        else:
            merged.append(next(x for x in _ORDER if x in statuses))
        if digests is not None and len({d[s] for d in digests}) > 1:
            diverged_steps.append(s + 1)
    return merged, divergent_steps, diverged_steps


def _take_steps(rec, merged: list, in_optimizer: bool, report, zero_hint=None) -> None:
    """``rec`` with the merged steps and what follows from them (status, first steps, moves
    without a gradient) and its membership on every rank; its cause again when its status
    changed."""
    from gradcheck import explain

    before = rec.status
    rec.steps = merged
    recorder.derive(rec, [s.step for s in report.steps])
    rec.in_optimizer = in_optimizer
    if rec.status != before:
        rec.cause, rec.cause_detail = explain.cause_of(rec, report, None, zero_hint)


def _divergence_note(local: list, divergent_steps: list) -> str:
    """rank_divergent's sentence: on the first such step, the ranks with a non-zero gradient
    and what each other rank had."""
    world, first = len(local), divergent_steps[0]
    covered_on = [
        r for r in range(world) if any(local[r][s - 1] == Status.NONZERO for s in divergent_steps)
    ]
    return (
        f"locally covered on some ranks only (step {first}: non-zero on "
        f"rank(s) {', '.join(map(str, covered_on))}, "
        + ", ".join(
            f"rank {r} {local[r][first - 1]}"
            for r in range(world)
            if local[r][first - 1] != Status.NONZERO
        )
        + "): data-dependent control flow"
    )


def _distributed(blobs: list, sync: bool, counts: dict, per_param: dict) -> dict:
    """``report.distributed``: the ranks, whether Jittor synchronised them, each finding's
    count and each parameter's entry."""
    return {
        "world_size": len(blobs),
        "launcher": "mpirun",
        "synchronized": sync,
        "note": None
        if sync
        else (
            "optimizer membership differs across ranks: Jittor's all-reduce pairs gradients "
            "by position, so this run would hang or mix parameters; gradcheck ran each rank's "
            "optimizer without Jittor's synchronisation and reports local statuses only"
        ),
        "ranks": [
            {
                "rank": b["rank"],
                "host": b["host"],
                "optimizer_params": len(b["in_optimizer"]),
                "steps": b["steps"],
            }
            for b in blobs
        ],
        "findings": counts,
        "params": per_param,
    }
