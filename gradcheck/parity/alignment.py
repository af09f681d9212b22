"""The result of ``gradcheck align`` (:class:`Alignment`), its tolerances and its verdict.

The home of the ``align`` JSON object (``schema_version``-ed, kind ``align``; its records are
in :mod:`gradcheck.parity.records`), of :class:`Tolerances` (read from the ``[gradcheck]``
config's ``align_*`` keys) and of :func:`verdict`, which turns the judged rows into reasons.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gradcheck.enums import FLOAT64_MODES, Float64Mode
from gradcheck.parity.records import (
    EXPLAINED,
    AlignSummary,
    AlignVerdict,
    BNMismatch,
    Divergence,
    Float64Rerun,
    ForwardDivergence,
    LossRow,
    Membership,
    ModuleRow,
    ParamRow,
    WeightKeys,
)
from gradcheck.schema import load, plain

ALIGN_SCHEMA_VERSION = 1


@dataclass
class Tolerances:
    output: float = 1e-3  # module outputs, scale-relative
    grad: float = 1e-3  # per-parameter gradient, relative
    loss: float = 1e-4  # loss and each loss term, relative
    value: float = 1e-3  # parameter updates (value after the steps - before), relative
    noise_factor: float = 10.0  # allowed multiple of the float64-calibrated noise floor
    noise_samples: int = 3  # extra float32 runs of the original, batch moved by one ulp
    float64: float = 1e-6  # port rerun in float64 vs the original's float64 run, relative
    float64_mode: str = Float64Mode.AUTO  # rerun the port in float64: auto (when float32
    #                                        leaves a row beyond tolerance), always, never

    @classmethod
    def from_policy(cls, policy) -> Tolerances:
        return cls(
            output=policy.align_output_tol,
            grad=policy.align_grad_tol,
            loss=policy.align_loss_tol,
            value=policy.align_value_tol,
            noise_factor=policy.align_noise_factor,
            noise_samples=policy.align_noise_samples,
            float64=policy.align_float64_tol,
            float64_mode=policy.align_float64,
        )

    def allowed(self, tol: float, floor: float | None) -> float:
        return max(tol, self.noise_factor * floor) if floor is not None else tol

    def validate(self) -> None:
        if self.float64_mode not in FLOAT64_MODES:
            raise ValueError(
                f"float64_mode {self.float64_mode!r} is not one of {', '.join(FLOAT64_MODES)}"
            )


@dataclass
class Alignment:
    port: str
    original: str
    steps: int
    tolerances: Tolerances
    verdict: AlignVerdict = field(default_factory=AlignVerdict)
    first_divergence: ForwardDivergence | None = None
    first_backward_divergence: Divergence | None = None  # closest to the loss, d loss/d output
    keys: WeightKeys = field(default_factory=WeightKeys)
    bn_mismatch: list[BNMismatch] = field(default_factory=list)
    membership: Membership = field(default_factory=Membership)
    loss: LossRow = field(default_factory=LossRow)
    params: list[ParamRow] = field(default_factory=list)
    modules: list[ModuleRow] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)  # versions, device
    name_map: list[list[str]] = field(default_factory=list)  # [pattern, replacement]
    calibrated: bool = False
    noise_samples: int = 0  # one-ulp samples of the original's noise that were run
    float64_rerun: Float64Rerun | None = None  # when the port was rerun in float64
    first_divergence_f64: Divergence | None = None  # the first module that differs in float64
    seconds: float = 0.0
    created: str = ""

    @property
    def aligned(self) -> bool:
        return self.verdict.result == "aligned"

    def summary(self) -> AlignSummary:
        rel = [p.grad_rel for p in self.params if p.grad_rel is not None]
        floors = [
            p.noise_floor
            for p in self.params
            if p.grad_rel is not None and p.noise_floor is not None
        ]
        return AlignSummary(
            params=len(self.params),
            grad_not_ok=sum(not p.ok for p in self.params),
            grad_rel_median=float(np.median(rel)) if rel else None,
            grad_rel_max=max(rel) if rel else None,
            noise_floor_median=float(np.median(floors)) if floors else None,
            modules=len(self.modules),
            modules_not_ok=sum(m.ok is False for m in self.modules),
            values_not_ok=sum(p.value_ok is False for p in self.params),
            explained_by_float64=sum(p.explained == EXPLAINED for p in self.params),
        )

    def to_dict(self) -> dict:
        from gradcheck import __version__

        return plain(
            {
                "schema_version": ALIGN_SCHEMA_VERSION,
                "kind": "align",
                "tool": {"name": "gradcheck", "version": __version__},
                "created": self.created,
                "config": {
                    "port": self.port,
                    "original": self.original,
                    "steps": self.steps,
                    "tolerances": self.tolerances,
                    "name_map": self.name_map,
                    "calibrated": self.calibrated,
                    "noise_samples": self.noise_samples,
                    "float64_rerun": self.float64_rerun,
                },
                "environment": self.environment,
                "verdict": self.verdict,
                "first_divergence": self.first_divergence,
                "first_backward_divergence": self.first_backward_divergence,
                "first_divergence_f64": self.first_divergence_f64,
                "summary": self.summary(),
                "keys": self.keys,
                "bn_mismatch": self.bn_mismatch,
                "membership": self.membership,
                "loss": self.loss,
                "params": self.params,
                "modules": self.modules,
                "seconds": round(self.seconds, 2),
            }
        )

    def to_json(self) -> str:
        import json

        return json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, d: Any, source: str = "align result") -> Alignment:
        """The result :meth:`to_dict` wrote, as records again, every value checked
        (:func:`gradcheck.schema.load`; NaN/Inf stay the text they are in the file); the
        summary is derived again, never read.  Raises
        :class:`~gradcheck.report.ReportError` for anything else."""
        from gradcheck.report import ReportError

        if not isinstance(d, dict) or d.get("kind") != "align":
            raise ReportError(f"{source}: not a gradcheck align result (no kind 'align')")
        version = d.get("schema_version")
        if not isinstance(version, int) or not 1 <= version <= ALIGN_SCHEMA_VERSION:
            raise ReportError(
                f"{source}: schema_version {version!r} is not one this gradcheck "
                f"reads (1 to {ALIGN_SCHEMA_VERSION})"
            )
        try:
            cfg = _typed(d["config"], dict, "config")
            return cls(
                port=_typed(cfg["port"], str, "config.port"),
                original=_typed(cfg["original"], str, "config.original"),
                steps=_typed(cfg["steps"], int, "config.steps"),
                tolerances=load(Tolerances, cfg["tolerances"]),
                name_map=_typed(cfg["name_map"], list, "config.name_map"),
                calibrated=_typed(cfg["calibrated"], bool, "config.calibrated"),
                noise_samples=_typed(cfg["noise_samples"], int, "config.noise_samples"),
                float64_rerun=_optional(Float64Rerun, cfg["float64_rerun"]),
                environment=_typed(d["environment"], dict, "environment"),
                verdict=load(AlignVerdict, d["verdict"]),
                first_divergence=_optional(ForwardDivergence, d["first_divergence"]),
                first_backward_divergence=_optional(Divergence, d["first_backward_divergence"]),
                first_divergence_f64=_optional(Divergence, d["first_divergence_f64"]),
                keys=load(WeightKeys, d["keys"]),
                bn_mismatch=[
                    load(BNMismatch, b) for b in _typed(d["bn_mismatch"], list, "bn_mismatch")
                ],
                membership=load(Membership, d["membership"]),
                loss=load(LossRow, d["loss"]),
                params=[load(ParamRow, p) for p in _typed(d["params"], list, "params")],
                modules=[load(ModuleRow, m) for m in _typed(d["modules"], list, "modules")],
                seconds=float(_typed(d["seconds"], (int, float), "seconds")),
                created=_typed(d["created"], str, "created"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ReportError(
                f"{source}: malformed align result ({type(exc).__name__}: {exc})"
            ) from None


def _typed(value, kind: type | tuple[type, ...], what: str):
    """``value`` if it is a ``kind`` (a bool is no number); else TypeError naming ``what``."""
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        kinds = kind if isinstance(kind, tuple) else (kind,)
        raise TypeError(f"{what} is {value!r}, expected {' or '.join(k.__name__ for k in kinds)}")
    return value


def _optional(cls, value):
    """The ``cls`` record of JSON object ``value``, or None for null."""
    return None if value is None else load(cls, value)


def verdict(res: Alignment) -> None:
    """The judged rows turned into ``res.verdict``: a reason per kind of difference (the
    structure first, then the numbers) and what the float64 reference and rerun add."""
    reasons = res.verdict.reasons
    reasons.extend(_weight_reasons(res.keys, res.bn_mismatch))
    reasons.extend(_membership_reasons(res.membership))
    if res.first_divergence:
        reasons.append(_divergence_reason(res.first_divergence))
    reasons.extend(_loss_reasons(res.loss))
    reasons.extend(_param_reasons(res.params, res.steps, res.first_backward_divergence))
    res.verdict.warnings.extend(_reference_warnings(res.calibrated, res.float64_rerun))
    if res.float64_rerun:
        res.verdict.warnings.extend(
            _rerun_warnings(res.float64_rerun, res.tolerances.float64, res.first_divergence_f64)
        )
    res.verdict.result = "not_aligned" if reasons else "aligned"


def _names(items: list[str], n: int = 3) -> str:
    """The first ``n`` names, and how many more there are."""
    return ", ".join(items[:n]) + (f" (+{len(items) - n})" if len(items) > n else "")


def _weight_reasons(k: WeightKeys, bn_mismatch: list[BNMismatch]) -> list[str]:
    """What keeps the original's weights from being the port's: shapes, names on one side
    only, BatchNorm settings."""
    reasons = []
    if k.shape_mismatch:
        reasons.append(
            f"shape mismatch: {len(k.shape_mismatch)} "
            f"({_names([s.name for s in k.shape_mismatch])})"
            + (" -- transposed" if any(s.transposed for s in k.shape_mismatch) else "")
        )
    if k.original_only:
        reasons.append(f"in the original only: {len(k.original_only)} ({_names(k.original_only)})")
    if k.port_only:
        reasons.append(f"in the port only: {len(k.port_only)} ({_names(k.port_only)})")
    if bn_mismatch:
        reasons.append(
            "BatchNorm settings differ: "
            + ", ".join(
                f"{b.module}.{b.setting} {b.port:g} vs {b.original:g}"
                if isinstance(b.port, float) and isinstance(b.original, float)
                else f"{b.module}.{b.setting} {b.port} vs {b.original}"
                for b in bn_mismatch[:3]
            )
        )
    return reasons


def _membership_reasons(m: Membership) -> list[str]:
    """What trains on one side only: the frozen set, the optimizers' parameters."""
    reasons = []
    if m.frozen_diff:
        reasons.append(f"frozen set differs: {_names([d.name for d in m.frozen_diff])}")
    if m.optimizer_diff:
        reasons.append(
            f"optimizer membership differs: {_names([d.name for d in m.optimizer_diff])}"
        )
    return reasons


def _divergence_reason(f: ForwardDivergence) -> str:
    """The first module whose output differs, and by how much (or why)."""
    return f"first diverging module: {f.port_module} (original {f.module}, {f.type}): " + (
        f.note if f.note else f"rel {f.rel:.2e}"
    )


def _loss_reasons(loss: LossRow) -> list[str]:
    """The loss of step 1, then its terms, where they differ."""
    reasons = []
    if not loss.ok:
        reasons.append(
            f"loss differs: {loss.port[0]:.6g} vs {loss.original[0]:.6g} (rel {loss.rel:.2e})"
        )
    bad_terms = [t.name for t in loss.terms if not t.ok]
    if bad_terms:
        reasons.append(f"loss terms differ: {', '.join(bad_terms)}")
    return reasons


def _param_reasons(params: list[ParamRow], steps: int, fb: Divergence | None) -> list[str]:
    """The parameters whose gradient (with where backward first diverges), then whose
    values after the steps, are beyond tolerance."""
    reasons = []
    bad = [p.name for p in params if not p.ok]
    if bad:
        reasons.append(
            f"gradients beyond tolerance: {len(bad)} parameter(s) ({_names(bad)})"
            + (
                f"; backward from the loss, d loss/d output first diverges at "
                f"{fb.port_module or '<root>'} (rel {fb.rel:.2e})"
                if fb
                else ""
            )
        )
    badv = [p.name for p in params if p.value_ok is False]
    if badv:
        reasons.append(
            f"values after {steps} step(s) beyond tolerance: {len(badv)} ({_names(badv)})"
        )
    return reasons


def _reference_warnings(calibrated: bool, rerun: Float64Rerun | None) -> list[str]:
    """What the float64 runs could not do: no reference, a failed rerun, float32 in it."""
    warnings = []
    if not calibrated:
        warnings.append("no float64 reference: judged on the plain tolerances")
    if rerun and rerun.error:
        warnings.append(
            f"the port's float64 rerun failed ({rerun.error}): nothing is "
            f"explained by it, the float32 verdicts stand"
        )
    if rerun and rerun.float32_leaks:
        from gradcheck.parity.float64 import describe_leak

        leaks = rerun.float32_leaks
        warnings.append(
            f"float32 got into the port's float64 rerun: {describe_leak(leaks[0])}"
            + (f" (+{len(leaks) - 1} more place(s))" if len(leaks) > 1 else "")
            + "; from there on the rerun carries float32 rounding, and a row it should "
            "explain can stay unexplained"
        )
    return warnings


def _rerun_warnings(rerun: Float64Rerun, tol64: float, fd64: Divergence | None) -> list[str]:
    """What the port's float64 rerun settled: rows it explains, rows that differ in float64
    only (with the first module that differs in float64)."""
    warnings = []
    if rerun.explained:
        warnings.append(
            f"{rerun.explained} row(s) beyond the float32 noise floor agree when the port is "
            f"rerun in float64 (within {tol64:g}): the port computes the "
            f"original's function there, and what differs is float32 rounding, amplified "
            f"(by the model, e.g. ReLU inputs near zero, or by the port's own formula)"
            + (
                f"; but in float64 the first module that differs is {fd64.port_module}"
                if fd64
                else ""
            )
        )
    if rerun.float64_only:
        warnings.append(
            f"{rerun.float64_only} row(s) within float32 noise differ in float64 (beyond "
            f"{tol64:g})"
            + (f", first at module {fd64.port_module or '<root>'}" if fd64 else "")
            + ": a difference below float32's own noise, or port code that is not "
            "float64-clean (a hard-coded float32 cast)"
        )
    return warnings
