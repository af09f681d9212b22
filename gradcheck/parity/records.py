"""The records of port parity: one dataclass per JSON object of ``gradcheck align`` and
``compare --across`` (besides :class:`~gradcheck.parity.alignment.Alignment` and
:class:`~gradcheck.parity.across.AcrossComparison`, which gather them).

The conventions are those of :mod:`gradcheck.schema`: a field's order is its key order in the
file; a field marked ``OMIT_NONE`` is left out while it is ``None`` (a number judged only
where there was something to judge: a module's d loss / d output, the float64 rerun's
numbers); one marked ``omit_without(measure)`` is left out while ``measure`` is, and written
whenever it is, ``None`` included (a noise floor with its measure: ``None`` where no float64
reference calibrated it).  :func:`gradcheck.schema.plain` writes them and
:func:`gradcheck.schema.load` reads them back, each value checked against its annotation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gradcheck.schema import OMIT_NONE, items_of, omit_without

EXPLAINED = "float64"  # an ``explained`` field's one value: agrees when rerun in float64


# ---------------------------------------------------------------- names paired across sides
@dataclass
class ShapeMismatch:
    """A parameter (or buffer) paired by name whose shape differs on the two sides."""

    name: str  # in the port
    original_name: str
    port: list[int]
    original: list[int]
    transposed: bool  # a 2-d shape with its two dimensions swapped


@dataclass
class FrozenDiff:
    """A parameter that trains on one side only."""

    name: str
    original_name: str
    port: str  # "trainable" | "frozen"
    original: str


@dataclass
class OptimizerDiff:
    """A parameter that one side's optimizer holds and the other's does not."""

    name: str
    original_name: str
    port: bool  # in the port's optimizer
    original: bool


def trainable_word(trains: bool) -> str:
    """A :class:`FrozenDiff` side: ``"trainable"`` or ``"frozen"``."""
    return "trainable" if trains else "frozen"


# ---------------------------------------------------------------- align: weights and settings
@dataclass
class BNMismatch:
    """A BatchNorm setting (``eps``, ``momentum``) that differs between the two sides."""

    module: str  # in the port
    original_module: str
    setting: str
    port: float | None
    original: float | None


@dataclass
class WeightKeys:
    """The original's parameters and buffers copied into the port by name (``keys``)."""

    copied: int = 0
    original_only: list[str] = field(default_factory=list)
    port_only: list[str] = field(default_factory=list)
    shape_mismatch: list[ShapeMismatch] = field(
        default_factory=list, metadata=items_of(ShapeMismatch)
    )
    known_torch_only: int = 0  # torch-only buffers (num_batches_tracked), skipped


@dataclass
class Membership:
    """The frozen set and optimizer membership compared (``membership``)."""

    frozen_diff: list[FrozenDiff] = field(default_factory=list, metadata=items_of(FrozenDiff))
    optimizer_diff: list[OptimizerDiff] = field(
        default_factory=list, metadata=items_of(OptimizerDiff)
    )


# ---------------------------------------------------------------- align: the judged rows
@dataclass
class ModuleRow:
    """One call of one module of the original (execution order) against the port's."""

    module: str  # in the port (the original's name renamed)
    original_module: str
    type: str  # the original module's class
    call: int  # 0 for its first call in the step
    rel: float | None = None  # output, scale-relative, against the float64 reference
    noise_floor: float | None = None  # the original's own float32 distance from it
    ok: bool | None = None  # None: not compared (no such module in the port)
    note: str | None = field(default=None, metadata=OMIT_NONE)  # why not, or not fully
    # backward: d loss / d this output, where both sides have it
    grad_rel: float | None = field(default=None, metadata=OMIT_NONE)
    grad_floor: float | None = field(default=None, metadata=omit_without("grad_rel"))
    grad_ok: bool | None = field(default=None, metadata=OMIT_NONE)
    # the port rerun in float64 against the original's float64 run
    rel_f64: float | None = field(default=None, metadata=OMIT_NONE)
    ok_f64: bool | None = field(default=None, metadata=OMIT_NONE)
    explained: str | None = field(default=None, metadata=OMIT_NONE)  # EXPLAINED
    grad_rel_f64: float | None = field(default=None, metadata=OMIT_NONE)
    grad_ok_f64: bool | None = field(default=None, metadata=OMIT_NONE)
    grad_explained: str | None = field(default=None, metadata=OMIT_NONE)  # EXPLAINED


@dataclass
class ParamRow:
    """One parameter: its gradient after step 1 and its value after the steps."""

    name: str  # in the port
    original_name: str
    shape: list[int]
    grad_rel: float | None = None  # |g_port - g_ref| / |g_ref|; None: neither trains it
    noise_floor: float | None = None  # the same for the original's float32 runs
    ok: bool = True
    note: str | None = field(default=None, metadata=OMIT_NONE)  # a structural difference
    grad_norm: float | None = field(default=None, metadata=OMIT_NONE)  # |g_ref|
    grad_ok: bool | None = field(default=None, metadata=OMIT_NONE)
    # the values after the steps, judged on the updates (value after - value before)
    value_rel: float | None = field(default=None, metadata=OMIT_NONE)
    update_rel: float | None = field(default=None, metadata=OMIT_NONE)
    update_floor: float | None = field(default=None, metadata=omit_without("update_rel"))
    value_ok: bool | None = field(default=None, metadata=OMIT_NONE)
    # the port rerun in float64 against the original's float64 run
    grad_rel_f64: float | None = field(default=None, metadata=OMIT_NONE)
    grad_ok_f64: bool | None = field(default=None, metadata=OMIT_NONE)
    explained: str | None = field(default=None, metadata=OMIT_NONE)  # EXPLAINED
    value_explained: str | None = field(default=None, metadata=OMIT_NONE)  # EXPLAINED


@dataclass
class LossTerm:
    """One loss term of step 1 on both sides."""

    name: str
    port: float | None  # None: the port has no such term
    original: float | None
    rel: float | None = field(default=None, metadata=OMIT_NONE)  # None: on one side only
    noise_floor: float | None = field(default=None, metadata=omit_without("rel"))
    ok: bool = True
    note: str | None = field(default=None, metadata=OMIT_NONE)
    rel_f64: float | None = field(default=None, metadata=OMIT_NONE)
    explained: str | None = field(default=None, metadata=OMIT_NONE)  # EXPLAINED


@dataclass
class LossRow:
    """The loss on both sides (per step), judged on step 1, and its terms (``loss``)."""

    port: list[float] = field(default_factory=list)
    original: list[float] = field(default_factory=list)
    original_f64: list[float] | None = None  # None: no float64 reference
    rel: float = 0.0
    noise_floor: float | None = None
    ok: bool = True
    terms: list[LossTerm] = field(default_factory=list, metadata=items_of(LossTerm))
    port_f64: float | None = field(default=None, metadata=OMIT_NONE)
    rel_f64: float | None = field(default=None, metadata=OMIT_NONE)
    explained: str | None = field(default=None, metadata=OMIT_NONE)  # EXPLAINED


@dataclass
class Divergence:
    """The module a difference is first seen at (``first_backward_divergence``: closest to
    the loss; ``first_divergence_f64``: in float64)."""

    module: str  # in the original
    port_module: str
    rel: float
    type: str


@dataclass
class ForwardDivergence(Divergence):
    """The first module, in execution order, whose output differs (``first_divergence``)."""

    note: str | None = None  # why, where it is not a number (never called...)


# ---------------------------------------------------------------- align: the float64 rerun
@dataclass
class Leak:
    """Where a float32 got into the port's float64 rerun
    (:func:`gradcheck.parity.float64.describe_leak` says it in a sentence)."""

    module: str
    type: str
    at: str  # "input": cast before the module; "output": in its code
    dtype: str
    after: str | None  # the last module whose outputs were all float64


@dataclass
class Float64Rerun:
    """The port's float64 rerun of step 1, as counted by its judge (``float64_rerun``)."""

    seconds: float
    explained: int = 0  # rows float32 failed that agree in float64
    float64_only: int = 0  # rows float32 passed that differ in float64
    error: str | None = field(default=None, metadata=OMIT_NONE)  # the rerun failed: why
    float32_leaks: list[Leak] = field(default_factory=list, metadata=items_of(Leak))


# ---------------------------------------------------------------- align: verdict and totals
@dataclass
class AlignVerdict:
    result: str = "aligned"  # "aligned" or "not_aligned"
    reasons: list[str] = field(default_factory=list)  # why it is not aligned
    warnings: list[str] = field(default_factory=list)  # worth a look, aligned or not

    def validate(self) -> None:
        if self.result not in ("aligned", "not_aligned"):
            raise ValueError(f"align verdict {self.result!r} is neither aligned nor not_aligned")


@dataclass
class AlignSummary:
    """An align result's totals (:meth:`~gradcheck.parity.alignment.Alignment.summary`)."""

    params: int
    grad_not_ok: int
    grad_rel_median: float | None
    grad_rel_max: float | None
    noise_floor_median: float | None
    modules: int
    modules_not_ok: int
    values_not_ok: int
    explained_by_float64: int
