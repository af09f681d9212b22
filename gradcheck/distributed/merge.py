"""Rank 0's merge of the per-rank records into one report (:func:`merge`).

Where the across-ranks findings (:data:`FINDINGS`, that is
:data:`gradcheck.enums.RANK_FINDINGS`: ``rank_divergent``, ``replicas_diverged``,
``optimizer_mismatch``) are found, and how a parameter's step status is taken
across the ranks.
"""

from __future__ import annotations

from gradcheck.enums import RANK_FINDINGS, Finding, Status
from gradcheck.status import run_status

FINDINGS = RANK_FINDINGS   # the across-ranks findings, in the order the report counts them

# a step status across the ranks without a synchronised gradient: the first any rank had
_ORDER = (Status.NONFINITE, Status.NONZERO, Status.ZERO, Status.MISSING)


def merge(report, blobs: list, policy, zero_hint=None):
    """Rank 0's report, with every parameter's step statuses taken across the ranks, the
    per-rank statuses under ``report.distributed`` and the three findings as flags."""
    from gradcheck import explain, summary

    world = len(blobs)
    sync = all(b["sync"] for b in blobs)
    members = [set(b["in_optimizer"]) for b in blobs]
    per_param = {}
    counts = {f: 0 for f in FINDINGS}
    for rec in report.params:
        n = rec.name
        local = [b["local"][n] for b in blobs]
        reduced = blobs[0]["reduced"][n]
        merged, divergent_steps, diverged_steps = [], [], []
        for s in range(len(rec.steps)):
            statuses = [loc[s] for loc in local]
            if all(x == Status.FROZEN for x in statuses):
                merged.append(Status.FROZEN)
                continue
            if Status.NONZERO in statuses and any(x in (Status.ZERO, Status.MISSING)
                                                  for x in statuses):
                divergent_steps.append(s + 1)
            if all(x == Status.MISSING for x in statuses):
                merged.append(Status.MISSING)
            elif sync and reduced[s] is not None:
                merged.append(reduced[s])
            else:
                merged.append(next(x for x in _ORDER if x in statuses))
            if sync and len({b["digests"][n][s] for b in blobs}) > 1:
                diverged_steps.append(s + 1)
        in_opt = [n in m for m in members]
        entry = {"local": local, "reduced": reduced if sync else None, "in_optimizer": in_opt,
                 "local_grad_norms": [b["local_grad_norms"][n] for b in blobs],
                 "value_norms": [b["value_norms"][n] for b in blobs]}
        before = rec.status
        rec.steps = merged
        rec.status = run_status(merged)
        rec.first_nonzero_step = next((i + 1 for i, x in enumerate(merged)
                                       if x == Status.NONZERO), None)
        rec.first_nonfinite_step = next((i + 1 for i, x in enumerate(merged)
                                         if x == Status.NONFINITE), None)
        rec.moved_without_grad = any(u and x in (Status.MISSING, Status.ZERO, Status.FROZEN)
                                     for u, x in zip(rec.updated_steps, merged))
        rec.in_optimizer = all(in_opt)
        if rec.status != before:
            rec.cause, rec.cause_detail = explain.cause_of(rec, report, None, zero_hint)
        found = []
        if divergent_steps:
            found.append(Finding.RANK_DIVERGENT)
            entry["divergent_steps"] = divergent_steps
            covered_on = [r for r in range(world)
                          if any(local[r][s - 1] == Status.NONZERO for s in divergent_steps)]
            rec.cause_detail = ((rec.cause_detail + "; ") if rec.cause_detail else "") + (
                f"locally covered on some ranks only (step {divergent_steps[0]}: non-zero on "
                f"rank(s) {', '.join(map(str, covered_on))}, "
                + ", ".join(f"rank {r} {local[r][divergent_steps[0] - 1]}"
                            for r in range(world)
                            if local[r][divergent_steps[0] - 1] != Status.NONZERO)
                + "): data-dependent control flow")
        if diverged_steps:
            found.append(Finding.REPLICAS_DIVERGED)
            entry["diverged_steps"] = diverged_steps
        if len(set(in_opt)) > 1:
            found.append(Finding.OPTIMIZER_MISMATCH)
        rec.flags = explain.health_flags(rec, policy) + found   # on the merged steps
        for f in found:
            counts[f] += 1
        per_param[n] = entry
    report.distributed = {
        "world_size": world, "launcher": "mpirun",
        "synchronized": sync,
        "note": None if sync else (
            "optimizer membership differs across ranks: Jittor's all-reduce pairs gradients "
            "by position, so this run would hang or mix parameters; gradcheck ran each rank's "
            "optimizer without Jittor's synchronisation and reports local statuses only"),
        "ranks": [{"rank": b["rank"], "host": b["host"], "optimizer_params": len(b["in_optimizer"]),
                   "steps": b["steps"]} for b in blobs],
        "findings": counts,
        "params": per_param,
    }
    report.config["nproc"] = world
    summary.finalize(report, policy)
    return report
