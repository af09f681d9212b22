"""The report schema: every record a report holds, as one dataclass per JSON object.

This is the one place that says which keys a report file has and what type each value is.
:mod:`gradcheck.report` reads and writes the file (``schema_version``, atomic writes);
:mod:`gradcheck.probe` and the other producers fill these records; :mod:`gradcheck.summary`
derives :class:`Summary`, :class:`ModuleRollup` and :class:`VerdictGroup`; the renderers read
their attributes.  A field's order here is the key order in the file, and a field marked
``OMIT_NONE`` is left out of the file while it is ``None``.

Loading (:func:`load`) checks every value against its field's annotation (``int``,
``Optional[float]``...) and then the record's own ``validate()``; a field with no default is
required, except an ``Optional`` one, which reads as ``None`` when absent.  ``Report.distributed``
(MPI runs only) stays a plain dict; :mod:`gradcheck.distributed` documents its keys.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from typing import Optional

from gradcheck.enums import RUN_STATUSES, SEVERITIES, STEP_STATUSES, Status, Word

OMIT_NONE = {"omit_none": True}     # field metadata: not written while None


def _items(cls) -> dict:
    """Field metadata: a list whose entries are ``cls`` records."""
    return {"items": cls}


@dataclass
class ParamRecord:
    name: str
    shape: list
    numel: int
    status: str = Status.COVERED
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
    tracked: bool = True                               # in model.parameters() when the run began
    held_only: bool = False                            # only an optimizer holds it, not the model
    lrs: list = field(default_factory=list)            # per-step learning rate of its group
    # per step, for a non-zero gradient that left it unchanged: True when its optimizer's own
    # float32 arithmetic rounds that update away, False when it would have moved it, else None
    rounded: list = field(default_factory=list)
    zero_blockers: list = field(default_factory=list)  # zero-valued weights on its path to the loss
    zero_why: Optional[str] = None                     # what else is proven about a zero gradient
    # gradcheck.watch: the sampled step from which it got no gradient (stopped_training)
    stopped_step: Optional[int] = field(default=None, metadata=OMIT_NONE)

    def validate(self) -> None:
        if self.status not in RUN_STATUSES:
            raise ValueError(f"parameter {self.name!r} has unknown status {self.status!r}")
        if any(s not in STEP_STATUSES for s in self.steps):
            raise ValueError(f"parameter {self.name!r} has an unknown step status")
        if not all(isinstance(n, int) and not isinstance(n, bool) for n in self.shape):
            raise ValueError(f"parameter {self.name!r} has shape {self.shape!r}")
        for key in ("aliases", "flags", "reached_by", "zero_blockers"):
            if not all(isinstance(v, str) for v in getattr(self, key) or ()):
                raise ValueError(f"parameter {self.name!r} has a non-text entry in {key}")
        if not all(v is None or isinstance(v, bool) for v in self.rounded):
            raise ValueError(f"parameter {self.name!r} has a non-boolean in rounded")
        for key in ("grad_norms", "update_norms", "lrs"):
            if not all(v is None or _number(v) for v in getattr(self, key)):
                raise ValueError(f"parameter {self.name!r} has a non-number in {key}")


@dataclass
class BufferRecord:
    name: str
    shape: list
    numel: int
    changed: bool = False
    kind: str = "buffer"             # buffer | non_float (int/bool) | derived (computed from params)
    in_optimizer: bool = False       # an optimizer holds it
    trainable: bool = False          # it takes gradients (not stop_grad): an optimizer holding it trains it


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
class StepRecord:
    """One probed training step (:func:`gradcheck.probe.step_entry`)."""
    step: int                                          # 1-based
    loss: Optional[float] = None                       # the first phase's loss
    terms: dict = field(default_factory=dict)          # value per loss term ("phase/term" if several)
    stats: dict = field(default_factory=dict)          # the loss's statistics (num_pos_per_stride...)
    seconds: Optional[float] = None                    # wall time of the step
    phases: Optional[dict] = field(default=None, metadata=OMIT_NONE)   # loss per phase (several)

    def validate(self) -> None:
        numbers = [self.loss, self.seconds, *self.terms.values(), *(self.phases or {}).values()]
        if not all(v is None or _number(v) for v in numbers):
            raise ValueError(f"step {self.step} holds a non-number")


@dataclass
class LossTermRecord:
    """One loss term (:func:`gradcheck.probe.loss_terms`)."""
    name: str
    reaches: Optional[int] = None                      # parameters it has a path to
    constant: bool = False                             # the same value on every step
    values: list = field(default_factory=list)         # its value per step


@dataclass
class ModuleRollup:
    """Coverage of one module subtree (:func:`gradcheck.summary.module_rollup`)."""
    module: str                                        # "" is the whole model
    depth: int                                         # 0 for the model, 1 for its children...
    params: int
    numel: int
    trainable: int
    covered: int
    by_status: dict                                    # run status -> parameters
    worst: str                                         # the most severe status in it


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
    by_status: dict = field(default_factory=dict)        # run status -> parameters
    numel_by_status: dict = field(default_factory=dict)  # run status -> values
    coverage: Optional[float] = None                     # covered / trainable; None if none train
    in_optimizer: int = 0
    updated: int = 0
    moved_without_grad: int = 0
    findings: dict = field(default_factory=dict)         # finding -> parameters
    steps: int = 0
    jittor_warnings: int = 0
    jittor_warnings_disagree: int = 0                    # warnings the graph contradicts


@dataclass
class VerdictGroup:
    """The parameters of one finding with one cause (:func:`gradcheck.summary.finding_groups`)."""
    finding: str                       # a policy word: missing, zero, not_in_optimizer...
    severity: str                      # one of SEVERITIES
    cause: Optional[str]
    why: str
    fix: Optional[str]
    rerun: Optional[dict]              # settings that fix it (e.g. {"steps": 6}), or None
    count: int
    names: list                        # its parameters, model order

    def validate(self) -> None:
        if not all(isinstance(n, str) for n in self.names):
            raise ValueError("a verdict group names a non-text parameter")
        if self.severity not in SEVERITIES:
            raise ValueError(f"a verdict group has severity {self.severity!r}")


@dataclass
class Verdict:
    result: str = "pass"                               # "pass" or "fail"
    reasons: list = field(default_factory=list)        # why it fails
    warnings: list = field(default_factory=list)       # what is worth a look but passes
    groups: list = field(default_factory=list, metadata=_items(VerdictGroup))  # by cause

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
        spec = _PLAIN_FIELDS[kind] = [(f.name, bool(f.metadata.get("omit_none")))
                                      for f in fields(kind)]
    if spec is not None:
        out = {}
        for name, omit_none in spec:
            value = getattr(obj, name)
            if not (omit_none and value is None):
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
# a record class -> [(field name, omit while None)]: fields() per record was a third of the
# time of writing a Gold-YOLO report (37k calls)
_PLAIN_FIELDS: dict = {}

_NONFINITE = ("nan", "inf", "-inf")


def _number(value) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) or value in _NONFINITE


def check_field(name: str, annotation: str, value) -> None:
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


def load(cls, d):
    """The ``cls`` record of JSON object ``d``, checked; raises TypeError/ValueError if bad.

    Unknown keys are dropped; a missing key takes the field's default (older reports)."""
    if not isinstance(d, dict):
        raise TypeError(f"{cls.__name__} entry is not an object")
    kept = {}
    for f in fields(cls):
        if f.name in d:
            check_field(f"{cls.__name__}.{f.name}", str(f.type), d[f.name])
            item = f.metadata.get("items")
            kept[f.name] = [load(item, v) for v in d[f.name]] if item else d[f.name]
        elif (f.default is MISSING and f.default_factory is MISSING
              and str(f.type).startswith("Optional[")):
            kept[f.name] = None
    rec = cls(**kept)    # TypeError if a required key is missing
    if hasattr(rec, "validate"):
        rec.validate()
    return rec
