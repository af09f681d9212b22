"""SVG geometry of the HTML page: sparklines and the gradient-flow charts (log-scale bar per
parameter, bands per sub-module, update/weight ratio dots), with the flow section around them."""

from __future__ import annotations

import math
from itertools import groupby

from gradcheck.enums import UNCOVERED, Finding, Status
from gradcheck.render.html_parts import _color, _fmt, _last, _log10, _num, _ratio, esc

SINGLE_CHART = 40        # up to this many parameters: one gradient-flow chart for the model


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
    for i, v in enumerate(nums):
        if v is not None and not math.isfinite(v):
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
    return [(key, group, 2) for key, group in top.items()]


def _decades(logs: list, default: tuple) -> tuple:
    if not logs:
        return default
    lo, hi = math.floor(min(logs)) - 1, math.ceil(max(logs))   # the smallest bar stays visible
    if hi - lo < 3:
        lo, hi = lo - 1, hi + 1
    return max(lo, hi - 16), hi          # a floor 16 decades down at most


def _axis(parts: list, lo: int, hi: int, top: float, height: float, left: int, right: float):
    step = 1 if hi - lo <= 8 else 2 if hi - lo <= 16 else 4
    for e in range(lo, hi + 1):
        y = top + height - (e - lo) / (hi - lo) * height
        parts.append(f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{right:.1f}" y2="{y:.1f}"/>')
        if (e - lo) % step == 0:
            parts.append(f'<text class="ax" x="{left - 4}" y="{y + 3:.1f}">1e{e}</text>')


def _flow_chart(title: str, params: list, scale: tuple, rscale: tuple, show_ratio: bool,
                band_level: int = 1) -> str:
    lo, hi = scale
    rlo, rhi = rscale
    n = len(params)
    slot = max(4, min(44, 960 // max(n, 1)))
    labels = slot >= 10
    prefix = "" if title in ("all parameters", "<root>") else title + "."
    left, top, H = 48, 24, 150
    RH = 56 if show_ratio else 0
    rtop = top + H + 14
    label_h = 0
    names = []
    for p in params:
        short = p.name[len(prefix):] if prefix and p.name.startswith(prefix) else p.name
        names.append(short if len(short) <= 26 else "…" + short[-25:])
    if labels:
        label_h = int(12 + 5.4 * max((len(s) for s in names), default=4))
    width = left + n * slot + 12
    height = rtop + RH + (10 if show_ratio else -4) + label_h
    right = left + n * slot + 4

    def y(logv):
        return top + H - (logv - lo) / (hi - lo) * H

    def ry(logv):
        return rtop + RH - (logv - rlo) / (rhi - rlo) * RH

    parts = [f'<svg class="flow" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             f'role="img" aria-label="gradient norm per parameter, {esc(title)}">']
    bottom = rtop + RH if show_ratio else top + H
    keys = [_group_key(p.name, band_level) for p in params]
    i = 0
    for b, (key, run) in enumerate(groupby(keys)):      # bands: one per sub-module, in order
        k = len(list(run))
        bx, bw = left + i * slot, k * slot
        parts.append(f'<rect class="band{b % 2}" x="{bx}" y="{top - 14}" width="{bw}" '
                     f'height="{bottom - top + 14}"><title>{esc(key)}: {k} parameters</title>'
                     '</rect>')
        fit = int(bw / 5.6)
        if fit >= 3:
            short = key[len(prefix):] if prefix and key.startswith(prefix) else key
            short = short if len(short) <= fit else short[:fit - 1] + "…"
            parts.append(f'<text class="bl" x="{bx + 2}" y="{top - 4}">{esc(short)}</text>')
        i += k
    _axis(parts, lo, hi, top, H, left, right)
    parts.append(f'<text class="axt" x="4" y="{top + H / 2:.0f}" transform="rotate(-90 10 '
                 f'{top + H / 2:.0f})">log10 |grad|</text>')
    floor_y = top + H
    if show_ratio:
        _axis(parts, rlo, rhi, rtop, RH, left, right)
        if rlo < -3 < rhi:
            parts.append(f'<line class="ref" x1="{left}" y1="{ry(-3):.1f}" x2="{right:.1f}" '
                         f'y2="{ry(-3):.1f}"><title>update/weight 1e-3, a usual '
                         f'healthy ratio</title></line>')
        parts.append(f'<text class="axt" x="4" y="{rtop + RH / 2:.0f}" transform="rotate(-90 10 '
                     f'{rtop + RH / 2:.0f})">Δw/w</text>')
    for i, p in enumerate(params):
        w = max(slot - 2, 2) if slot < 12 else round(slot * 0.7)
        x0 = left + i * slot + (slot - w) / 2
        cx = x0 + w / 2
        last = p.steps[-1] if p.steps else (Status.FROZEN if p.status == Status.FROZEN else None)
        g = _last(p.grad_norms, p.grad_norm)
        gv = _num(g)
        ratio = _ratio(p)
        peak = max((v for v in (_log10(x) for x in p.grad_norms) if v is not None), default=None)
        tip = (f"{p.name}  [{p.status}; last step {last or '?'}]\n|grad| last {_fmt(g)}"
               + (f", max {_fmt(10 ** peak)}" if peak is not None else "")
               + (f"\nupdate/weight {_fmt(ratio)}" if ratio is not None else "")
               + (f"\n{p.cause}: {p.cause_detail}" if p.cause else ""))
        t = f"<title>{esc(tip)}</title>"
        lg = _log10(g)
        if gv is not None and not math.isfinite(gv) or last == Status.NONFINITE:
            parts.append(f'<rect class="bnan" x="{x0:.1f}" y="{top}" width="{w}" '
                         f'height="{H}">{t}</rect>')
        elif lg is not None and last != Status.FROZEN:
            if peak is not None and peak > lg:
                yp = y(max(min(peak, hi), lo))
                parts.append(f'<rect class="bmax" x="{x0:.1f}" y="{yp:.1f}" width="{w}" '
                             f'height="{floor_y - yp:.1f}"/>')
            yy = y(max(min(lg, hi), lo))
            bad = (" vanish" if Finding.VANISHING in p.flags else
                   " explode" if Finding.EXPLODING in p.flags else "")
            parts.append(f'<rect class="bar{bad}" x="{x0:.1f}" y="{yy:.1f}" width="{w}" '
                         f'height="{max(floor_y - yy, 1):.1f}">{t}</rect>')
        else:
            marked = (Status.ZERO, Status.MISSING, Status.FROZEN)   # a marker, not a bar
            kind = last if last in marked else (p.status if p.status in marked else Status.MISSING)
            r = min(w / 2 + 1, 5)
            if kind == Status.FROZEN:
                parts.append(f'<rect class="mk-frozen" x="{cx - r:.1f}" y="{floor_y - 2 * r:.1f}" '
                             f'width="{2 * r:.1f}" height="{2 * r:.1f}">{t}</rect>')
            else:                                   # zero / missing: a marker at the floor
                parts.append(f'<path class="mk-{kind}" d="M{cx - r:.1f} {floor_y + 1:.1f}'
                             f'L{cx + r:.1f} {floor_y + 1:.1f}L{cx:.1f} {floor_y - 2 * r:.1f}Z">'
                             f'{t}</path>')
        if show_ratio:
            lr = _log10(ratio)
            if lr is not None:
                cy = ry(max(min(lr, rhi), rlo))
                parts.append(f'<circle class="rd" cx="{cx:.1f}" cy="{cy:.1f}" '
                             f'r="{min(3, w / 2 + .5):.1f}"><title>{esc(p.name)}: update/weight '
                             f'{_fmt(ratio)}</title></circle>')
            elif ratio == 0:
                parts.append(f'<circle class="r0" cx="{cx:.1f}" cy="{rtop + RH:.1f}" '
                             f'r="{min(3, w / 2 + .5):.1f}"><title>{esc(p.name)}: not updated'
                             f'</title></circle>')
        if labels:
            ly = (rtop + RH + 8) if show_ratio else (floor_y + 12)
            parts.append(f'<text class="lab" transform="translate({cx + 3:.1f} {ly:.1f}) '
                         f'rotate(-90)">{esc(names[i])}</text>')
    parts.append(f'<line class="base" x1="{left}" y1="{floor_y}" x2="{right:.1f}" y2="{floor_y}"/>')
    parts.append("</svg>")
    return "".join(parts)


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
    out = ['<section id="flow"><h2>Gradient flow</h2>',
           '<p class="note">Gradient norm of every parameter on the last step, log scale, in model '
           'order (the pale bar is its largest norm over all steps). '
           f'<span class="key"><i style="background:{_color(Status.COVERED)}"></i>non-zero</span>'
           f'<span class="key"><i class="tri" style="border-bottom-color:{_color(Status.ZERO)}">'
           '</i>zero</span>'
           f'<span class="key"><i class="tri" style="border-bottom-color:{_color(Status.MISSING)}">'
           '</i>missing</span>'
           f'<span class="key"><i style="background:{_color(Status.NONFINITE)}"></i>NaN/Inf</span>'
           f'<span class="key"><i style="background:{_color(Status.FROZEN)}"></i>frozen</span>'
           + ('<span class="key"><i class="dot"></i>update / weight norm (dashed: 1e-3)</span>'
              if show_ratio else "")
           + ' Hover a bar for its name and numbers.</p>']
    for title, group, level in _flow_groups(params):
        counts: dict = {}
        for p in group:
            counts[p.status] = counts.get(p.status, 0) + 1
        bad = ", ".join(f"{counts[s]} {s}" for s in UNCOVERED if counts.get(s))
        out.append(f'<details class="chart" open><summary><b>{esc(title)}</b> '
                   f'<span class="dim">{len(group)} parameters</span>'
                   + (f' <span class="warn">{esc(bad)}</span>' if bad else "")
                   + f'</summary><div class="scroll">'
                   f'{_flow_chart(title, group, scale, rscale, show_ratio, level)}</div></details>')
    out.append("</section>")
    return "".join(out)
