"""The report: what a probe found, as plain data that survives a round trip through JSON.

Data, totals and rendering are kept apart: this module holds the records and their JSON
form; :mod:`gradcheck.summary` derives totals; :mod:`gradcheck.render` draws them.  A report
file is versioned by ``schema_version`` and is always written atomically.

The statuses and the rules that decide them live in :mod:`gradcheck.status`.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

from gradcheck.status import RUN_STATUSES, STEP_STATUSES, UNCOVERED  # noqa: F401 (re-exported)

SCHEMA_VERSION = 1


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
    read_steps: list = field(default_factory=list)     # per-step: did an op of the step read it?
    eval_module: Optional[str] = None                  # frozen by this module's eval() ("" root)
    mode_change: Optional[str] = None                  # "unfrozen"/"frozen" by train_mode's train()
    reassigned: bool = False                           # its attribute was replaced in a forward
    optimizers: list = field(default_factory=list)     # phases whose optimizer holds it


@dataclass
class BufferRecord:
    name: str
    shape: list
    numel: int
    changed: bool = False
    kind: str = "buffer"             # buffer | non_float (int/bool) | derived (computed from params)
    in_optimizer: bool = False       # an optimizer holds it (it cannot train it)


@dataclass
class WarningRecord:
    text: str
    level: str = "w"
    step: Optional[int] = None
    index: Optional[int] = None      # the N of grads[N]: an index into the list of `call`
    param: Optional[str] = None      # the Var that index points at
    agrees: Optional[bool] = None    # does the graph also find no path from it to that loss?
    call: Optional[str] = None       # the gradient call that warned: "optimizer" | "probe"
    phase: Optional[str] = None      # the phase (several optimizers) whose call it was


@dataclass
class Verdict:
    result: str = "pass"                               # "pass" or "fail"
    reasons: list = field(default_factory=list)        # why it fails
    warnings: list = field(default_factory=list)       # what is worth a look but passes
    groups: list = field(default_factory=list)         # findings by cause (gradcheck.summary)

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
    loss_terms: list = field(default_factory=list)    # [{"name", "reaches", "constant", "values"}]
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
            params = [_record(ParamRecord, p) for p in _typed(d["params"], list, "params")]
            buffers = [_record(BufferRecord, b) for b in _typed(d.get("buffers", []), list, "buffers")]
            warns = [_record(WarningRecord, w) for w in _typed(d.get("warnings", []), list, "warnings")]
            verdict = _record(Verdict, d.get("verdict", {}))
            if verdict.result not in ("pass", "fail"):
                raise ValueError(f"verdict {verdict.result!r} is neither pass nor fail")
            report = cls(config=_typed(d["config"], dict, "config"),
                         environment=_typed(d.get("environment", {}), dict, "environment"),
                         params=params, buffers=buffers, warnings=warns,
                         steps=[_step(s) for s in _typed(d.get("steps", []), list, "steps")],
                         verdict=verdict,
                         loss_terms=[_term(t) for t in _typed(d.get("loss_terms", []), list,
                                                              "loss_terms")],
                         created=str(d.get("created", "")), schema_version=version,
                         distributed=_typed(d.get("distributed") or {}, dict, "distributed"))
        except (KeyError, TypeError, ValueError) as exc:
            raise ReportError(f"{source}: malformed report ({type(exc).__name__}: {exc})") from None
        # totals are derived from the records, never trusted from the file (see summary.py)
        from gradcheck.summary import module_rollup, summarize

        report.summary, report.modules = summarize(report), module_rollup(report.params)
        return report


_NONFINITE = ("nan", "inf", "-inf")


def _typed(value, kind, what: str):
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise TypeError(f"{what} is a {type(value).__name__}, expected {kind.__name__}")
    return value


def _number(value) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) or value in _NONFINITE


def _check_field(name: str, annotation: str, value) -> None:
    """Check ``value`` against a record field's annotation (``int``, ``Optional[float]``...)."""
    if annotation.startswith("Optional["):
        if value is None:
            return
        annotation = annotation[len("Optional["):-1]
    ok = {"str": lambda v: isinstance(v, str), "bool": lambda v: isinstance(v, bool),
          "dict": lambda v: isinstance(v, dict),
          "list": lambda v: isinstance(v, list), "float": _number,
          "int": lambda v: isinstance(v, int) and not isinstance(v, bool)}.get(annotation)
    if ok is not None and not ok(value):
        raise TypeError(f"{name} is {value!r}, expected {annotation}")


def _record(cls, d):
    if not isinstance(d, dict):
        raise TypeError(f"{cls.__name__} entry is not an object")
    kept = {}
    for f in fields(cls):
        if f.name in d:
            _check_field(f.name, str(f.type), d[f.name])
            kept[f.name] = d[f.name]
    rec = cls(**kept)
    if isinstance(rec, ParamRecord):
        if rec.status not in RUN_STATUSES:
            raise ValueError(f"parameter {rec.name!r} has unknown status {rec.status!r}")
        if any(s not in STEP_STATUSES for s in rec.steps):
            raise ValueError(f"parameter {rec.name!r} has an unknown step status")
        if not all(isinstance(n, int) and not isinstance(n, bool) for n in rec.shape):
            raise ValueError(f"parameter {rec.name!r} has shape {rec.shape!r}")
        for key in ("aliases", "flags", "reached_by"):
            if not all(isinstance(v, str) for v in getattr(rec, key) or ()):
                raise ValueError(f"parameter {rec.name!r} has a non-text entry in {key}")
        for key in ("grad_norms", "update_norms"):
            if not all(v is None or _number(v) for v in getattr(rec, key)):
                raise ValueError(f"parameter {rec.name!r} has a non-number in {key}")
    if isinstance(rec, Verdict):
        if not all(isinstance(x, str) for x in rec.reasons + rec.warnings):
            raise ValueError("the verdict's reasons and warnings must be text")
        for g in rec.groups:
            _group(g)
    return rec


# a verdict group (gradcheck.summary): key -> its type, as the renderers read it
_GROUP_FIELDS = {"finding": "str", "severity": "str", "cause": "Optional[str]", "why": "str",
                 "fix": "Optional[str]", "rerun": "Optional[dict]", "count": "int",
                 "names": "list"}


def _group(g) -> None:
    _typed(g, dict, "a verdict group")
    for key, annotation in _GROUP_FIELDS.items():
        _check_field(f"verdict group {key}", annotation, g.get(key))
    if not all(isinstance(n, str) for n in g["names"]):
        raise ValueError("a verdict group names a non-text parameter")
    if g["severity"] not in ("fail", "warn", "allowed"):
        raise ValueError(f"a verdict group has severity {g['severity']!r}")


def _step(s) -> dict:
    _typed(s, dict, "a step")
    for key, kind in (("terms", dict), ("stats", dict)):
        _typed(s.get(key, {}), kind, f"a step's {key}")
    if not all(v is None or _number(v) for v in [s.get("loss"), s.get("seconds"),
                                                 *s.get("terms", {}).values()]):
        raise ValueError("a step holds a non-number")
    return s


def _term(t) -> dict:
    _typed(t, dict, "a loss term")
    _check_field("loss term name", "str", t.get("name"))
    _check_field("loss term reaches", "Optional[int]", t.get("reaches"))
    _typed(t.get("values", []), list, "a loss term's values")
    return t


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
