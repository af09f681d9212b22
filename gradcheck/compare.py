"""Diff two reports by parameter name: what was added, removed, or changed.

Regressions (``Change.kind``), each a way a parameter can stop training:

* ``lost_gradient``: ``covered`` before, ``zero``/``missing``/``nonfinite`` after;
* ``frozen_undeclared``: ``covered`` before, ``frozen`` after with no declared reason;
* ``left_optimizer``: trainable and in the optimizer before, trainable and outside it after
  (its gradient is computed and never applied);
* ``no_longer_updated``: trainable and updated before, trainable and never updated after
  (only where none of the above already says why);
* ``new_uncovered``: a new parameter that is neither covered nor declared frozen, or one
  with a finding of ``GAINED_FINDINGS``;
* ``new_finding``: it gained a finding of ``GAINED_FINDINGS`` (``untracked``: the loss reaches
  it, nothing trains it; ``never_updated``: a gradient and an optimizer, never changed);
* ``rank_finding``: it gained one of the across-ranks findings of an MPI run
  (``rank_divergent``, ``replicas_diverged``, ``optimizer_mismatch``: see
  :mod:`gradcheck.distributed`).

Changes that are listed but pass: other status changes (``status``; e.g. ``covered`` ->
``frozen`` with a declared reason), a parameter whose first non-zero step moved later
(``later_first_step``), new covered parameters and removed parameters.  ``--allow GLOB``
accepts matching regressions.  Keys are parameter names, never positions, and timestamps,
hosts and timings never enter the comparison.
"""

from __future__ import annotations

import fnmatch
from dataclasses import asdict, dataclass, field
from operator import attrgetter

from gradcheck.enums import GAINED_FINDINGS, RANK_FINDINGS, UNCOVERED, Cause, Status
from gradcheck.report import Report
from gradcheck.summary import findings

# config keys that make two runs comparable; timings and hosts are left out on purpose
CONFIG_KEYS = ("model", "img_size", "batch_size", "steps", "seed", "data")


@dataclass
class Change:
    name: str
    before: str | None  # run status before (None: added)
    after: str | None  # run status after (None: removed)
    regression: bool = False
    allowed: bool = False
    cause: str | None = None
    kind: str = "status"  # see the module docstring


@dataclass
class Comparison:
    before_model: str
    after_model: str
    added: list = field(default_factory=list)  # [Change]
    removed: list = field(default_factory=list)  # [Change]
    changed: list = field(default_factory=list)  # [Change] status changes
    config_diffs: list = field(default_factory=list)  # ["key: a -> b"]
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
        return {
            "before_model": self.before_model,
            "after_model": self.after_model,
            "ok": self.ok,
            "regressions": [asdict(c) for c in self.regressions],
            "allowed": [asdict(c) for c in self.allowed],
            "added": [asdict(c) for c in self.added],
            "removed": [asdict(c) for c in self.removed],
            "changed": [asdict(c) for c in self.changed],
            "unchanged": self.unchanged,
            "config_diffs": self.config_diffs,
            "warnings": self.warnings,
        }


REGRESSION_KINDS = (
    "lost_gradient",
    "frozen_undeclared",
    "left_optimizer",
    "no_longer_updated",
    "new_uncovered",
    "new_finding",
    "rank_finding",
)


def _gained(rec) -> list:
    return [f for f in findings(rec) if f in GAINED_FINDINGS]


def _added(rec) -> Change:
    if rec.status == Status.FROZEN:
        bad = not rec.frozen_reason
    else:
        bad = rec.status != Status.COVERED or bool(_gained(rec))
    return Change(
        rec.name, None, rec.status, bad, cause=rec.cause, kind="new_uncovered" if bad else "added"
    )


# every field that _changes and the findings it compares read: a parameter whose fields are
# these same in both reports has no change (most of them: one C call instead of the checks)
_READ = attrgetter(
    "status",
    "requires_grad",
    "in_optimizer",
    "tracked",
    "updated",
    "cause",
    "frozen_reason",
    "flags",
    "first_nonzero_step",
)


def _changes(old, new) -> list:
    """Every change of one parameter present in both reports, regressions flagged."""
    return [] if _READ(old) == _READ(new) else _read_changes(old, new)


def _read_changes(old, new) -> list:
    out = []
    if old.status != new.status:
        kind = "status"
        if old.status == Status.COVERED and new.status in UNCOVERED:
            kind = "lost_gradient"
        elif old.status == Status.COVERED and new.status == Status.FROZEN and not new.frozen_reason:
            kind = "frozen_undeclared"
        out.append(
            Change(new.name, old.status, new.status, kind != "status", cause=new.cause, kind=kind)
        )
    trainable = old.requires_grad and new.requires_grad
    if trainable and old.in_optimizer and not new.in_optimizer:
        out.append(
            Change(
                new.name,
                "in optimizer",
                "not in optimizer",
                True,
                cause=new.cause or Cause.NOT_IN_OPTIMIZER,
                kind="left_optimizer",
            )
        )
    if trainable and old.updated and not new.updated and not any(c.regression for c in out):
        out.append(
            Change(
                new.name,
                "updated",
                "never updated",
                True,
                cause=new.cause,
                kind="no_longer_updated",
            )
        )
    found = [f for f in _gained(new) if f not in _gained(old)]
    if found and not any(c.regression for c in out):
        out.append(
            Change(new.name, "-", ", ".join(found), True, cause=new.cause, kind="new_finding")
        )
    gained = [f for f in new.flags if f in RANK_FINDINGS and f not in old.flags]
    if gained:
        out.append(
            Change(
                new.name,
                ", ".join(f for f in old.flags if f in RANK_FINDINGS) or "-",
                ", ".join(gained),
                True,
                cause=", ".join(gained),
                kind="rank_finding",
            )
        )
    if (
        old.status == new.status == Status.COVERED
        and old.first_nonzero_step is not None
        and new.first_nonzero_step is not None
        and new.first_nonzero_step > old.first_nonzero_step
    ):
        out.append(
            Change(
                new.name,
                f"first gradient at step {old.first_nonzero_step}",
                f"first gradient at step {new.first_nonzero_step}",
                False,
                cause=new.cause,
                kind="later_first_step",
            )
        )
    return out


def compare(before: Report, after: Report, allow: tuple = ()) -> Comparison:
    b, a = before.by_name(), after.by_name()
    cmp = Comparison(
        before_model=str(before.config.get("model")), after_model=str(after.config.get("model"))
    )
    for key in CONFIG_KEYS:
        vb, va = before.config.get(key), after.config.get(key)
        if vb != va:
            cmp.config_diffs.append(f"{key}: {vb!r} -> {va!r}")
    if cmp.before_model != cmp.after_model:
        cmp.warnings.append(
            f"the reports come from different models ({cmp.before_model} vs {cmp.after_model})"
        )
    elif cmp.config_diffs:
        cmp.warnings.append(
            "the reports come from different settings: " + "; ".join(cmp.config_diffs)
        )
    for name, rec in a.items():
        old = b.get(name)
        if old is None:
            found = [_added(rec)]
            cmp.added.extend(found)
        else:
            found = _changes(old, rec)
            if not found:
                cmp.unchanged += 1
            cmp.changed.extend(found)
        for ch in found:
            ch.allowed = ch.regression and any(fnmatch.fnmatchcase(name, g) for g in allow)
    for name, rec in b.items():
        if name not in a:
            cmp.removed.append(Change(name, rec.status, None, kind="removed"))
    for glob in allow:
        if not any(fnmatch.fnmatchcase(c.name, glob) for c in cmp.added + cmp.changed):
            cmp.warnings.append(f"--allow {glob!r} matches no change")
    return cmp
