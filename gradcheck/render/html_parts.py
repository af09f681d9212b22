"""Small pieces of the HTML page: the escape helper, status colours, number formatting that
copes with None/NaN/Inf and the JSON writer's "nan"/"inf" strings, and badges/marks/bars."""

from __future__ import annotations

import math
from html import escape
from itertools import groupby

from gradcheck.enums import Status
from gradcheck.render.common import STATUS_STYLE, STEP_MARK, timeline
from gradcheck.report import RUN_STATUSES

# rich styles (shared with the terminal view) -> CSS colours
_RICH_CSS = {
    "green": "#2f9e44",
    "yellow": "#e8a317",
    "red": "#e03131",
    "bold red": "#a3157a",
    "cyan": "#1c9fb8",
}
_GREY = "#868e96"


def _color(status: str) -> str:
    status = Status.COVERED if status == Status.NONZERO else status
    return _RICH_CSS.get(STATUS_STYLE.get(status, ""), _GREY)


def _cls(status) -> str:
    """A CSS-safe status class name (unknown statuses collapse to ``x``)."""
    s = str(status)
    return s if s in STATUS_STYLE or s in STEP_MARK else "x"


def esc(value) -> str:
    """The one escape of the page: any value as HTML text or attribute (quotes included);
    None becomes empty.  Every piece of report text goes through here."""
    return escape("" if value is None else str(value), quote=True)


# ---------------------------------------------------------------------- numbers
def _num(value) -> float | None:
    """A float from a float, an int or a "nan"/"inf" string; None when there is no number."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _fmt(value) -> str:
    x = _num(value)
    if x is None:
        return "–" if value is None else str(value)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0:
        return "0"
    return f"{x:.3g}"


def _log10(value) -> float | None:
    x = _num(value)
    if x is None or not math.isfinite(x) or x <= 0:
        return None
    return math.log10(x)


def _last(values: list, fallback=None):
    return values[-1] if values else fallback


def _ratio(p) -> float | None:
    """Last step's update norm over the weight norm (None when it cannot be had)."""
    upd = _num(_last(p.update_norms, p.update_norm))
    w = _num(p.weight_norm)
    if upd is None or w is None or not math.isfinite(upd) or not math.isfinite(w) or w <= 0:
        return None
    return upd / w


def _shape(p) -> str:
    return "×".join(map(str, p.shape)) if p.shape else "scalar"


# ---------------------------------------------------------------------- small pieces
def _badge(status, text=None) -> str:
    return f'<span class="b s-{_cls(status)}">{esc(text if text is not None else status)}</span>'


def _marks(steps: list) -> str:
    """Per-step statuses as coloured marks, run-length grouped to keep the page small."""
    if not steps:
        return '<span class="dim">–</span>'
    out = []
    for status, run in groupby(steps):
        marks = timeline(list(run))
        out.append(f'<i class="t-{_cls(status)}" title="{esc(status)}">{esc(marks)}</i>')
    return f'<span class="tl">{"".join(out)}</span>'


def _stack(counts: dict, total: int, cls: str = "stack") -> str:
    """A horizontal bar split by status counts (CSS gradient: one element, any size)."""
    if not total:
        return f'<span class="{cls} empty"></span>'
    stops, at = [], 0.0
    for s in RUN_STATUSES:
        n = counts.get(s, 0)
        if not n:
            continue
        end = at + 100.0 * n / total
        stops.append(f"{_color(s)} {at:.1f}% {end:.1f}%")
        at = end
    title = ", ".join(f"{counts[s]} {s}" for s in RUN_STATUSES if counts.get(s))
    return (
        f'<span class="{cls}" title="{esc(title)}" '
        f'style="background:linear-gradient(90deg,{",".join(stops)})"></span>'
    )
