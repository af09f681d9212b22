"""gradcheck's report against the oracle's truth, Var by Var: a list of readable differences.

Each difference is a :class:`Diff` with a ``tag`` naming the feature of the Var it concerns
(``untracked``, ``lazy``, ``never_updated``, ``trained_buffer``, ``optimizer_only`` for the
semantics issue 21 adds; ``status``, ``steps``, ``updated``, ``in_optimizer``,
``requires_grad``, ``findings``, ``inventory`` for what the probe already claims), so that a
survey can count them by class.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from oracle.oracle import VarTruth, findings

# the findings compared (gradient-health flags such as vanishing are not the oracle's)
VOCAB = {"missing", "zero", "nonfinite", "not_in_optimizer", "frozen_undeclared", "untracked",
         "never_updated", "trained_buffer"}
_OPT_NAME = re.compile(r"optimizer\[(\d+)\]\.params\[(\d+)\]$")


@dataclass
class Diff:
    tag: str
    name: str
    text: str

    def __str__(self) -> str:
        return f"[{self.tag}] {self.name}: {self.text}"


def feature(t: VarTruth) -> str:
    """The new-semantics feature a Var exercises, or '' for one the probe already covers."""
    if t.buffer and t.in_optimizer and t.requires_grad and t.is_float:
        return "trained_buffer"
    if not t.names or (t.derived and t.in_optimizer):
        return "optimizer_only"
    if t.appeared > 1 or any(n.startswith("lazy") for n in t.names):
        return "lazy"
    if not t.in_parameters:
        return "untracked"              # outside parameters(): a plain list / dict
    if not t.buffer and any(lr == 0 for lr in t.lrs.values()):
        return "never_updated"
    return ""


def _gc_findings(rec) -> set:
    from gradcheck.schema import BufferRecord
    from gradcheck.summary import buffer_findings, findings

    return set((buffer_findings if isinstance(rec, BufferRecord) else findings)(rec)) & VOCAB


def _matches(t: VarTruth, rec_names: list, phase_names: list) -> bool:
    if set(rec_names) & set(t.names):
        return True
    for rn in rec_names:
        m = _OPT_NAME.search(rn)
        if not m:
            continue
        for on in t.opt_names:
            mo = _OPT_NAME.search(on)
            if mo.groups() == m.groups():
                phase = on.split(".optimizer")[0] if ".optimizer" in on else None
                if phase is None or phase in rn or len(phase_names) == 1:
                    return True
    return False


def compare(truth, report) -> list:
    """Every difference between the oracle's ``truth`` and gradcheck's ``report``."""
    diffs = []
    phase_names = sorted({p for t in truth.vars.values() for p in t.phases}) or ["main"]
    # see VarTruth.optional: the probe may list these or not
    optional = [t for t in truth.vars.values() if t.optional]
    skip = {id(t) for t in optional}
    wanted = [t for t in truth.vars.values() if (t.is_float or t.buffer) and id(t) not in skip]
    used = set()
    records = [(r, False) for r in report.params] + [(b, True) for b in report.buffers]
    for t in wanted:
        hits = [(i, r, is_buf) for i, (r, is_buf) in enumerate(records)
                if _matches(t, [r.name] + list(getattr(r, "aliases", []) or []), phase_names)]
        tag = feature(t)
        if not hits:
            if t.expected_record:
                kind = "buffer" if t.buffer else "parameter"
                diffs.append(Diff(tag or "inventory", t.name,
                                  f"no {kind} record (truth: {_describe(t)})"))
            continue
        i, rec, is_buf = hits[0]
        used.add(i)
        if is_buf != t.buffer:
            diffs.append(Diff(tag or "inventory", t.name,
                              f"listed as a {'buffer' if is_buf else 'parameter'}, truth is a "
                              f"{'buffer' if t.buffer else 'parameter'} ({_describe(t)})"))
            continue
        if is_buf:
            diffs += _compare_buffer(t, rec, tag)
        else:
            diffs += _compare_param(t, rec, tag)
    for i, (rec, _is_buf) in enumerate(records):
        if i in used:
            continue
        names = [rec.name] + list(getattr(rec, "aliases", []) or [])
        known = [t for t in wanted + optional if _matches(t, names, phase_names)]
        if not known:
            diffs.append(Diff("inventory", rec.name, "gradcheck lists a Var the oracle does not "
                                                      "know"))
    return diffs


def _describe(t: VarTruth) -> str:
    bits = [f"status={t.status}", f"steps={t.steps}", f"in_optimizer={t.in_optimizer}",
            f"in_parameters={t.in_parameters}", f"updated={t.updated_steps}",
            f"findings={sorted(findings(t))}"]
    if t.appeared > 1:
        bits.append(f"appeared at step {t.appeared}")
    if any(t.stuck):
        bits.append(f"stuck={t.stuck}")
    return ", ".join(bits)


def _compare_buffer(t: VarTruth, rec, tag: str) -> list:
    out = []
    if rec.in_optimizer != t.in_optimizer:
        out.append(Diff(tag or "in_optimizer", t.name,
                        f"in_optimizer {rec.in_optimizer}, truth {t.in_optimizer}"))
    if rec.changed != t.changed:
        out.append(Diff(tag or "updated", t.name, f"changed {rec.changed}, truth {t.changed}"))
    got, want = _gc_findings(rec), findings(t)
    if got != want:
        out.append(Diff(tag or "findings", t.name,
                        f"findings {sorted(got)}, truth {sorted(want)}"))
    return out


def _compare_param(t: VarTruth, rec, tag: str) -> list:
    out = []
    n = len(t.steps)
    steps = list(rec.steps[-n:]) if n else []
    upd = list(rec.updated_steps[-n:]) if n else []
    if rec.requires_grad != t.requires_grad:
        out.append(Diff(tag or "requires_grad", t.name,
                        f"requires_grad {rec.requires_grad}, truth {t.requires_grad}"))
    if rec.status != t.status:
        out.append(Diff(tag or "status", t.name,
                        f"status {rec.status} (steps {rec.steps}), truth {t.status} "
                        f"({_describe(t)})"))
    elif steps != t.steps:
        out.append(Diff(tag or "steps", t.name, f"steps {rec.steps}, truth {t.steps}"))
    if rec.in_optimizer != t.in_optimizer:
        out.append(Diff(tag or "in_optimizer", t.name,
                        f"in_optimizer {rec.in_optimizer}, truth {t.in_optimizer}"))
    if bool(rec.updated) != t.updated or upd != t.updated_steps:
        out.append(Diff(tag or "updated", t.name,
                        f"updated {rec.updated_steps}, truth {t.updated_steps}"))
    got, want = _gc_findings(rec), findings(t)
    if got != want:
        out.append(Diff(tag or _finding_tag(got ^ want), t.name,
                        f"findings {sorted(got)}, truth {sorted(want)} (cause {rec.cause}; "
                        f"{_describe(t)})"))
    return out


def _finding_tag(delta: set) -> str:
    for word in ("never_updated", "untracked", "trained_buffer"):
        if word in delta:
            return word
    return "findings"
