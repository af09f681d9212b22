"""The report schema: every record a report holds, as one dataclass per JSON object.

This is the one place that says which keys a report file has and what type each value is.
:mod:`gradcheck.report` reads and writes the file (``schema_version``, atomic writes);
:mod:`gradcheck.probe` and the other producers fill these records; :mod:`gradcheck.summary`
derives :class:`Summary`, :class:`ModuleRollup` and :class:`VerdictGroup`; the renderers read
their attributes.  A field's order here is the key order in the file, a field marked
``OMIT_NONE`` is left out of the file while it is ``None``, and one marked
``omit_without(other)`` while the field ``other`` is ``None`` (:mod:`gradcheck.parity.records`
uses these conventions too, for the JSON of ``gradcheck align``).

Loading (:func:`load`) checks every value against its field's annotation (``int``,
``float | None``, ``list[str]`` as a list...) and then the record's own ``validate()``; a
field with no default is required, except an ``X | None`` one, which reads as ``None`` when
absent.  ``Report.distributed`` (MPI runs only) stays a plain dict;
:mod:`gradcheck.distributed` documents its keys.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from operator import attrgetter

from gradcheck.enums import RUN_STATUSES, SEVERITIES, STEP_STATUSES, Status, Word

OMIT_NONE = {"omit_none": True}  # field metadata: not written while None
_STEP_WORDS = frozenset(STEP_STATUSES)
_RUN_WORDS = frozenset(RUN_STATUSES)


def items_of(cls) -> dict:
    """Field metadata: a list whose entries are ``cls`` records."""
    return {"items": cls}


def omit_without(other: str) -> dict:
    """Field metadata: not written while the field ``other`` is ``None``, and written (``None``
    too) whenever it is not: a number that goes with another, such as a noise floor with its
    measure."""
    return {"omit_without": other}


@dataclass
class ParamRecord:
    name: str
    shape: list
    numel: int
    status: str = Status.COVERED
    steps: list = field(default_factory=list)  # per-step status, one of STEP_STATUSES
    grad_norms: list = field(default_factory=list)  # per-step L2 norm of the gradient
    update_norms: list = field(default_factory=list)  # per-step L2 norm of the value change
    updated_steps: list = field(default_factory=list)  # per-step: did the value change?
    first_nonzero_step: int | None = None  # 1-based; None if never
    requires_grad: bool = True
    in_optimizer: bool = True
    updated: bool = False  # changed on any step
    moved_without_grad: bool = False  # changed on a step with no/zero gradient
    grad_norm: float | None = None  # last step's gradient norm
    update_norm: float | None = None  # last step's update norm
    weight_norm: float | None = None  # value norm before the first step
    module: str = ""  # owning module path ("" = root)
    aliases: list = field(default_factory=list)  # other names of a shared parameter
    frozen_reason: str | None = None  # from expected_frozen, if declared
    cause: str | None = None  # stable code (see gradcheck.explain)
    cause_detail: str | None = None  # one sentence for people
    reached_by: list | None = None  # loss terms with a path to it
    first_nonfinite_step: int | None = None
    flags: list = field(default_factory=list)  # e.g. vanishing, exploding
    read_steps: list = field(default_factory=list)  # per-step: did an op of the step read it?
    eval_module: str | None = None  # frozen by this module's eval() ("" root)
    mode_change: str | None = None  # "unfrozen"/"frozen" by train_mode's train()
    reassigned: bool = False  # its attribute was replaced in a forward
    optimizers: list = field(default_factory=list)  # phases whose optimizer holds it
    tracked: bool = True  # in model.parameters() when the run began
    held_only: bool = False  # only an optimizer holds it, not the model
    lrs: list = field(default_factory=list)  # per-step learning rate of its group
    # per step, for a non-zero gradient that left it unchanged: True when its optimizer's own
    # float32 arithmetic rounds that update away, False when it would have moved it, else None
    rounded: list = field(default_factory=list)
    zero_blockers: list = field(default_factory=list)  # zero-valued weights on its path to the loss
    zero_why: str | None = None  # what else is proven about a zero gradient
    # gradcheck.watch: the sampled step from which it got no gradient (stopped_training)
    stopped_step: int | None = field(default=None, metadata=OMIT_NONE)

    @classmethod
    def validate_all(cls, records: list) -> None:
        """:meth:`validate` of every record, as a few set passes over all of them when every
        value has its plain type (an int shape, a float norm, no "nan" text): a 9,000-
        parameter report held 81,000 calls per load.  Any other value sends each record
        through :meth:`validate`, which names the bad one."""

        def values(key: str):  # every value of list field ``key``, None lists skipped
            return itertools.chain.from_iterable(filter(None, map(attrgetter(key), records)))

        plain = (
            set(map(attrgetter("status"), records)) <= _RUN_WORDS
            and set(values("steps")) <= _STEP_WORDS
            and _types(values("shape")) <= _INT
            and all(
                _types(values(key)) <= _STR
                for key in ("aliases", "flags", "reached_by", "zero_blockers")
            )
            and _types(values("rounded")) <= _BOOL
            and all(_types(values(key)) <= _NUMBER for key in ("grad_norms", "update_norms", "lrs"))
        )
        if not plain:
            for rec in records:
                rec.validate()

    def validate(self) -> None:
        if self.status not in RUN_STATUSES:
            raise ValueError(f"parameter {self.name!r} has unknown status {self.status!r}")
        if not set(self.steps) <= _STEP_WORDS:
            raise ValueError(f"parameter {self.name!r} has an unknown step status")
        if not _all(self.shape, _INT, _is_int):
            raise ValueError(f"parameter {self.name!r} has shape {self.shape!r}")
        for key in ("aliases", "flags", "reached_by", "zero_blockers"):
            if not _all(getattr(self, key) or (), _STR, lambda v: isinstance(v, str)):
                raise ValueError(f"parameter {self.name!r} has a non-text entry in {key}")
        if not _all(self.rounded, _BOOL, lambda v: v is None or isinstance(v, bool)):
            raise ValueError(f"parameter {self.name!r} has a non-boolean in rounded")
        for key in ("grad_norms", "update_norms", "lrs"):
            if not _all(getattr(self, key), _NUMBER, lambda v: v is None or _number(v)):
                raise ValueError(f"parameter {self.name!r} has a non-number in {key}")


@dataclass
class BufferRecord:
    name: str
    shape: list
    numel: int
    changed: bool = False
    kind: str = "buffer"  # buffer | non_float (int/bool) | derived (computed from params)
    in_optimizer: bool = False  # an optimizer holds it
    trainable: bool = False  # takes gradients (not stop_grad): an optimizer holding it trains it


@dataclass
class WarningRecord:
    text: str
    level: str = "w"
    step: int | None = None
    index: int | None = None  # the N of grads[N]: an index into the list of `call`
    param: str | None = None  # the Var that index points at
    agrees: bool | None = None  # does the graph also find no path from it to that loss?
    call: str | None = None  # the gradient call that warned: "optimizer" | "probe"
    phase: str | None = None  # the phase (several optimizers) whose call it was


@dataclass
class StepRecord:
    """One probed training step (:func:`gradcheck.probe.step_entry`)."""

    step: int  # 1-based
    loss: float | None = None  # the first phase's loss
    terms: dict = field(default_factory=dict)  # value per loss term ("phase/term" if several)
    stats: dict = field(default_factory=dict)  # the loss's statistics (num_pos_per_stride...)
    seconds: float | None = None  # wall time of the step
    phases: dict | None = field(default=None, metadata=OMIT_NONE)  # loss per phase (several)

    def validate(self) -> None:
        numbers = [self.loss, self.seconds, *self.terms.values(), *(self.phases or {}).values()]
        if not all(v is None or _number(v) for v in numbers):
            raise ValueError(f"step {self.step} holds a non-number")


@dataclass
class LossTermRecord:
    """One loss term (:func:`gradcheck.probe.loss_terms`)."""

    name: str
    reaches: int | None = None  # parameters it has a path to
    constant: bool = False  # the same value on every step
    values: list = field(default_factory=list)  # its value per step


@dataclass
class ModuleRollup:
    """Coverage of one module subtree (:func:`gradcheck.summary.module_rollup`)."""

    module: str  # "" is the whole model
    depth: int  # 0 for the model, 1 for its children...
    params: int
    numel: int
    trainable: int
    covered: int
    by_status: dict  # run status -> parameters
    worst: str  # the most severe status in it


@dataclass
class Summary:
    """A report's totals (:func:`gradcheck.summary.summarize`); zeros until it is finalized."""

    params: int = 0
    numel: int = 0
    trainable: int = 0
    trainable_numel: int = 0
    frozen: int = 0
    buffers: int = 0
    buffer_numel: int = 0
    by_status: dict = field(default_factory=dict)  # run status -> parameters
    numel_by_status: dict = field(default_factory=dict)  # run status -> values
    coverage: float | None = None  # covered / trainable; None if none train
    in_optimizer: int = 0
    updated: int = 0
    moved_without_grad: int = 0
    findings: dict = field(default_factory=dict)  # finding -> parameters
    steps: int = 0
    jittor_warnings: int = 0
    jittor_warnings_disagree: int = 0  # warnings the graph contradicts


@dataclass
class VerdictGroup:
    """The parameters of one finding with one cause (:func:`gradcheck.summary.finding_groups`)."""

    finding: str  # a policy word: missing, zero, not_in_optimizer...
    severity: str  # one of SEVERITIES
    cause: str | None
    why: str
    fix: str | None
    rerun: dict | None  # settings that fix it (e.g. {"steps": 6}), or None
    count: int
    names: list  # its parameters, model order

    def validate(self) -> None:
        if not all(isinstance(n, str) for n in self.names):
            raise ValueError("a verdict group names a non-text parameter")
        if self.severity not in SEVERITIES:
            raise ValueError(f"a verdict group has severity {self.severity!r}")


@dataclass
class Verdict:
    result: str = "pass"  # "pass" or "fail"
    reasons: list = field(default_factory=list)  # why it fails
    warnings: list = field(default_factory=list)  # what is worth a look but passes
    groups: list = field(default_factory=list, metadata=items_of(VerdictGroup))  # by cause

    @property
    def passed(self) -> bool:
        return self.result == "pass"

    def validate(self) -> None:
        if self.result not in ("pass", "fail"):
            raise ValueError(f"verdict {self.result!r} is neither pass nor fail")
        if not all(isinstance(x, str) for x in self.reasons + self.warnings):
            raise ValueError("the verdict's reasons and warnings must be text")


# ---------------------------------------------------------------------- to and from JSON
def plain(obj):
    """A record (or a list/dict of them) as plain JSON-able data, in field order.  JSON has no
    NaN/Inf: those floats become the strings "nan", "inf", "-inf" (:func:`load` reads them)."""
    kind = type(obj)
    if kind is float:
        return obj if math.isfinite(obj) else _nonfinite_text(obj)
    if kind in _SCALARS:
        return obj
    if kind is list or kind is tuple:
        return [plain(v) for v in obj]
    spec = _PLAIN_FIELDS.get(kind)
    if spec is None and is_dataclass(kind):
        spec = _PLAIN_FIELDS[kind] = [
            (f.name, f.metadata.get("omit_without") or bool(f.metadata.get("omit_none")))
            for f in fields(kind)
        ]
    if spec is not None:
        out = {}
        for name, omit in spec:
            value = getattr(obj, name)
            if not (omit and (value if omit is True else getattr(obj, omit)) is None):
                out[name] = plain(value)
        return out
    if isinstance(obj, float):
        return plain(float(obj))
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    return obj


def _nonfinite_text(x: float) -> str:
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


# str enum members (gradcheck.enums) are written as they are: the encoder writes their word
_SCALARS = frozenset((str, int, bool, type(None), *Word.__subclasses__()))
# a record class -> [(field name, when it is left out: False never, True while None, or the
# name of the field without which it is)]: fields() per record was a third of the time of
# writing a Gold-YOLO report (37k calls)
_PLAIN_FIELDS: dict = {}

_NONFINITE = ("nan", "inf", "-inf")


def _number(value) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) or value in _NONFINITE


# the types a list's values have when they are plainly right: one set(map(type)) pass in C
# instead of a Python check per value (a 9,000-parameter report holds 200k numbers)
_INT, _STR = frozenset((int,)), frozenset((str,))
_BOOL, _NUMBER = frozenset((bool, type(None))), frozenset((int, float, type(None)))


def _all(values, plain_types: frozenset, check) -> bool:
    """Every value passes ``check``: at once when all are of ``plain_types``."""
    return _types(values) <= plain_types or all(check(v) for v in values)


def _types(values) -> set:
    return set(map(type, values))


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# a field annotation's base type -> its check (a JSON value read back)
_CHECKS = {
    "str": lambda v: isinstance(v, str),
    "bool": lambda v: isinstance(v, bool),
    "dict": lambda v: isinstance(v, dict),
    "list": lambda v: isinstance(v, list),
    "float": _number,
    "int": _is_int,
}
# a record class -> one tuple per field: (name, label, base type, its check, Optional, record
# class of its items, None when absent): read once per class, not once per record (a 9,000-
# parameter report holds 18,000 records)
_LOAD_SPEC: dict = {}


def _load_spec(cls) -> list:
    spec = _LOAD_SPEC.get(cls)
    if spec is None:
        spec = []
        for f in fields(cls):
            annotation = str(f.type)  # its text (`from __future__ import annotations`)
            optional = annotation.endswith(" | None")
            base = annotation[: -len(" | None")] if optional else annotation
            base = base.partition("[")[0]  # list[str] is checked as a list, dict[...] a dict
            absent_none = optional and f.default is MISSING and f.default_factory is MISSING
            spec.append(
                (
                    f.name,
                    f"{cls.__name__}.{f.name}",
                    base,
                    _CHECKS.get(base),
                    optional,
                    f.metadata.get("items"),
                    absent_none,
                )
            )
        _LOAD_SPEC[cls] = spec
    return spec


def load(cls, d, validate: bool = True):
    """The ``cls`` record of JSON object ``d``, checked; raises TypeError/ValueError if bad.

    Each value is checked against its field's annotation (``int``, ``float | None``...).
    Unknown keys are dropped; a missing key takes the field's default (older reports).  A
    record whose keys and value types are those of one already checked (most records of a
    report) is built at once: what a check reads is the type alone there; and when it holds
    every field, without the dataclass's ``__init__`` (four fifths of loading a report).
    ``validate=False`` leaves the record's own ``validate()`` to the caller (:func:`load_all`)."""
    if not isinstance(d, dict):
        raise TypeError(f"{cls.__name__} entry is not an object")
    signature = (cls, tuple(d), tuple(map(type, d.values())))
    defaults = _CHECKED.get(signature)
    if defaults is not None:  # checked by type: what __init__ would store, stored
        rec = object.__new__(cls)
        rec.__dict__.update(defaults)
        rec.__dict__.update(d)
    else:
        kept, by_type = {}, True
        spec = _load_spec(cls)
        for name, label, base, ok, optional, item, absent_none in spec:
            if name in d:
                value = d[name]
                if ok is not None and not (optional and value is None) and not ok(value):
                    raise TypeError(f"{label} is {value!r}, expected {base}")
                if item:
                    value, by_type = load_all(item, value), False
                elif base == "float" and isinstance(value, str):
                    by_type = False  # "nan" passes, "abc" does not: a check of the value
                kept[name] = value
            elif absent_none:
                kept[name], by_type = None, False
        rec = cls(**kept)  # TypeError if a required key is missing
        if by_type and len(kept) == len(d):  # no key dropped or added
            _CHECKED[signature] = _defaults_of_absent(cls, d)
    if validate and hasattr(rec, "validate"):
        rec.validate()
    return rec


def load_all(cls, values: list) -> list:
    """The ``cls`` records of the JSON objects ``values``, each checked as :func:`load` does;
    a class with a ``validate_all`` checks them together, once all are built."""
    together = hasattr(cls, "validate_all")
    records = [load(cls, v, validate=not together) for v in values]
    if together:
        cls.validate_all(records)
    return records


# (record class, keys, value types) of records whose fields passed their checks -> the default
# values of the fields they lack: a record with the same signature passes the checks too and
# is built from those and its own values, without ``__init__`` (see load)
_CHECKED: dict = {}


def _defaults_of_absent(cls, d: dict) -> dict | None:
    """The values ``cls(**d)`` gives the fields ``d`` lacks, when that is all its ``__init__``
    does (no ``__post_init__``, no slots, not frozen, no default made per record), else None."""
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or params.frozen or hasattr(cls, "__post_init__"):
        return None
    if hasattr(cls, "__slots__"):
        return None
    out = {}
    for f in fields(cls):
        if not f.init:
            return None
        if f.name not in d:
            if f.default is MISSING:  # a factory's value is made per record
                return None
            out[f.name] = f.default
    return out
