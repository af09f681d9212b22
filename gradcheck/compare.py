"""Diff two reports by parameter name: what was added, removed, or changed status.

A *regression* is a parameter that is ``missing``/``zero``/``nonfinite`` after but was
``covered`` before, or that is new and neither covered nor declared frozen, or that gained
one of the across-ranks findings of an MPI run (``rank_divergent``, ``replicas_diverged``,
``optimizer_mismatch``: see :mod:`gradcheck.distributed`).  ``--allow GLOB``
accepts matching regressions.  Keys are parameter names, never positions, and timestamps,
hosts and timings never enter the comparison.
"""

from __future__ import annotations

import fnmatch
from dataclasses import asdict, dataclass, field

from gradcheck.report import UNCOVERED, Report

# config keys that make two runs comparable; timings and hosts are left out on purpose
CONFIG_KEYS = ("model", "img_size", "batch_size", "steps", "seed", "data")
RANK_FINDINGS = ("rank_divergent", "replicas_diverged", "optimizer_mismatch")


@dataclass
class Change:
    name: str
    before: str | None   # run status before (None: added)
    after: str | None    # run status after (None: removed)
    regression: bool = False
    allowed: bool = False
    cause: str | None = None


@dataclass
class Comparison:
    before_model: str
    after_model: str
    added: list = field(default_factory=list)        # [Change]
    removed: list = field(default_factory=list)      # [Change]
    changed: list = field(default_factory=list)      # [Change] status changes
    config_diffs: list = field(default_factory=list) # ["key: a -> b"]
    warnings: list = field(default_factory=list)
    unchanged: int = 0

    @property
    def regressions(self) -> list:
        return [c for c in self.added + self.changed if c.regression and not c.allowed]

    @property
    def allowed(self) -> list:
        return [c for c in self.added + self.changed if c.regression and c.allowed]

    @property
    def ok(self) -> bool:
        return not self.regressions

    def to_dict(self) -> dict:
        return {"before_model": self.before_model, "after_model": self.after_model,
                "ok": self.ok, "regressions": [asdict(c) for c in self.regressions],
                "allowed": [asdict(c) for c in self.allowed],
                "added": [asdict(c) for c in self.added],
                "removed": [asdict(c) for c in self.removed],
                "changed": [asdict(c) for c in self.changed],
                "unchanged": self.unchanged, "config_diffs": self.config_diffs,
                "warnings": self.warnings}


def _is_regression(before: str | None, after_rec) -> bool:
    if before is None:  # new parameter
        if after_rec.status == "frozen":
            return not after_rec.frozen_reason
        return after_rec.status != "covered"
    return before == "covered" and after_rec.status in UNCOVERED


def compare(before: Report, after: Report, allow: tuple = ()) -> Comparison:
    b, a = before.by_name(), after.by_name()
    cmp = Comparison(before_model=str(before.config.get("model")),
                     after_model=str(after.config.get("model")))
    for key in CONFIG_KEYS:
        vb, va = before.config.get(key), after.config.get(key)
        if vb != va:
            cmp.config_diffs.append(f"{key}: {vb!r} -> {va!r}")
    if cmp.before_model != cmp.after_model:
        cmp.warnings.append(f"the reports come from different models "
                            f"({cmp.before_model} vs {cmp.after_model})")
    elif cmp.config_diffs:
        cmp.warnings.append("the reports come from different settings: "
                            + "; ".join(cmp.config_diffs))
    for name, rec in a.items():
        old = b.get(name)
        if old is None:
            ch = Change(name, None, rec.status, _is_regression(None, rec), cause=rec.cause)
            cmp.added.append(ch)
        elif old.status != rec.status:
            ch = Change(name, old.status, rec.status, _is_regression(old.status, rec),
                        cause=rec.cause)
            cmp.changed.append(ch)
        elif any(f in RANK_FINDINGS and f not in old.flags for f in rec.flags):
            new = [f for f in rec.flags if f in RANK_FINDINGS and f not in old.flags]
            ch = Change(name, old.status, rec.status, True, cause=", ".join(new))
            cmp.changed.append(ch)
        else:
            cmp.unchanged += 1
            continue
        ch.allowed = ch.regression and any(fnmatch.fnmatchcase(name, g) for g in allow)
    for name, rec in b.items():
        if name not in a:
            cmp.removed.append(Change(name, rec.status, None))
    for glob in allow:
        if not any(fnmatch.fnmatchcase(c.name, glob) for c in cmp.added + cmp.changed):
            cmp.warnings.append(f"--allow {glob!r} matches no change")
    return cmp
