"""The report: what a probe found, as plain data that survives a round trip through JSON.

Data, totals and rendering are kept apart: the records a report holds, with every key of the
file and its type, are defined in :mod:`gradcheck.schema`; this module holds the
:class:`Report` that gathers them, its JSON form and the file I/O; :mod:`gradcheck.summary`
derives totals; :mod:`gradcheck.render` draws them.  A report file is versioned by
``schema_version`` and is always written atomically.

The statuses and the rules that decide them live in :mod:`gradcheck.status`.
"""

from __future__ import annotations

import errno
import gc
import json
import math
import os
import re
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gradcheck import __version__
from gradcheck.errors import MachineError
from gradcheck.schema import (  # noqa: F401 (the records are re-exported from here)
    BufferRecord,
    LossTermRecord,
    ModuleRollup,
    ParamRecord,
    StepRecord,
    Summary,
    Verdict,
    VerdictGroup,
    WarningRecord,
    _nonfinite_text,
    load,
    load_all,
    plain,
)
from gradcheck.status import RUN_STATUSES, STEP_STATUSES, UNCOVERED  # noqa: F401 (re-exported)
from gradcheck.summary import module_rollup, summarize

SCHEMA_VERSION = 2  # 2: tracked, held_only, lrs, zero_blockers, zero_why; step status "absent"


class ReportError(ValueError):
    """A report file cannot be read: missing, corrupt, truncated or from a future schema."""


@dataclass
class Report:
    config: dict
    environment: dict
    params: list  # [ParamRecord]
    buffers: list = field(default_factory=list)  # [BufferRecord]
    warnings: list = field(default_factory=list)  # [WarningRecord]
    steps: list = field(default_factory=list)  # [StepRecord]
    summary: Summary = field(default_factory=Summary)
    verdict: Verdict = field(default_factory=Verdict)
    loss_terms: list = field(default_factory=list)  # [LossTermRecord]
    modules: list = field(default_factory=list)  # [ModuleRollup]
    created: str = ""
    schema_version: int = SCHEMA_VERSION
    # per-rank data of an MPI run (gradcheck.distributed)
    distributed: dict = field(default_factory=dict)

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
            "tool": {"name": "gradcheck", "version": __version__},
            "created": self.created,
            "config": _finite(self.config),
            "environment": _finite(self.environment),
            "summary": plain(self.summary),  # records: plain() writes NaN/Inf as text too
            "verdict": plain(self.verdict),
            "steps": plain(self.steps),
            "loss_terms": plain(self.loss_terms),
            "modules": plain(self.modules),
            "params": plain(self.params),
            "buffers": plain(self.buffers),
            "warnings": plain(self.warnings),
        }
        if self.distributed:
            d["distributed"] = _finite(self.distributed)
        return d

    def to_json(self) -> str:
        """The file's text: one key per line at the top, and each record of a list (a
        parameter, a buffer, a step, a warning) on a line of its own, so that a diff of two
        reports names the records that differ, and the file is written at the C encoder's speed
        (the indented encoder is pure Python: a third of writing a Gold-YOLO report)."""
        lines = []
        for key, value in self.to_dict().items():
            if isinstance(value, list) and value:
                body = ",\n  ".join(map(_LINE.encode, value))
                text = f"[\n  {body}\n ]"
            else:
                text = json.dumps(value, indent=1, allow_nan=False).replace("\n", "\n ")
            lines.append(f" {json.dumps(key)}: {text}")
        return "{\n" + ",\n".join(lines) + "\n}\n"

    @classmethod
    def from_dict(cls, d: Any, source: str = "report", totals: bool = True) -> Report:
        """The report ``d`` holds, every record checked (:func:`gradcheck.schema.load`).  Its
        totals (``summary``, ``modules``) are derived again from the records, never read from
        the file; ``totals=False`` leaves them empty, for a reader of the records alone
        (``gradcheck compare``: a fifth of loading a 9,000-parameter report)."""
        if not isinstance(d, dict):
            raise ReportError(f"{source}: not a gradcheck report (top level is not an object)")
        version = d.get("schema_version")
        if not isinstance(version, int):
            raise ReportError(f"{source}: not a gradcheck report (no schema_version)")
        if version > SCHEMA_VERSION:
            raise ReportError(
                f"{source}: schema_version {version} is newer than this gradcheck "
                f"understands ({SCHEMA_VERSION}); upgrade gradcheck"
            )
        if version < 1:
            raise ReportError(f"{source}: invalid schema_version {version}")
        try:
            report = cls(
                config=_typed(d["config"], dict, "config"),
                environment=_typed(d.get("environment", {}), dict, "environment"),
                params=_records(ParamRecord, d["params"], "params"),
                buffers=_records(BufferRecord, d.get("buffers", []), "buffers"),
                warnings=_records(WarningRecord, d.get("warnings", []), "warnings"),
                steps=_records(StepRecord, d.get("steps", []), "steps"),
                verdict=load(Verdict, d.get("verdict", {})),
                loss_terms=_records(LossTermRecord, d.get("loss_terms", []), "loss_terms"),
                created=str(d.get("created", "")),
                schema_version=version,
                distributed=_typed(d.get("distributed") or {}, dict, "distributed"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ReportError(f"{source}: malformed report ({type(exc).__name__}: {exc})") from None
        if totals:  # derived from the records, never trusted from the file (see summary.py)
            report.summary, report.modules = summarize(report), module_rollup(report.params)
        return report


_LINE = json.JSONEncoder(allow_nan=False)  # one encoder: json.dumps makes one per call


def _typed(value, kind, what: str):
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise TypeError(f"{what} is a {type(value).__name__}, expected {kind.__name__}")
    return value


def _records(cls, value, what: str) -> list:
    return load_all(cls, _typed(value, list, what))


def _finite(obj):
    """JSON has no NaN/Inf: write them as strings so the file stays strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return _nonfinite_text(obj)
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


# ---------------------------------------------------------------------- files
# a bad path (exit 2, the user's to fix) as opposed to a machine that cannot write (exit 3)
_PATH_ERRNOS = {
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.EISDIR,
    errno.ENOTDIR,
    errno.ENOENT,
    errno.ENAMETOOLONG,
    errno.ELOOP,
    errno.ETXTBSY,
}
_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a device"),
    (stat.S_ISBLK, "a device"),
)


def check_writable(path: os.PathLike | str) -> Path:
    """The file a report for ``path`` goes to (a symlink's target), or :class:`ReportError`
    naming why it cannot be written: a folder, a FIFO or other non-file, a missing or
    read-only folder.  Called before a run, so that a bad path fails at once, and again by
    :func:`write_atomic`."""
    path = Path(path)
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    try:
        st = target.stat()
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise _write_error(path, exc) from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise ReportError(f"cannot write {path}: it is a folder")
    if st is not None and not stat.S_ISREG(st.st_mode):
        kind = next((k for test, k in _KINDS if test(st.st_mode)), "not a regular file")
        raise ReportError(f"cannot write {path}: it is {kind}, not a regular file")
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise ReportError(f"cannot write {path}: folder {directory} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        why = "read-only file system" if _read_only(directory) else "permission denied"
        raise ReportError(f"cannot write {path}: folder {directory}: {why}")
    return target


def _read_only(directory: Path) -> bool:
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _write_error(path: Path, exc: OSError) -> Exception:
    why = exc.strerror or str(exc) or type(exc).__name__
    message = f"cannot write {path}: {why[0].lower() + why[1:]}"
    if path.exists():
        message += " (the file there is unchanged)"
    if exc.errno in _PATH_ERRNOS:
        return ReportError(message)
    return MachineError(message)  # a full disk, an I/O error: the machine's, exit 3


def write_atomic(path: os.PathLike | str, text: str) -> Path:
    """Write ``text`` so that ``path`` holds either its old content or all of the new one,
    whatever happens (an exception, SIGKILL, a full disk, another process writing the same
    path: the last to finish wins, whole).  A symlink keeps pointing at the file it names.
    A bad path raises :class:`ReportError`, a machine that cannot write
    :class:`gradcheck.errors.MachineError`; the old file is untouched either way."""
    path = Path(path)
    target = check_writable(path)
    directory = target.parent if str(target.parent) else Path(".")
    _sweep_stale_temps(directory, target.name)
    try:
        fd, tmp = tempfile.mkstemp(
            prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=directory
        )
    except OSError as exc:
        raise _write_error(path, exc) from None
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; a report is an ordinary file
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise _write_error(path, exc) from exc
        raise
    _fsync_dir(directory)  # the rename itself survives a power cut: the old or the new file
    return path


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[^.]+\.tmp$")


def _sweep_stale_temps(directory: Path, name: str) -> None:
    """Remove the temporary files of earlier writes of ``name`` whose process is gone (it
    was killed mid-write): never the file itself, never a live writer's."""
    try:
        entries = os.listdir(directory)
    except OSError:
        return
    for entry in entries:
        m = _TEMP.match(entry)
        if not m or m.group("name") != name or int(m.group("pid")) == os.getpid():
            continue
        try:
            os.kill(int(m.group("pid")), 0)
            continue  # alive (or another user's): its write is under way
        except ProcessLookupError:
            pass
        except (PermissionError, OverflowError):
            continue
        try:
            os.unlink(directory / entry)
        except OSError:
            pass


def save_report(report: Report, path: os.PathLike | str) -> Path:
    return write_atomic(path, report.to_json())


def load_report(path: os.PathLike | str, totals: bool = True) -> Report:
    """The report in file ``path`` (``totals``: see :meth:`Report.from_dict`), or
    :class:`ReportError` naming why it cannot be read."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReportError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ReportError(f"{path}: is a folder, not a report") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportError(f"{path}: cannot read ({exc})") from None
    # JSON trees and records hold no reference cycles: a collection while they are built finds
    # nothing and walks every object made so far (a fifth of loading 9,000 parameters)
    collecting = gc.isenabled()
    gc.disable()
    try:
        data = parse_json(text)
        return Report.from_dict(data, source=str(path), totals=totals)
    except json.JSONDecodeError as exc:
        what = "truncated" if exc.pos >= len(text.rstrip()) else "corrupt"
        raise ReportError(f"{path}: {what} JSON (line {exc.lineno}, column {exc.colno})") from None
    finally:
        if collecting:
            gc.enable()


def parse_json(text: str):
    """``json.loads(text)``, at orjson's speed where orjson is installed: half the time of
    reading a 9,000-parameter report.  What orjson refuses (the NaN and Infinity that Python's
    json reads, bad JSON) goes to ``json.loads``, so that such a file loads, or fails with the
    error, as before.  One difference: orjson reads an integer past 64 bits as a float (no
    report field holds one; a count field then fails its ``int`` check)."""
    try:
        import orjson
    except ImportError:
        return json.loads(text)
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


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
        except Exception:  # noqa: BLE001 - a statistic that cannot be read is kept as its text
            return str(obj)
    if isinstance(obj, (int, float, str, bool)) or obj is None:
        return obj
    return str(obj)
