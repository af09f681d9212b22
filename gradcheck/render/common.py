"""Shared bits of the human formats: what needs attention, and how to say a run in one line
(with where each setting came from)."""

from __future__ import annotations

from gradcheck.enums import INFORMATIONAL, Finding, Status
from gradcheck.summary import findings

# keyed by Status, looked up by plain strings too (a report read back from JSON): a str enum
STATUS_STYLE: dict[str, str] = {
    Status.COVERED: "green",
    Status.ZERO: "yellow",
    Status.MISSING: "red",
    Status.NONFINITE: "bold red",
    Status.FROZEN: "cyan",
}
STEP_MARK: dict[str, str] = {
    Status.NONZERO: "+",
    Status.ZERO: "0",
    Status.MISSING: "-",
    Status.NONFINITE: "!",
    Status.FROZEN: "f",
    Status.ABSENT: ".",
}


def human(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def timeline(steps: list) -> str:
    """Per-step statuses as marks: + non-zero, 0 zero, - missing, ! non-finite, f frozen."""
    return "".join(STEP_MARK.get(s, "?") for s in steps)


def attention(report) -> list:
    """Parameters a person should look at: a finding, or a cause that is a problem."""
    return [p for p in report.params if findings(p) or (p.cause and p.cause not in INFORMATIONAL)]


def needs_attention(report) -> list:
    """:func:`attention` less the parameters whose only findings are informational (the
    notes sum those up: a list of thousands of ``exploding`` rows helps nobody)."""
    info = set(informational(report))
    return [
        p
        for p in attention(report)
        if not (p.cause in INFORMATIONAL + (None,) and set(findings(p)) <= info)
    ]


def notes(report) -> list:
    """One line per informational cause (how many parameters, and one example), then one per
    informational finding (:func:`informational`: how many, the worst, where)."""
    out = []
    for cause in INFORMATIONAL:
        hit = [p for p in report.params if p.cause == cause and not findings(p)]
        if hit:
            out.append(
                f"{len(hit)} parameter(s) {cause}: e.g. {hit[0].name}: {hit[0].cause_detail}"
            )
    for finding, hit in informational(report).items():
        out.append(
            f"{len(hit)} parameter(s) {finding} (not a failure under this policy): "
            f"{_worst(finding, hit)}; {_where(hit)}"
        )
    return out


def informational(report) -> dict:
    """``{finding: [parameters]}`` for the findings the verdict neither fails, warns on nor
    allows (``exploding`` and ``vanishing`` under the default policy): a page or a screen
    that says nothing failed still says these are there."""
    v = report.verdict
    if not v.groups and (v.reasons or v.warnings):
        return {}  # a report from before findings were grouped
    grouped = {g.finding for g in v.groups}
    out: dict = {}
    for p in report.params:
        for f in findings(p):
            if f not in grouped:
                out.setdefault(f, []).append(p)
    return out


def _worst(finding, params: list) -> str:
    norms = [(n, p) for p in params for n in p.grad_norms if isinstance(n, (int, float))]
    if finding in (Finding.EXPLODING, Finding.VANISHING) and norms:
        pick = max if finding == Finding.EXPLODING else min
        n, p = pick(norms, key=lambda x: x[0])
        return f"worst {p.name} (gradient norm {n:.3g})"
    return f"e.g. {params[0].name}"


def _where(params: list) -> str:
    tops: dict = {}
    for p in params:
        top = p.module.split(".")[0] if p.module else "(model)"
        tops[top] = tops.get(top, 0) + 1
    ranked = sorted(tops.items(), key=lambda kv: -kv[1])
    return (
        "in "
        + ", ".join(f"{m} ({n})" for m, n in ranked[:3])
        + (f" and {len(ranked) - 3} more module(s)" if len(ranked) > 3 else "")
    )


def by_module(params: list) -> dict:
    groups: dict = {}
    for p in params:
        groups.setdefault(p.module or "<root>", []).append(p)
    return groups


_SETTINGS = (
    ("model", "{}"),
    ("steps", "{} step{s}"),
    ("img_size", "{}px"),
    ("batch_size", "batch {}"),
    ("seed", "seed {}"),
)


def settings_line(report) -> str:
    """What ran and where each setting came from, e.g.
    ``gold_yolo_s (flag) | 3 steps, 640px, batch 2 (model default) | seed 0 (tool default)``:
    neighbours with the same origin (the model apart) share one label."""
    cfg, src = report.config, report.config.get("settings_source") or {}
    parts: list = []  # [origin, [texts]]
    for key, fmt in _SETTINGS:
        value = cfg.get(key)
        if value is None:
            continue
        text = fmt.format(value, s="s" if value != 1 else "")
        origin = src.get(key)
        if len(parts) > 1 and origin is not None and parts[-1][0] == origin:  # not the model
            parts[-1][1].append(text)
        else:
            parts.append([origin, [text]])
    return " | ".join(
        ", ".join(texts) + (f" ({origin})" if origin else "") for origin, texts in parts
    )


def verdict_line(report) -> str:
    s = report.summary
    covered = s.by_status.get(Status.COVERED, 0)
    return (
        f"{report.verdict.result.upper()} - {covered}/{s.trainable} trainable "
        f"parameters covered ({human(s.trainable_numel)} values), "
        f"{s.frozen} frozen, {s.buffers} buffers"
    )


def headline(report) -> str:
    """The run in one line: settings with their origins, then the verdict."""
    return f"{settings_line(report)}: {verdict_line(report)}"


def first_covered(report) -> str:
    """How coverage grew over the steps, e.g. 'step 1: 12, step 2: 318, step 3: 126'."""
    counts: dict = {}
    for p in report.params:
        if p.first_nonzero_step is not None and p.status == Status.COVERED:
            counts[p.first_nonzero_step] = counts.get(p.first_nonzero_step, 0) + 1
    return ", ".join(f"step {k}: {counts[k]}" for k in sorted(counts))


def changing(report) -> list:
    """Parameters whose per-step status changes (data-dependent or late gradients)."""
    return [p for p in report.params if len(set(p.steps)) > 1]
