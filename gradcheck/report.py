"""The report: what a probe found, as plain data that survives a round trip through JSON.

Data, totals and rendering are kept apart: the records a report holds, with every key of the
file and its type, are defined in :mod:`gradcheck.schema`; this module holds the
:class:`Report` that gathers them, its JSON form and the file I/O; :mod:`gradcheck.summary`
derives totals; :mod:`gradcheck.render` draws them.  A report file is versioned by
``schema_version`` and is always written atomically.

The statuses and the rules that decide them live in :mod:`gradcheck.status`.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gradcheck.schema import (  # noqa: F401 (the records are re-exported from here)
    BufferRecord, LossTermRecord, ModuleRollup, ParamRecord, StepRecord, Summary, Verdict,
    VerdictGroup, WarningRecord, load, plain)
from gradcheck.status import RUN_STATUSES, STEP_STATUSES, UNCOVERED  # noqa: F401 (re-exported)

SCHEMA_VERSION = 2   # 2: tracked, held_only, lrs, zero_blockers, zero_why; step status "absent"


class ReportError(ValueError):
    """A report file cannot be read: missing, corrupt, truncated or from a future schema."""


@dataclass
class Report:
    config: dict
    environment: dict
    params: list                      # [ParamRecord]
    buffers: list = field(default_factory=list)       # [BufferRecord]
    warnings: list = field(default_factory=list)      # [WarningRecord]
    steps: list = field(default_factory=list)         # [StepRecord]
    summary: Summary = field(default_factory=Summary)
    verdict: Verdict = field(default_factory=Verdict)
    loss_terms: list = field(default_factory=list)    # [LossTermRecord]
    modules: list = field(default_factory=list)       # [ModuleRollup]
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
            "summary": plain(self.summary),
            "verdict": plain(self.verdict),
            "steps": plain(self.steps),
            "loss_terms": plain(self.loss_terms),
            "modules": plain(self.modules),
            "params": plain(self.params),
            "buffers": plain(self.buffers),
            "warnings": plain(self.warnings),
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
            report = cls(config=_typed(d["config"], dict, "config"),
                         environment=_typed(d.get("environment", {}), dict, "environment"),
                         params=_records(ParamRecord, d["params"], "params"),
                         buffers=_records(BufferRecord, d.get("buffers", []), "buffers"),
                         warnings=_records(WarningRecord, d.get("warnings", []), "warnings"),
                         steps=_records(StepRecord, d.get("steps", []), "steps"),
                         verdict=load(Verdict, d.get("verdict", {})),
                         loss_terms=_records(LossTermRecord, d.get("loss_terms", []), "loss_terms"),
                         created=str(d.get("created", "")), schema_version=version,
                         distributed=_typed(d.get("distributed") or {}, dict, "distributed"))
        except (KeyError, TypeError, ValueError) as exc:
            raise ReportError(f"{source}: malformed report ({type(exc).__name__}: {exc})") from None
        # totals are derived from the records, never trusted from the file (see summary.py)
        from gradcheck.summary import module_rollup, summarize

        report.summary, report.modules = summarize(report), module_rollup(report.params)
        return report


def _typed(value, kind, what: str):
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise TypeError(f"{what} is a {type(value).__name__}, expected {kind.__name__}")
    return value


def _records(cls, value, what: str) -> list:
    return [load(cls, x) for x in _typed(value, list, what)]


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


def jsonable(obj):
    """A plain JSON-able copy of a loss's statistics (numpy and Jittor scalars to numbers)."""
    import numpy as np

    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if hasattr(obj, "item") and hasattr(obj, "numel"):
        try:
            return obj.item() if obj.numel() == 1 else obj.numpy().tolist()
        except Exception:
            return str(obj)
    if isinstance(obj, (int, float, str, bool)) or obj is None:
        return obj
    return str(obj)
