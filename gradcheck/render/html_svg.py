"""SVG geometry of the HTML page: sparklines and the gradient-flow charts (log-scale bar per
parameter, bands per sub-module, update/weight ratio dots), with the flow section around them.

Past ``FLOW_BARS`` parameters the charts stay bounded: a chart draws at most ``CHART_BARS``
bars (its share of ``FLOW_BARS``), runs of consecutive parameters sharing one (median, largest
and smallest |grad|), and the parameters with a finding keep bars of their own (:func:`_bars`);
the page says so.  At 9,000 tensors the section was 2.7 MB, 300 bytes a parameter."""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import groupby

from gradcheck.enums import UNCOVERED, Finding, Status
from gradcheck.render.html_parts import _color, _fmt, _last, _log10, _num, _ratio, esc

SINGLE_CHART = 40  # up to this many parameters: one gradient-flow chart for the model
MAX_CHARTS = 24  # more top-level modules than this: one chart, banded by them
FLOW_BARS = 1200  # up to this many parameters every one has a bar of its own; past it
CHART_BARS = 240  # a chart has at most this many (960 px), its share of FLOW_BARS,
MIN_BARS = 24  # at least this many; runs of parameters share a bar
OWN_BARS = 60  # parameters with a finding keep their own bar, this many a chart


def _spark(values: list, width: int = 140, height: int = 30) -> str:
    """A sparkline of per-step values; non-finite values are red ticks at the top."""
    nums = [_num(v) for v in values]
    finite = [(i, v) for i, v in enumerate(nums) if v is not None and math.isfinite(v)]
    if not nums:
        return ""
    n = len(nums)
    lo = min((v for _, v in finite), default=0.0)
    hi = max((v for _, v in finite), default=1.0)
    span = (hi - lo) or 1.0

    def x(i):
        return 4 + (width - 8) * (i / (n - 1) if n > 1 else 0.5)

    def y(v):
        return height - 4 - (height - 8) * ((v - lo) / span if hi > lo else 0.5)

    parts = [f'<svg class="spark" width="{width}" height="{height}" role="img">']
    tip = ", ".join(_fmt(v) for v in values)
    parts.append(f"<title>{esc(tip)}</title>")
    if len(finite) > 1:
        pts = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in finite)
        parts.append(f'<polyline class="sl" points="{pts}"/>')
    for i, v in finite[-1:]:
        parts.append(f'<circle class="sd" cx="{x(i):.1f}" cy="{y(v):.1f}" r="2.5"/>')
    for i, u in enumerate(nums):
        if u is not None and not math.isfinite(u):
            parts.append(f'<line class="sbad" x1="{x(i):.1f}" y1="2" x2="{x(i):.1f}" y2="10"/>')
    parts.append("</svg>")
    return "".join(parts)


# ---------------------------------------------------------------------- gradient flow
def _group_key(name: str, levels: int) -> str:
    parts = name.split(".")[:-1]
    return ".".join(parts[:levels]) if parts else "<root>"


def _flow_groups(params: list) -> list:
    """[(title, params, band_level)]: one chart for a small model (bands by top-level module),
    else one chart per top-level module (bands by second-level module)."""
    if len(params) <= SINGLE_CHART:
        return [("all parameters", params, 1)]
    top: dict = {}
    for p in params:
        top.setdefault(_group_key(p.name, 1), []).append(p)
    if len(top) > MAX_CHARTS:
        return [("all parameters", params, 1)]
    return [(key, group, 2) for key, group in top.items()]


def _notable(p) -> int:
    """How much a parameter's own bar matters in a chart of shared bars: 0 not at all, else
    the higher the sooner it keeps one (non-finite, missing, zero, exploding, vanishing, a
    cause)."""
    last = p.steps[-1] if p.steps else None
    if p.status == Status.NONFINITE or last == Status.NONFINITE:
        return 6
    if p.status in UNCOVERED:
        return 5 if p.status == Status.MISSING else 4
    if Finding.EXPLODING in p.flags:
        return 3
    if Finding.VANISHING in p.flags:
        return 2
    return 1 if p.cause and p.status != Status.FROZEN else 0


def _bars(params: list, limit: int) -> list:
    """The chart's bars in model order, each a list of parameters: one each up to ``limit``,
    else runs of consecutive parameters, the notable ones (:func:`_notable`, up to
    ``OWN_BARS``) each on a bar of its own.  At most about ``limit`` bars."""
    if len(params) <= limit:
        return [[p] for p in params]
    ranked = sorted(
        (i for i, p in enumerate(params) if _notable(p)), key=lambda i: -_notable(params[i])
    )
    own = set(ranked[: min(OWN_BARS, limit // 4)])
    rest = len(params) - len(own)
    k = max(1, math.ceil(rest / max(limit - 2 * len(own), 1)))  # a notable one splits a run
    out: list[list] = []
    run: list = []
    for i, p in enumerate(params):
        if i in own:
            if run:
                out.append(run)
                run = []
            out.append([p])
            continue
        run.append(p)
        if len(run) == k:
            out.append(run)
            run = []
    if run:
        out.append(run)
    return out


def _decades(logs: list, default: tuple) -> tuple:
    if not logs:
        return default
    lo, hi = math.floor(min(logs)) - 1, math.ceil(max(logs))  # the smallest bar stays visible
    if hi - lo < 3:
        lo, hi = lo - 1, hi + 1
    return max(lo, hi - 16), hi  # a floor 16 decades down at most


def _axis(parts: list, lo: int, hi: int, top: float, height: float, left: int, right: float):
    step = 1 if hi - lo <= 8 else 2 if hi - lo <= 16 else 4
    for e in range(lo, hi + 1):
        y = top + height - (e - lo) / (hi - lo) * height
        parts.append(f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{right:.1f}" y2="{y:.1f}"/>')
        if (e - lo) % step == 0:
            parts.append(f'<text class="ax" x="{left - 4}" y="{y + 3:.1f}">1e{e}</text>')


def _flow_chart(
    title: str, bars: list, scale: tuple, rscale: tuple, show_ratio: bool, band_level: int = 1
) -> str:
    """One chart; ``bars`` from :func:`_bars` (a bar is one parameter or a run of them)."""
    (lo, hi), (rlo, rhi), n = scale, rscale, len(bars)
    f = _Frame(lo, hi, rlo, rhi, slot=max(4, min(44, 960 // max(n, 1))), n=n, show_ratio=show_ratio)
    labels = f.slot >= 10
    prefix = "" if title in ("all parameters", "<root>") else title + "."
    names = _bar_names(bars, prefix)
    label_h = int(12 + 5.4 * max((len(s) for s in names), default=4)) if labels else 0
    width = f.left + n * f.slot + 12
    height = f.rtop + f.RH + (10 if show_ratio else -4) + label_h
    parts = [
        f'<svg class="flow" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="gradient norm per parameter, {esc(title)}">'
    ]
    _bands(parts, f, bars, _band_keys(bars, band_level), prefix)
    _flow_axes(parts, f)
    for i, bar in enumerate(bars):
        _bar_column(parts, f, i, bar, names[i] if labels else None)
    parts.append(
        f'<line class="base" x1="{f.left}" y1="{f.floor_y}" x2="{f.right:.1f}" y2="{f.floor_y}"/>'
    )
    parts.append("</svg>")
    return "".join(parts)


@dataclass(frozen=True)
class _Frame:
    """A chart's geometry: the |grad| panel ``H`` high from ``top`` (log10 ``lo`` to ``hi``),
    the update/weight panel ``RH`` high under it (``rlo`` to ``rhi``; none without
    ``show_ratio``), ``n`` bars ``w`` wide, one a ``slot`` from ``left``."""

    lo: int
    hi: int
    rlo: int
    rhi: int
    slot: int
    n: int
    show_ratio: bool
    left: int = 48
    top: int = 24
    H: int = 150

    @property
    def RH(self) -> int:
        return 56 if self.show_ratio else 0

    @property
    def rtop(self) -> int:
        return self.top + self.H + 14

    @property
    def floor_y(self) -> int:
        return self.top + self.H

    @property
    def bottom(self) -> int:
        return self.rtop + self.RH if self.show_ratio else self.top + self.H

    @property
    def right(self) -> int:
        return self.left + self.n * self.slot + 4

    @property
    def w(self) -> int:
        return max(self.slot - 2, 2) if self.slot < 12 else round(self.slot * 0.7)

    @property
    def r(self) -> float:
        return min(self.w / 2 + 1, 5)

    def y(self, logv: float) -> float:
        """Height of a log10 |grad| on the |grad| panel (clamped to it)."""
        lo, hi = self.lo, self.hi
        return self.top + self.H - (max(min(logv, hi), lo) - lo) / (hi - lo) * self.H

    def ry(self, logv: float) -> float:
        """Height of a log10 update/weight ratio on the ratio panel (clamped to it)."""
        rlo, rhi = self.rlo, self.rhi
        return self.rtop + self.RH - (max(min(logv, rhi), rlo) - rlo) / (rhi - rlo) * self.RH


def _bar_names(bars: list, prefix: str) -> list[str]:
    """Each bar's label: its parameter's name less the chart's ``prefix``, shortened; for a
    run, its first name and how many follow."""

    def short(name, room=26):
        name = name[len(prefix) :] if prefix and name.startswith(prefix) else name
        return name if len(name) <= room else "…" + name[-(room - 1) :]

    return [
        short(b[0].name) if len(b) == 1 else short(b[0].name, 21) + f" +{len(b) - 1}" for b in bars
    ]


def _band_keys(bars: list, band_level: int) -> list[str]:
    """Each bar's band: its sub-module ``band_level`` deep, shallower while shared bars would
    make more bands than a quarter of the bars (fewer, wider bands)."""
    keys = [_group_key(b[0].name, band_level) for b in bars]
    while (
        band_level > 1
        and any(len(b) > 1 for b in bars)
        and (sum(1 for _ in groupby(keys)) > len(bars) // 4)
    ):
        band_level -= 1
        keys = [_group_key(b[0].name, band_level) for b in bars]
    return keys


def _bands(parts: list, f: _Frame, bars: list, keys: list[str], prefix: str) -> None:
    """The shaded bands behind the bars, one per run of equal ``keys`` (sub-modules, in
    order), each labelled when its name fits."""
    i = 0
    for band, (key, run) in enumerate(groupby(keys)):
        k = len(list(run))
        bx, bw = f.left + i * f.slot, k * f.slot
        count = sum(len(b) for b in bars[i : i + k])
        parts.append(
            f'<rect class="band{band % 2}" x="{bx}" y="{f.top - 14}" width="{bw}" '
            f'height="{f.bottom - f.top + 14}"><title>{esc(key)}: {count} parameters'
            "</title></rect>"
        )
        fit = int(bw / 5.6)
        if fit >= 3:
            label = key[len(prefix) :] if prefix and key.startswith(prefix) else key
            label = label if len(label) <= fit else label[: fit - 1] + "…"
            parts.append(f'<text class="bl" x="{bx + 2}" y="{f.top - 4}">{esc(label)}</text>')
        i += k


def _flow_axes(parts: list, f: _Frame) -> None:
    """The log10 |grad| axis; with a ratio panel, its axis and the 1e-3 reference line."""
    _axis(parts, f.lo, f.hi, f.top, f.H, f.left, f.right)
    parts.append(
        f'<text class="axt" x="4" y="{f.top + f.H / 2:.0f}" transform="rotate(-90 10 '
        f'{f.top + f.H / 2:.0f})">log10 |grad|</text>'
    )
    if f.show_ratio:
        _axis(parts, f.rlo, f.rhi, f.rtop, f.RH, f.left, f.right)
        if f.rlo < -3 < f.rhi:
            parts.append(
                f'<line class="ref" x1="{f.left}" y1="{f.ry(-3):.1f}" '
                f'x2="{f.right:.1f}" y2="{f.ry(-3):.1f}"><title>update/weight 1e-3, '
                f"a usual healthy ratio</title></line>"
            )
        parts.append(
            f'<text class="axt" x="4" y="{f.rtop + f.RH / 2:.0f}" '
            f'transform="rotate(-90 10 {f.rtop + f.RH / 2:.0f})">Δw/w</text>'
        )


def _bar_column(parts: list, f: _Frame, i: int, bar: list, label: str | None) -> None:
    """Slot ``i``: the bar (one parameter or a run), its update/weight dot, its label."""
    x0 = f.left + i * f.slot + (f.slot - f.w) / 2
    cx = x0 + f.w / 2

    def marker(kind, cx, t):
        _marker(parts, f, kind, cx, t)

    if len(bar) == 1:
        _one_bar(parts, bar[0], x0, f.w, cx, f.y, f.floor_y, f.H, f.top, marker)
        if f.show_ratio:
            _ratio_dot(parts, f, _ratio(bar[0]), cx, bar[0].name)
    else:
        ratio = _shared_bar(parts, bar, x0, f.w, cx, f.y, f.floor_y, f.H, f.top, marker)
        if f.show_ratio and ratio is not None:
            _ratio_dot(parts, f, ratio, cx, f"{bar[0].name} … {bar[-1].name}, median")
    if label is not None:
        ly = (f.rtop + f.RH + 8) if f.show_ratio else (f.floor_y + 12)
        parts.append(
            f'<text class="lab" transform="translate({cx + 3:.1f} {ly:.1f}) '
            f'rotate(-90)">{esc(label)}</text>'
        )


def _marker(parts: list, f: _Frame, kind, cx: float, t: str) -> None:
    """A parameter without a bar, at the floor: a square when frozen, else a triangle."""
    r, floor_y = f.r, f.floor_y
    if kind == Status.FROZEN:
        parts.append(
            f'<rect class="mk-frozen" x="{cx - r:.1f}" y="{floor_y - 2 * r:.1f}" '
            f'width="{2 * r:.1f}" height="{2 * r:.1f}">{t}</rect>'
        )
    else:  # zero / missing: a marker at the floor
        parts.append(
            f'<path class="mk-{kind}" d="M{cx - r:.1f} {floor_y + 1:.1f}'
            f'L{cx + r:.1f} {floor_y + 1:.1f}L{cx:.1f} {floor_y - 2 * r:.1f}Z">'
            f"{t}</path>"
        )


def _ratio_dot(parts: list, f: _Frame, ratio, cx: float, what: str) -> None:
    """A bar's update/weight ratio: a dot on the ratio panel, a hollow one at its floor when
    the weights were not updated (nothing when unknown)."""
    lr = _log10(ratio)
    if lr is not None:
        parts.append(
            f'<circle class="rd" cx="{cx:.1f}" cy="{f.ry(lr):.1f}" '
            f'r="{min(3, f.w / 2 + 0.5):.1f}"><title>{esc(what)}: update/weight '
            f"{_fmt(ratio)}</title></circle>"
        )
    elif ratio == 0:
        parts.append(
            f'<circle class="r0" cx="{cx:.1f}" cy="{f.rtop + f.RH:.1f}" '
            f'r="{min(3, f.w / 2 + 0.5):.1f}"><title>{esc(what)}: not updated'
            f"</title></circle>"
        )


def _last_status(p):
    return p.steps[-1] if p.steps else (Status.FROZEN if p.status == Status.FROZEN else None)


def _one_bar(parts, p, x0, w, cx, y, floor_y, H, top, marker) -> None:
    """One parameter: its last |grad| (a pale bar to its largest), or a marker."""
    last = _last_status(p)
    g = _last(p.grad_norms, p.grad_norm)
    gv = _num(g)
    ratio = _ratio(p)
    peak = max((v for v in (_log10(x) for x in p.grad_norms) if v is not None), default=None)
    tip = (
        f"{p.name}  [{p.status}; last step {last or '?'}]\n|grad| last {_fmt(g)}"
        + (f", max {_fmt(10**peak)}" if peak is not None else "")
        + (f"\nupdate/weight {_fmt(ratio)}" if ratio is not None else "")
        + (f"\n{p.cause}: {p.cause_detail}" if p.cause else "")
    )
    t = f"<title>{esc(tip)}</title>"
    lg = _log10(g)
    if gv is not None and not math.isfinite(gv) or last == Status.NONFINITE:
        parts.append(
            f'<rect class="bnan" x="{x0:.1f}" y="{top}" width="{w}" height="{H}">{t}</rect>'
        )
    elif lg is not None and last != Status.FROZEN:
        if peak is not None and peak > lg:
            yp = y(peak)
            parts.append(
                f'<rect class="bmax" x="{x0:.1f}" y="{yp:.1f}" width="{w}" '
                f'height="{floor_y - yp:.1f}"/>'
            )
        yy = y(lg)
        bad = (
            " vanish"
            if Finding.VANISHING in p.flags
            else " explode"
            if Finding.EXPLODING in p.flags
            else ""
        )
        parts.append(
            f'<rect class="bar{bad}" x="{x0:.1f}" y="{yy:.1f}" width="{w}" '
            f'height="{max(floor_y - yy, 1):.1f}">{t}</rect>'
        )
    else:
        marked = (Status.ZERO, Status.MISSING, Status.FROZEN)  # a marker, not a bar
        kind = last if last in marked else (p.status if p.status in marked else Status.MISSING)
        marker(kind, cx, t)


def _shared_bar(parts, bar, x0, w, cx, y, floor_y, H, top, marker):
    """A run of parameters on one bar: solid to the median of their last |grad|, pale to the
    largest, a tick at the smallest; red when one is non-finite, a marker when one has no
    gradient.  Returns the run's median update/weight ratio (None without one)."""
    logs: list[tuple] = []
    odd: dict[str, list] = {}
    for p in bar:
        last = _last_status(p)
        g = _num(_last(p.grad_norms, p.grad_norm))
        lg = _log10(g)
        if g is not None and not math.isfinite(g) or last == Status.NONFINITE:
            odd.setdefault(Status.NONFINITE, []).append(p)
        elif lg is not None and last != Status.FROZEN:
            logs.append((lg, p))
        else:
            kind = (
                last
                if last in (Status.ZERO, Status.FROZEN)
                else (p.status if p.status in (Status.ZERO, Status.FROZEN) else Status.MISSING)
            )
            odd.setdefault(kind, []).append(p)
    logs.sort(key=lambda x: x[0])
    ratios = sorted(x for x in (_ratio(p) for p in bar) if x is not None)
    lines = [f"{bar[0].name} … {bar[-1].name} ({len(bar)} parameters)"]
    if logs:
        med = logs[len(logs) // 2][0]
        lines.append(
            f"|grad| last: median {_fmt(10**med)}, smallest {_fmt(10 ** logs[0][0])} "
            f"({logs[0][1].name}), largest {_fmt(10 ** logs[-1][0])} ({logs[-1][1].name})"
        )
    for kind, ps in odd.items():
        lines.append(
            f"{len(ps)} {kind}: "
            + ", ".join(p.name for p in ps[:3])
            + (", …" if len(ps) > 3 else "")
        )
    flagged = [p for p in bar if Finding.EXPLODING in p.flags or Finding.VANISHING in p.flags]
    if flagged:
        lines.append(f"{len(flagged)} flagged exploding/vanishing, e.g. {flagged[0].name}")
    if ratios:
        lines.append(f"update/weight median {_fmt(ratios[len(ratios) // 2])}")
    t = f"<title>{esc(chr(10).join(lines))}</title>"
    if Status.NONFINITE in odd:
        parts.append(
            f'<rect class="bnan" x="{x0:.1f}" y="{top}" width="{w}" height="{H}">{t}</rect>'
        )
    elif logs:
        ymax, ymed, ymin = y(logs[-1][0]), y(med), y(logs[0][0])
        parts.append(
            f'<rect class="bmax" x="{x0:.1f}" y="{ymax:.1f}" width="{w}" '
            f'height="{floor_y - ymax:.1f}">{t}</rect>'
        )
        bad = (
            " explode"
            if any(Finding.EXPLODING in p.flags for p in bar)
            else " vanish"
            if any(Finding.VANISHING in p.flags for p in bar)
            else ""
        )
        parts.append(
            f'<rect class="bar{bad}" x="{x0:.1f}" y="{ymed:.1f}" width="{w}" '
            f'height="{max(floor_y - ymed, 1):.1f}">{t}</rect>'
        )
        parts.append(
            f'<line class="bmin" x1="{x0:.1f}" y1="{ymin:.1f}" x2="{x0 + w:.1f}" y2="{ymin:.1f}"/>'
        )
    for kind in (Status.MISSING, Status.ZERO, Status.FROZEN):
        if kind in odd and Status.NONFINITE not in odd:
            marker(kind, cx, t)
            break
    return ratios[len(ratios) // 2] if ratios else None


def _flow_section(report) -> str:
    params = report.params
    if not params:
        return ""
    glogs = [v for p in params for v in (_log10(x) for x in p.grad_norms) if v is not None]
    glogs += [v for v in (_log10(p.grad_norm) for p in params) if v is not None]
    rlogs = [v for v in (_log10(_ratio(p)) for p in params) if v is not None]
    scale = _decades(glogs, (-8, 2))
    rscale = _decades(rlogs, (-6, 0))
    show_ratio = any(_ratio(p) is not None for p in params)
    out = [
        '<section id="flow"><h2>Gradient flow</h2>',
        '<p class="note">Gradient norm of every parameter on the last step, log scale, in model '
        "order (the pale bar is its largest norm over all steps). "
        f'<span class="key"><i style="background:{_color(Status.COVERED)}"></i>non-zero</span>'
        f'<span class="key"><i class="tri" style="border-bottom-color:{_color(Status.ZERO)}">'
        "</i>zero</span>"
        f'<span class="key"><i class="tri" style="border-bottom-color:{_color(Status.MISSING)}">'
        "</i>missing</span>"
        f'<span class="key"><i style="background:{_color(Status.NONFINITE)}"></i>NaN/Inf</span>'
        f'<span class="key"><i style="background:{_color(Status.FROZEN)}"></i>frozen</span>'
        + (
            '<span class="key"><i class="dot"></i>update / weight norm (dashed: 1e-3)</span>'
            if show_ratio
            else ""
        )
        + " Hover a bar for its name and numbers.</p>",
    ]
    groups = _flow_groups(params)
    charts = []
    for title, group, level in groups:
        limit = (
            len(group)
            if len(params) <= FLOW_BARS
            else min(CHART_BARS, max(MIN_BARS, FLOW_BARS * len(group) // len(params)))
        )
        charts.append((title, group, level, _bars(group, limit)))
    if any(len(bars) < len(group) for _, group, _, bars in charts):
        out.append(
            f'<p class="note">{len(params):,} parameters: past {FLOW_BARS:,} a chart '
            f"draws at most {CHART_BARS} bars, so runs of consecutive parameters share a "
            "bar, solid up to their median |grad|, pale up to the largest, with a tick at "
            "the smallest (hover for the names). A parameter that is non-finite, missing, "
            "zero, exploding, vanishing or has a cause keeps a bar of its own, up to "
            f"{OWN_BARS} a chart; the Causes above and the Modules below list every one."
            "</p>"
        )
    for title, group, level, bars in charts:
        counts: dict = {}
        for p in group:
            counts[p.status] = counts.get(p.status, 0) + 1
        bad = ", ".join(f"{counts[s]} {s}" for s in UNCOVERED if counts.get(s))
        shared = (
            f", {len(bars)} bars of up to {max(len(b) for b in bars)}"
            if len(bars) < len(group)
            else ""
        )
        out.append(
            f'<details class="chart" open><summary><b>{esc(title)}</b> '
            f'<span class="dim">{len(group)} parameters{shared}</span>'
            + (f' <span class="warn">{esc(bad)}</span>' if bad else "")
            + f'</summary><div class="scroll">'
            f"{_flow_chart(title, bars, scale, rscale, show_ratio, level)}</div></details>"
        )
    out.append("</section>")
    return "".join(out)
