"""gradcheck's closed vocabularies, in one place: statuses, findings, causes, severities and
the float64 modes of ``gradcheck align``, with the named groups of them the rest of the code
uses.

Every member is a ``str`` whose value is the word a report, a screen or a config file shows,
so a member compares equal to its word (``Status.MISSING == "missing"``: a report loaded from
JSON, whose values are plain strings, compares as a freshly built one), hashes like it (a
dict keyed by words finds a member and the reverse), and ``json.dumps`` writes the plain
word.  ``str()`` and ``format()`` give the word too (so f-strings, ``%s`` and ``", ".join``
print ``missing``, never ``Status.MISSING``, on every Python version).

The meaning of each word is documented where it is decided: statuses in
:mod:`gradcheck.status`, findings in :mod:`gradcheck.policy`, causes in
:mod:`gradcheck.explain`.  This module imports nothing from gradcheck.
"""

from __future__ import annotations

from enum import Enum

__all__ = [
    "Word",
    "Status",
    "Finding",
    "Cause",
    "Severity",
    "Float64Mode",
    "STEP_STATUSES",
    "RUN_STATUSES",
    "UNCOVERED",
    "REACHED",
    "WORST_FIRST",
    "FINDINGS",
    "ALLOWABLE",
    "FLAG_FINDINGS",
    "RANK_FINDINGS",
    "GAINED_FINDINGS",
    "BUFFER_FINDINGS",
    "COVERED_FINDINGS",
    "CAUSES",
    "INFORMATIONAL",
    "SEVERITIES",
    "FLOAT64_MODES",
]


class Word(str, Enum):
    """A ``str`` enum member that prints, formats and serializes as its plain value."""

    def __str__(self) -> str:
        return str.__str__(self)

    def __format__(self, spec: str) -> str:
        # how format() treats a mixed-in enum changed across versions (3.12: as str());
        # say it here so f"{Status.MISSING}" is "missing" on every one
        return format(str.__str__(self), spec)


class Status(Word):
    """A parameter's status: per step (``ParamRecord.steps``) or over the run
    (``ParamRecord.status``); see :mod:`gradcheck.status`."""

    NONZERO = "nonzero"  # step only: a non-zero, finite gradient
    COVERED = "covered"  # run only: a non-zero gradient on some step
    ZERO = "zero"
    MISSING = "missing"
    NONFINITE = "nonfinite"
    FROZEN = "frozen"
    ABSENT = "absent"  # step only: the parameter did not exist yet


class Finding(Word):
    """A policy word: what ``fail_on`` / ``warn_on`` name (see :mod:`gradcheck.policy`).
    Definition order is the order the config error lists them in."""

    MISSING = "missing"
    NONFINITE = "nonfinite"
    ZERO = "zero"
    NOT_IN_OPTIMIZER = "not_in_optimizer"
    FROZEN_UNDECLARED = "frozen_undeclared"
    FROZEN_BUT_TRAINED = "frozen_but_trained"
    VANISHING = "vanishing"
    EXPLODING = "exploding"
    # what trains besides model.parameters() (see gradcheck.summary.findings)
    UNTRACKED = "untracked"
    NEVER_UPDATED = "never_updated"
    TRAINED_BUFFER = "trained_buffer"
    # over a long run (gradcheck.watch): covered early, no gradient on every later sample
    STOPPED_TRAINING = "stopped_training"
    # across MPI ranks (gradcheck.distributed; only a --nproc run sets them)
    RANK_DIVERGENT = "rank_divergent"
    REPLICAS_DIVERGED = "replicas_diverged"
    OPTIMIZER_MISMATCH = "optimizer_mismatch"


class Cause(Word):
    """Why a parameter is not plainly covered (``ParamRecord.cause``; see
    :mod:`gradcheck.explain`)."""

    NOT_CALLED = "not_called"
    CUT = "cut"
    FROZEN = "frozen"
    EVAL_MODE = "eval_mode"
    TRAIN_MODE = "train_mode"
    FROZEN_UNDECLARED = "frozen_undeclared"
    ZERO_GRADIENT = "zero_gradient"
    NONFINITE = "nonfinite"
    NOT_IN_OPTIMIZER = "not_in_optimizer"
    UPDATE_BELOW_PRECISION = "update_below_precision"
    DECAY_ONLY = "decay_only"
    UNTRACKED = "untracked"
    STALE_VAR = "stale_var"
    NEVER_UPDATED = "never_updated"


class Severity(Word):
    """What a verdict group does to the run (``VerdictGroup.severity``); definition order is
    the order the verdict lists the groups in."""

    FAIL = "fail"
    WARN = "warn"
    ALLOWED = "allowed"


class Float64Mode(Word):
    """When ``gradcheck align`` reruns the port in float64 (``--float64``, ``align_float64``)."""

    AUTO = "auto"  # only when float32 leaves a row unexplained
    ALWAYS = "always"
    NEVER = "never"


# ---------------------------------------------------------------------- statuses
STEP_STATUSES = (
    Status.NONZERO,
    Status.ZERO,
    Status.MISSING,
    Status.NONFINITE,
    Status.FROZEN,
    Status.ABSENT,
)
"""Every per-step status (``ParamRecord.steps``)."""

RUN_STATUSES = (Status.COVERED, Status.ZERO, Status.MISSING, Status.NONFINITE, Status.FROZEN)
"""Every run status (``ParamRecord.status``), in the order summaries and screens list them."""

UNCOVERED = (Status.MISSING, Status.ZERO, Status.NONFINITE)
"""Run statuses of a trainable parameter that did not train; each is also a finding."""

REACHED = (Status.COVERED, Status.ZERO, Status.NONFINITE)
"""Run statuses of a parameter some loss reached."""

WORST_FIRST = (Status.NONFINITE, Status.MISSING, Status.ZERO, Status.COVERED, Status.FROZEN)
"""Run statuses worst first: the one a module shows when its subtree mixes several (frozen
only shows for a subtree that is all frozen: frozen-and-covered reads as covered)."""

# ---------------------------------------------------------------------- findings
FINDINGS = tuple(Finding)
"""Every finding, in definition order: the words ``fail_on`` / ``warn_on`` accept."""

ALLOWABLE = (Finding.MISSING, Finding.ZERO)
"""The findings an ``allow_uncovered`` glob can excuse."""

FLAG_FINDINGS = (
    Finding.VANISHING,
    Finding.EXPLODING,
    Finding.RANK_DIVERGENT,
    Finding.REPLICAS_DIVERGED,
    Finding.OPTIMIZER_MISMATCH,
    Finding.STOPPED_TRAINING,
)
"""Findings a parameter carries as a flag (``ParamRecord.flags``)."""

RANK_FINDINGS = (Finding.RANK_DIVERGENT, Finding.REPLICAS_DIVERGED, Finding.OPTIMIZER_MISMATCH)
"""The across-MPI-ranks findings (:mod:`gradcheck.distributed`), in report order."""

GAINED_FINDINGS = (Finding.UNTRACKED, Finding.NEVER_UPDATED)
"""Findings that, gained between two reports, mean a parameter stopped training
(:mod:`gradcheck.compare`)."""

BUFFER_FINDINGS = (Finding.TRAINED_BUFFER,)
"""Findings of a buffer, never of a parameter."""

COVERED_FINDINGS = (
    Finding.MISSING,
    Finding.ZERO,
    Finding.NONFINITE,
    Finding.NOT_IN_OPTIMIZER,
    Finding.FROZEN_UNDECLARED,
    Finding.FROZEN_BUT_TRAINED,
    Finding.UNTRACKED,
    Finding.NEVER_UPDATED,
)
"""What :func:`gradcheck.assert_covered` fails on by default: every trainable parameter gets a
non-zero, finite gradient its optimizer applies, every frozen one is frozen on purpose."""

# ---------------------------------------------------------------------- causes
CAUSES = tuple(Cause)
"""Every cause code, in definition order."""

INFORMATIONAL = (Cause.FROZEN, Cause.UPDATE_BELOW_PRECISION)
"""Causes worth knowing but no problem: screens show them as counts, not as rows."""

# ---------------------------------------------------------------------- severities, modes
SEVERITIES = tuple(Severity)
"""Every verdict-group severity, failing first."""

FLOAT64_MODES = tuple(Float64Mode)
"""Every ``--float64`` / ``align_float64`` value."""
