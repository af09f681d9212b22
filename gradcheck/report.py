"""The report: what a probe found, as plain data that survives a round trip through JSON.

Data, totals and rendering are kept apart: this module holds the records and their JSON
form; :mod:`gradcheck.summary` derives totals; :mod:`gradcheck.render` draws them.  A report
file is versioned by ``schema_version`` and is always written atomically.

Per-step statuses (``ParamRecord.steps``):

* ``nonzero``   -- the gradient reached the parameter and is not all zeros;
* ``zero``      -- the parameter reaches the loss, but its gradient is exactly zero;
* ``missing``   -- no path from the parameter to the loss (what Jittor warns about);
* ``nonfinite`` -- the gradient holds NaN or Inf;
* ``frozen``    -- the parameter does not take gradients (``stop_grad`` / ``requires_grad=False``).

Run-level status (``ParamRecord.status``): ``covered`` (a non-zero gradient on some step),
``zero``, ``missing``, ``nonfinite`` (on any step) or ``frozen``.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

SCHEMA_VERSION = 1

STEP_STATUSES = ("nonzero", "zero", "missing", "nonfinite", "frozen")
RUN_STATUSES = ("covered", "zero", "missing", "nonfinite", "frozen")
UNCOVERED = ("missing", "zero", "nonfinite")


class ReportError(ValueError):
    """A report file cannot be read: missing, corrupt, truncated or from a future schema."""


@dataclass
class ParamRecord:
    name: str
    shape: list
    numel: int
    status: str = "covered"
    steps: list = field(default_factory=list)          # per-step status, one of STEP_STATUSES
    grad_norms: list = field(default_factory=list)     # per-step L2 norm of the gradient
    update_norms: list = field(default_factory=list)   # per-step L2 norm of the value change
    updated_steps: list = field(default_factory=list)  # per-step: did the value change?
    first_nonzero_step: Optional[int] = None           # 1-based; None if never
    requires_grad: bool = True
    in_optimizer: bool = True
    updated: bool = False                              # changed on any step
    moved_without_grad: bool = False                   # changed on a step with no/zero gradient
    grad_norm: Optional[float] = None                  # last step's gradient norm
    update_norm: Optional[float] = None                # last step's update norm
    weight_norm: Optional[float] = None                # value norm before the first step
    module: str = ""                                   # owning module path ("" = root)
    aliases: list = field(default_factory=list)        # other names of a shared parameter
    frozen_reason: Optional[str] = None                # from expected_frozen, if declared
    cause: Optional[str] = None                        # stable code (see gradcheck.explain)
    cause_detail: Optional[str] = None                 # one sentence for people
    reached_by: Optional[list] = None                  # loss terms with a path to it
    first_nonfinite_step: Optional[int] = None
    flags: list = field(default_factory=list)          # e.g. vanishing, exploding

    @property
    def trainable(self) -> bool:
        return self.requires_grad


@dataclass
class BufferRecord:
    name: str
    shape: list
    numel: int
    changed: bool = False


@dataclass
class WarningRecord:
    text: str
    level: str = "w"
    step: Optional[int] = None
    index: Optional[int] = None      # the N of grads[N]: an index into the optimizer's list
    param: Optional[str] = None      # the parameter that index points at
    agrees: Optional[bool] = None    # does the probe also find no gradient for it?


@dataclass
class Verdict:
    result: str = "pass"                               # "pass" or "fail"
    reasons: list = field(default_factory=list)        # why it fails
    warnings: list = field(default_factory=list)       # what is worth a look but passes

    @property
    def passed(self) -> bool:
        return self.result == "pass"


@dataclass
class Report:
    config: dict
    environment: dict
    params: list                      # [ParamRecord]
    buffers: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    steps: list = field(default_factory=list)         # per step: {"loss", "terms", "stats", "seconds"}
    summary: dict = field(default_factory=dict)
    verdict: Verdict = field(default_factory=Verdict)
    loss_terms: list = field(default_factory=list)    # [{"name", "reaches", "constant"}]
    modules: list = field(default_factory=list)       # rollup by module (see summary.module_rollup)
    created: str = ""
    schema_version: int = SCHEMA_VERSION
    distributed: dict = field(default_factory=dict)   # per-rank data of an MPI run (gradcheck.distributed)

    # ------------------------------------------------------------------ access
    def param(self, name: str) -> ParamRecord:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def by_name(self) -> dict:
        return {p.name: p for p in self.params}

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict:
        d = {
            "schema_version": self.schema_version,
            "tool": {"name": "gradcheck", "version": _version()},
            "created": self.created,
            "config": self.config,
            "environment": self.environment,
            "summary": self.summary,
            "verdict": asdict(self.verdict),
            "steps": self.steps,
            "loss_terms": self.loss_terms,
            "modules": self.modules,
            "params": [asdict(p) for p in self.params],
            "buffers": [asdict(b) for b in self.buffers],
            "warnings": [asdict(w) for w in self.warnings],
        }
        if self.distributed:
            d["distributed"] = self.distributed
        return _finite(d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, d: Any, source: str = "report") -> "Report":
        if not isinstance(d, dict):
            raise ReportError(f"{source}: not a gradcheck report (top level is not an object)")
        version = d.get("schema_version")
        if not isinstance(version, int):
            raise ReportError(f"{source}: not a gradcheck report (no schema_version)")
        if version > SCHEMA_VERSION:
            raise ReportError(f"{source}: schema_version {version} is newer than this gradcheck "
                              f"understands ({SCHEMA_VERSION}); upgrade gradcheck")
        if version < 1:
            raise ReportError(f"{source}: invalid schema_version {version}")
        try:
            params = [_record(ParamRecord, p) for p in d["params"]]
            buffers = [_record(BufferRecord, b) for b in d.get("buffers", [])]
            warns = [_record(WarningRecord, w) for w in d.get("warnings", [])]
            verdict = _record(Verdict, d.get("verdict", {}))
            return cls(config=dict(d["config"]), environment=dict(d.get("environment", {})),
                       params=params, buffers=buffers, warnings=warns,
                       steps=list(d.get("steps", [])), summary=dict(d.get("summary", {})),
                       verdict=verdict, loss_terms=list(d.get("loss_terms", [])),
                       modules=list(d.get("modules", [])), created=str(d.get("created", "")),
                       schema_version=version, distributed=dict(d.get("distributed") or {}))
        except (KeyError, TypeError, ValueError) as exc:
            raise ReportError(f"{source}: malformed report ({type(exc).__name__}: {exc})") from None


def _record(cls, d):
    if not isinstance(d, dict):
        raise TypeError(f"{cls.__name__} entry is not an object")
    names = {f.name for f in fields(cls)}
    rec = cls(**{k: v for k, v in d.items() if k in names})
    if isinstance(rec, ParamRecord):
        if not isinstance(rec.name, str) or rec.status not in RUN_STATUSES:
            raise ValueError(f"parameter {rec.name!r} has unknown status {rec.status!r}")
    return rec


def _finite(obj):
    """JSON has no NaN/Inf: write them as strings so the file stays strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _version() -> str:
    from gradcheck import __version__

    return __version__


# ---------------------------------------------------------------------- files
def write_atomic(path: os.PathLike | str, text: str) -> Path:
    """Write ``text`` so that ``path`` holds either its old content or all of the new one."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise ReportError(f"cannot write {path}: folder {directory} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)   # mkstemp makes 0600; a report is an ordinary file
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def save_report(report: Report, path: os.PathLike | str) -> Path:
    return write_atomic(path, report.to_json())


def load_report(path: os.PathLike | str) -> Report:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReportError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ReportError(f"{path}: is a folder, not a report") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportError(f"{path}: cannot read ({exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        what = "truncated" if exc.pos >= len(text.rstrip()) else "corrupt"
        raise ReportError(f"{path}: {what} JSON (line {exc.lineno}, column {exc.colno})") from None
    return Report.from_dict(data, source=str(path))
