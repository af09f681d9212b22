"""Shared bits of the human formats: what needs attention, and how to say a run in one line."""

from __future__ import annotations

from gradcheck.summary import findings

STATUS_STYLE = {"covered": "green", "zero": "yellow", "missing": "red", "nonfinite": "bold red",
                "frozen": "cyan"}
STEP_MARK = {"nonzero": "+", "zero": "0", "missing": "-", "nonfinite": "!", "frozen": "f"}


def human(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def timeline(steps: list) -> str:
    """Per-step statuses as marks: + non-zero, 0 zero, - missing, ! non-finite, f frozen."""
    return "".join(STEP_MARK.get(s, "?") for s in steps)


# causes that are worth knowing but are no problem: shown as counts, not as rows
INFORMATIONAL = ("frozen", "update_below_precision")


def attention(report) -> list:
    """Parameters a person should look at: a finding, or a cause that is a problem."""
    return [p for p in report.params
            if findings(p) or (p.cause and p.cause not in INFORMATIONAL)]


def notes(report) -> list:
    """One line per informational cause: how many parameters, and one example."""
    out = []
    for cause in INFORMATIONAL:
        hit = [p for p in report.params if p.cause == cause and not findings(p)]
        if hit:
            out.append(f"{len(hit)} parameter(s) {cause}: e.g. {hit[0].name}: {hit[0].cause_detail}")
    return out


def by_module(params: list) -> dict:
    groups: dict = {}
    for p in params:
        groups.setdefault(p.module or "<root>", []).append(p)
    return groups


def headline(report) -> str:
    s, cfg = report.summary, report.config
    bits = [str(cfg.get("model"))]
    for key, label in (("steps", "steps"), ("img_size", "px"), ("batch_size", "batch")):
        if cfg.get(key) is not None:
            bits.append(f"{cfg[key]} {label}" if key != "img_size" else f"{cfg[key]}{label}")
    covered = s.get("by_status", {}).get("covered", 0)
    return (f"{' | '.join(bits)}: {report.verdict.result.upper()} - {covered}/{s.get('trainable', 0)} "
            f"trainable parameters covered ({human(s.get('trainable_numel', 0))} values), "
            f"{s.get('frozen', 0)} frozen, {s.get('buffers', 0)} buffers")


def changing(report) -> list:
    """Parameters whose per-step status changes (data-dependent or late gradients)."""
    return [p for p in report.params if len(set(p.steps)) > 1]
