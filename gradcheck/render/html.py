"""One self-contained HTML page for a report: header and verdict, causes, gradient-flow charts,
loss terms, status changes over steps and the module tree with every parameter.

No external assets: inline CSS, inline SVG charts and a few lines of vanilla JS (a filter box
and expand/collapse; the page stays fully readable without them), so the file works offline
when opened from disk or attached to a CI run.  All report text goes through
:func:`html.escape`.  The page is a few hundred KB for a ~700-parameter model.

Numbers may be ``None``, floats (NaN/Inf included) or the strings ``"nan"``/``"inf"``/``"-inf"``
that the JSON writer uses for non-finite floats; every chart and cell copes with all of them.
"""

from __future__ import annotations

import json
import math
from html import escape
from itertools import groupby
from pathlib import Path
from typing import Optional

from gradcheck.render.common import (STATUS_STYLE, STEP_MARK, attention, changing, headline,
                                     human, timeline)
from gradcheck.report import RUN_STATUSES, write_atomic
from gradcheck.summary import findings, module_rollup

MAX_TIMELINE_GROUPS = 300
MAX_BUFFERS = 2000
SINGLE_CHART = 40        # up to this many parameters: one gradient-flow chart for the model

# rich styles (shared with the terminal view) -> CSS colours
_RICH_CSS = {"green": "#2f9e44", "yellow": "#e8a317", "red": "#e03131", "bold red": "#a3157a",
             "cyan": "#1c9fb8"}
_GREY = "#868e96"


def _color(status: str) -> str:
    status = "covered" if status == "nonzero" else status
    return _RICH_CSS.get(STATUS_STYLE.get(status, ""), _GREY)


def _cls(status) -> str:
    """A CSS-safe status class name (unknown statuses collapse to ``x``)."""
    s = str(status)
    return s if s in STATUS_STYLE or s in STEP_MARK else "x"


def _e(value) -> str:
    return escape("" if value is None else str(value), quote=True)


# ---------------------------------------------------------------------- numbers
def _num(value) -> Optional[float]:
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


def _log10(value) -> Optional[float]:
    x = _num(value)
    if x is None or not math.isfinite(x) or x <= 0:
        return None
    return math.log10(x)


def _last(values: list, fallback=None):
    return values[-1] if values else fallback


def _ratio(p) -> Optional[float]:
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
    return f'<span class="b s-{_cls(status)}">{_e(text if text is not None else status)}</span>'


def _marks(steps: list) -> str:
    """Per-step statuses as coloured marks, run-length grouped to keep the page small."""
    if not steps:
        return '<span class="dim">–</span>'
    out = []
    for status, run in groupby(steps):
        run = list(run)
        out.append(f'<i class="t-{_cls(status)}" title="{_e(status)}">{_e(timeline(run))}</i>')
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
    return (f'<span class="{cls}" title="{_e(title)}" '
            f'style="background:linear-gradient(90deg,{",".join(stops)})"></span>')


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
    parts.append(f"<title>{_e(tip)}</title>")
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
             f'role="img" aria-label="gradient norm per parameter, {_e(title)}">']
    bottom = rtop + RH if show_ratio else top + H
    keys = [_group_key(p.name, band_level) for p in params]
    i = 0
    for b, (key, run) in enumerate(groupby(keys)):      # bands: one per sub-module, in order
        k = len(list(run))
        bx, bw = left + i * slot, k * slot
        parts.append(f'<rect class="band{b % 2}" x="{bx}" y="{top - 14}" width="{bw}" '
                     f'height="{bottom - top + 14}"><title>{_e(key)}: {k} parameters</title>'
                     '</rect>')
        fit = int(bw / 5.6)
        if fit >= 3:
            short = key[len(prefix):] if prefix and key.startswith(prefix) else key
            short = short if len(short) <= fit else short[:fit - 1] + "…"
            parts.append(f'<text class="bl" x="{bx + 2}" y="{top - 4}">{_e(short)}</text>')
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
        last = p.steps[-1] if p.steps else ("frozen" if p.status == "frozen" else None)
        g = _last(p.grad_norms, p.grad_norm)
        gv = _num(g)
        ratio = _ratio(p)
        peak = max((v for v in (_log10(x) for x in p.grad_norms) if v is not None), default=None)
        tip = (f"{p.name}  [{p.status}; last step {last or '?'}]\n|grad| last {_fmt(g)}"
               + (f", max {_fmt(10 ** peak)}" if peak is not None else "")
               + (f"\nupdate/weight {_fmt(ratio)}" if ratio is not None else "")
               + (f"\n{p.cause}: {p.cause_detail}" if p.cause else ""))
        t = f"<title>{_e(tip)}</title>"
        lg = _log10(g)
        if gv is not None and not math.isfinite(gv) or last == "nonfinite":
            parts.append(f'<rect class="bnan" x="{x0:.1f}" y="{top}" width="{w}" '
                         f'height="{H}">{t}</rect>')
        elif lg is not None and last != "frozen":
            if peak is not None and peak > lg:
                yp = y(max(min(peak, hi), lo))
                parts.append(f'<rect class="bmax" x="{x0:.1f}" y="{yp:.1f}" width="{w}" '
                             f'height="{floor_y - yp:.1f}"/>')
            yy = y(max(min(lg, hi), lo))
            bad = (" vanish" if "vanishing" in p.flags else
                   " explode" if "exploding" in p.flags else "")
            parts.append(f'<rect class="bar{bad}" x="{x0:.1f}" y="{yy:.1f}" width="{w}" '
                         f'height="{max(floor_y - yy, 1):.1f}">{t}</rect>')
        else:
            kind = last if last in ("zero", "missing", "frozen") else (
                p.status if p.status in ("zero", "missing", "frozen") else "missing")
            r = min(w / 2 + 1, 5)
            if kind == "frozen":
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
                             f'r="{min(3, w / 2 + .5):.1f}"><title>{_e(p.name)}: update/weight '
                             f'{_fmt(ratio)}</title></circle>')
            elif ratio == 0:
                parts.append(f'<circle class="r0" cx="{cx:.1f}" cy="{rtop + RH:.1f}" '
                             f'r="{min(3, w / 2 + .5):.1f}"><title>{_e(p.name)}: not updated'
                             f'</title></circle>')
        if labels:
            ly = (rtop + RH + 8) if show_ratio else (floor_y + 12)
            parts.append(f'<text class="lab" transform="translate({cx + 3:.1f} {ly:.1f}) '
                         f'rotate(-90)">{_e(names[i])}</text>')
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
           f'<span class="key"><i style="background:{_color("covered")}"></i>non-zero</span>'
           f'<span class="key"><i class="tri" style="border-bottom-color:{_color("zero")}"></i>'
           'zero</span>'
           f'<span class="key"><i class="tri" style="border-bottom-color:{_color("missing")}">'
           '</i>missing</span>'
           f'<span class="key"><i style="background:{_color("nonfinite")}"></i>NaN/Inf</span>'
           f'<span class="key"><i style="background:{_color("frozen")}"></i>frozen</span>'
           + ('<span class="key"><i class="dot"></i>update / weight norm (dashed: 1e-3)</span>'
              if show_ratio else "")
           + ' Hover a bar for its name and numbers.</p>']
    for title, group, level in _flow_groups(params):
        counts: dict = {}
        for p in group:
            counts[p.status] = counts.get(p.status, 0) + 1
        bad = ", ".join(f"{counts[s]} {s}" for s in ("missing", "zero", "nonfinite")
                        if counts.get(s))
        out.append(f'<details class="chart" open><summary><b>{_e(title)}</b> '
                   f'<span class="dim">{len(group)} parameters</span>'
                   + (f' <span class="warn">{_e(bad)}</span>' if bad else "")
                   + f'</summary><div class="scroll">'
                   f'{_flow_chart(title, group, scale, rscale, show_ratio, level)}</div></details>')
    out.append("</section>")
    return "".join(out)


# ---------------------------------------------------------------------- sections
def _header(report) -> str:
    cfg, v, s = report.config, report.verdict, report.summary
    env = report.environment or {}
    chips = []
    for key, label in (("steps", "steps"), ("img_size", "img size"), ("batch_size", "batch"),
                       ("seed", "seed"), ("device", "device")):
        value = cfg.get(key, env.get(key) if key == "device" else None)
        if value is not None:
            chips.append(f'<span class="chip"><span class="dim">{label}</span> {_e(value)}</span>')
    opt = cfg.get("optimizer")
    if isinstance(opt, dict) and opt.get("type"):
        bits = [str(opt["type"])] + [f"{k} {opt[k]}" for k in ("lr", "momentum", "weight_decay")
                                     if opt.get(k) not in (None, 0, False)]
        chips.append(f'<span class="chip"><span class="dim">optimizer</span> {_e(", ".join(bits))}'
                     f'</span>')
    if report.created:
        chips.append(f'<span class="chip"><span class="dim">run</span> {_e(report.created)}</span>')
    verdict = "pass" if v.passed else "fail"
    out = [f'<header class="hero {verdict}"><div class="vd">{_e(v.result.upper())}</div>'
           f'<div class="ht"><h1>{_e(cfg.get("model", "?"))}</h1>'
           f'<div class="hl">{_e(headline(report))}</div>'
           f'<div class="chips">{"".join(chips)}</div></div></header>']
    # counts by status
    by, numel = s.get("by_status", {}), s.get("numel_by_status", {})
    cards = []
    for st in RUN_STATUSES:
        n = by.get(st, 0)
        cards.append(f'<a class="card{" zero-count" if not n else ""}" href="#modules" '
                     f'data-filter="s:{st}" style="border-top-color:{_color(st)}">'
                     f'<b>{n}</b><span>{st}</span><small>{_e(human(numel.get(st, 0)))} values'
                     f'</small></a>')
    cards.append(f'<div class="card" style="border-top-color:{_GREY}"><b>{s.get("buffers", 0)}'
                 f'</b><span>buffers</span><small>{_e(human(s.get("buffer_numel", 0)))} values'
                 f'</small></div>')
    cov = s.get("coverage")
    cov_txt = f"{cov * 100:.1f}% of trainable parameters covered" if isinstance(
        cov, (int, float)) else "no trainable parameters"
    out.append(f'<section id="summary"><div class="cards">{"".join(cards)}</div>'
               f'<div class="covline">{_stack(by, sum(by.values()), "stack big")}'
               f'<span>{_e(cov_txt)}; {s.get("in_optimizer", 0)} in the optimizer, '
               f'{s.get("updated", 0)} updated'
               + (f', <b>{s["moved_without_grad"]} moved without a gradient</b>'
                  if s.get("moved_without_grad") else "") + '</span></div>')
    if v.reasons or v.warnings:
        out.append('<ul class="verdict">')
        out.extend(f'<li class="fail"><b>FAIL</b> {_e(r)}</li>' for r in v.reasons)
        out.extend(f'<li class="warn"><b>WARN</b> {_e(w)}</li>' for w in v.warnings)
        out.append("</ul>")
    else:
        out.append('<p class="ok">Nothing to report: no failing findings and no warnings.</p>')
    out.append("</section>")
    return "".join(out)


def _causes(report) -> str:
    att = attention(report)
    out = ['<section id="causes"><h2>Causes</h2>']
    if not att:
        out.append('<p class="ok">Every parameter is plainly covered: nothing needs attention.</p>'
                   '</section>')
        return "".join(out)
    groups: dict = {}
    for p in att:
        groups.setdefault(p.cause or "", []).append(p)
    order = sorted(groups, key=lambda c: (c == "", -len(groups[c]), c))
    out.append('<div class="pills">' + "".join(
        f'<a class="pill" href="#cause-{_e(c or "other")}"><b>{len(groups[c])}</b> '
        f'{_e(c or "other findings")}</a>' for c in order) + "</div>")
    for code in order:
        group = groups[code]
        details = {}
        for p in group:
            details[p.cause_detail] = details.get(p.cause_detail, 0) + 1
        common = max(details, key=details.get) if code and len(details) < len(group) else None
        shown = [None if common is not None and p.cause_detail == common else p.cause_detail
                 for p in group]
        col = any(shown)                          # a detail column only when rows differ
        out.append(f'<details class="cause" id="cause-{_e(code or "other")}" open><summary>'
                   f'<code class="cc">{_e(code or "other findings")}</code> '
                   f'<span class="cnt">{len(group)}</span>'
                   + (f' <span class="dim">{_e(common)}</span>' if common else "")
                   + '</summary><table class="ct"><thead><tr><th>parameter</th><th>shape</th>'
                   '<th>status</th><th>steps</th><th>findings</th>'
                   + ('<th>detail</th>' if col else '') + '</tr></thead><tbody>')
        for p, detail in zip(group, shown):
            out.append(f'<tr><td class="pn">{_e(p.name)}</td><td>{_e(_shape(p))}</td>'
                       f'<td>{_badge(p.status)}</td><td>{_marks(p.steps)}</td>'
                       f'<td>{_e(", ".join(findings(p)))}</td>'
                       + (f'<td>{_e(detail)}</td>' if col else '') + '</tr>')
        out.append("</tbody></table></details>")
    out.append("</section>")
    return "".join(out)


def _terms(report) -> str:
    terms = report.loss_terms or []
    steps = report.steps or []
    if not terms and not steps:
        return ""
    out = ['<section id="terms"><h2>Loss</h2>']
    losses = [st.get("loss") for st in steps if isinstance(st, dict)]
    if losses:
        secs = [_num(st.get("seconds")) for st in steps if isinstance(st, dict)]
        secs = [x for x in secs if x is not None and math.isfinite(x)]
        out.append(f'<p class="lossline">total loss per step {_spark(losses, 200, 36)} '
                   f'<span class="mono">{_e(" → ".join(_fmt(x) for x in losses[:12]))}'
                   f'{" …" if len(losses) > 12 else ""}</span>'
                   + (f' <span class="dim">({sum(secs):.1f} s for {len(secs)} steps)</span>'
                      if secs else "") + "</p>")
    if terms:
        out.append('<table class="tt"><thead><tr><th>term</th><th>reaches</th><th>per step</th>'
                   '<th>values</th><th></th></tr></thead><tbody>')
        for t in terms:
            if not isinstance(t, dict):
                continue
            reaches = t.get("reaches")
            dead = reaches == 0
            vals = t.get("values") or []
            flags = []
            if dead:
                flags.append('<span class="b s-missing">reaches nothing</span>')
            if t.get("constant"):
                flags.append('<span class="b s-zero">constant</span>')
            out.append(f'<tr class="{"dead" if dead else ""}"><td><b>{_e(t.get("name"))}</b></td>'
                       f'<td class="num">{_e("?" if reaches is None else reaches)}</td>'
                       f'<td>{_spark(vals)}</td>'
                       f'<td class="mono">{_e(", ".join(_fmt(x) for x in vals[:8]))}'
                       f'{" …" if len(vals) > 8 else ""}</td><td>{" ".join(flags)}</td></tr>')
        out.append("</tbody></table>")
        out.append(_reach_matrix(report, [t.get("name") for t in terms if isinstance(t, dict)]))
    out.append("</section>")
    return "".join(out)


def _reach_matrix(report, names: list) -> str:
    known = [p for p in report.params if p.reached_by is not None]
    if not known or not names:
        return ""
    rows: dict = {}
    for p in known:
        rows.setdefault(_group_key(p.name, 2), []).append(p)
    out = ['<h3>Which terms reach which module</h3><div class="scroll"><table class="rm"><thead>'
           '<tr><th>module</th><th class="num">params</th>'
           + "".join(f"<th>{_e(n)}</th>" for n in names) + "</tr></thead><tbody>"]
    for key, group in rows.items():
        cells = []
        for n in names:
            k = sum(1 for p in group if n in p.reached_by)
            frac = k / len(group)
            style = (f' style="background:rgba(47,158,68,{0.15 + 0.7 * frac:.2f})"' if k else "")
            cells.append(f'<td class="num"{style} title="{k} of {len(group)}">{k or "·"}</td>')
        none = all(not p.reached_by for p in group)
        out.append(f'<tr{" class=dead" if none else ""}><td class="pn">{_e(key)}</td>'
                   f'<td class="num">{len(group)}</td>{"".join(cells)}</tr>')
    out.append("</tbody></table></div>")
    return "".join(out)


def _timeline_section(report) -> str:
    n_steps = max((len(p.steps) for p in report.params), default=0)
    if n_steps < 2:
        return ""
    ch = changing(report)
    out = ['<section id="timeline"><h2>Status over steps</h2>']
    if not ch:
        out.append(f'<p class="ok">Every parameter kept the same status on all {n_steps} steps.'
                   '</p></section>')
        return "".join(out)
    patterns: dict = {}
    for p in ch:
        patterns.setdefault((p.module, tuple(p.steps)), []).append(p)
    out.append(f'<p class="note">{len(ch)} parameters change status between steps '
               '(data-dependent or late gradients): + non-zero, 0 zero, − missing, ! non-finite, '
               'f frozen.</p><table class="tl-t"><thead><tr><th>module</th><th class="num">params'
               '</th><th>steps 1…{}</th><th>parameters</th></tr></thead><tbody>'.format(n_steps))
    for i, ((module, steps), group) in enumerate(patterns.items()):
        if i >= MAX_TIMELINE_GROUPS:
            out.append(f'<tr><td colspan="4" class="dim">… {len(patterns) - i} more groups'
                       '</td></tr>')
            break
        names = ", ".join(p.name.rsplit(".", 1)[-1] for p in group[:6]) + (
            f", … (+{len(group) - 6})" if len(group) > 6 else "")
        cells = "".join(f'<i class="sq t-{_cls(s)}" title="step {j + 1}: {_e(s)}">'
                        f'{_e(STEP_MARK.get(s, "?"))}</i>' for j, s in enumerate(steps))
        out.append(f'<tr><td class="pn">{_e(module or "<root>")}</td><td class="num">{len(group)}'
                   f'</td><td class="sqs">{cells}</td><td class="dim">{_e(names)}</td></tr>')
    out.append("</tbody></table></section>")
    return "".join(out)


# ---------------------------------------------------------------------- module tree
def _param_row(p) -> str:
    ratio = _ratio(p)
    notes = []
    if p.cause:
        notes.append(f'<code class="cc" title="{_e(p.cause_detail)}">{_e(p.cause)}</code> '
                     f'{_e(p.cause_detail)}')
    for f in p.flags:
        notes.append(f'<span class="b s-zero">{_e(f)}</span>')
    if p.requires_grad and not p.in_optimizer and p.cause != "not_in_optimizer":
        notes.append('<span class="b s-zero">not in optimizer</span>')
    if p.moved_without_grad and p.cause != "decay_only":
        notes.append('<span class="b s-zero">moved without gradient</span>')
    if p.frozen_reason and p.cause != "frozen":
        notes.append(f'<span class="dim">frozen: {_e(p.frozen_reason)}</span>')
    if p.aliases:
        notes.append(f'<span class="dim">also {_e(", ".join(map(str, p.aliases)))}</span>')
    reached = ("–" if p.reached_by is None else
               ", ".join(map(str, p.reached_by)) if p.reached_by else "nothing")
    key = " ".join([p.name, f"s:{p.status}", p.cause or "", *map(str, p.flags),
                    *map(str, p.aliases)]).lower()
    return (f'<tr class="p" data-k="{_e(key)}"><td class="pn" title="{_e(p.name)}">'
            f'{_e(p.name.rsplit(".", 1)[-1])}</td><td>{_e(_shape(p))}</td>'
            f'<td>{_badge(p.status)}</td><td>{_marks(p.steps)}</td>'
            f'<td class="num">{_e(_fmt(_last(p.grad_norms, p.grad_norm)))}</td>'
            f'<td class="num">{_e(_fmt(ratio))}</td>'
            f'<td class="{"warn" if p.reached_by == [] else ""}">{_e(reached)}</td>'
            f'<td>{" ".join(notes)}</td></tr>')


_PARAM_HEAD = ('<table class="pt"><thead><tr><th>parameter</th><th>shape</th><th>status</th>'
               '<th>steps</th><th class="num">|grad| last</th><th class="num">Δw/w</th>'
               '<th>reached by</th><th>cause / notes</th></tr></thead><tbody>')


def _tree(report) -> str:
    modules = report.modules or module_rollup(report.params)
    if not modules:
        return ""
    info = {m["module"]: m for m in modules if isinstance(m, dict) and "module" in m}
    children: dict = {}
    for name in info:
        if name == "":
            continue
        parent = name.rsplit(".", 1)[0] if "." in name else ""
        if parent not in info:
            parent = ""
        children.setdefault(parent, []).append(name)
    own: dict = {}
    for p in report.params:
        parent = p.name.rsplit(".", 1)[0] if "." in p.name else ""
        own.setdefault(parent if parent in info else "", []).append(p)
    model = str(report.config.get("model", "model"))
    out = []

    def node(name: str) -> None:
        m = info.get(name, {})
        by = m.get("by_status", {}) or {}
        worst = m.get("worst", "covered")
        trainable, covered = m.get("trainable", 0), m.get("covered", 0)
        is_open = name == "" or m.get("depth", 0) <= 1 and len(info) <= 60 or worst in (
            "missing", "zero", "nonfinite")
        label = name.rsplit(".", 1)[-1] if name else model
        n_params = m.get("params", 0)
        out.append(f'<details class="mod"{" open" if is_open else ""}><summary>'
                   f'{_stack(by, m.get("params", 0) or sum(by.values()))}'
                   f'<span class="mn" title="{_e(name or "<model>")}">{_e(label)}</span> '
                   f'<span class="cov">{covered}/{trainable}</span> {_badge(worst)} '
                   f'<span class="dim">{n_params} param{"" if n_params == 1 else "s"} · '
                   f'{_e(human(m.get("numel", 0)))} values</span></summary><div class="kids">')
        mine = own.get(name, [])
        if mine:
            out.append(_PARAM_HEAD)
            out.extend(_param_row(p) for p in mine)
            out.append("</tbody></table>")
        for child in children.get(name, []):
            node(child)
        out.append("</div></details>")

    if "" in info:
        node("")
    else:                                  # a rollup without its root: render the top levels
        for name in children.get("", []):
            node(name)
    return ('<section id="modules"><h2>Modules and parameters</h2>'
            '<div class="tools"><input id="q" type="search" placeholder="filter: name, status '
            '(s:missing), cause code, flag…" aria-label="filter parameters">'
            '<button type="button" data-act="open">expand all</button>'
            '<button type="button" data-act="close">collapse all</button>'
            '<span class="dim">covered/trainable per module subtree, coloured by worst status'
            '</span></div><div id="tree">' + "".join(out) + "</div></section>")


def _extras(report) -> str:
    out = ['<section id="more"><h2>Run details</h2>']
    if report.warnings:
        agree = sum(1 for w in report.warnings if w.agrees)
        out.append(f'<details><summary>Jittor warned {len(report.warnings)} time(s) about missing '
                   f'gradients; {agree} agree with the probe</summary><table class="ct"><thead>'
                   '<tr><th>step</th><th>index</th><th>parameter</th><th>agrees</th><th>text</th>'
                   '</tr></thead><tbody>')
        for w in report.warnings:
            out.append(f'<tr><td>{_e(w.step)}</td><td>{_e(w.index)}</td><td class="pn">'
                       f'{_e(w.param)}</td><td>{_e(w.agrees)}</td><td>{_e(w.text)}</td></tr>')
        out.append("</tbody></table></details>")
    if report.buffers:
        changed = sum(1 for b in report.buffers if b.changed)
        out.append(f'<details><summary>{len(report.buffers)} buffers, {changed} changed during the '
                   'run</summary><table class="ct"><tbody>')
        for b in report.buffers[:MAX_BUFFERS]:
            out.append(f'<tr><td class="pn">{_e(b.name)}</td><td>{_e(_shape(b))}</td>'
                       f'<td>{"changed" if b.changed else "<span class=dim>unchanged</span>"}'
                       '</td></tr>')
        if len(report.buffers) > MAX_BUFFERS:
            more = len(report.buffers) - MAX_BUFFERS
            out.append(f'<tr><td class="dim">… {more} more</td></tr>')
        out.append("</tbody></table></details>")
    for title, data in (("configuration", report.config), ("environment", report.environment)):
        if data:
            text = json.dumps(data, indent=1, default=str, sort_keys=False)
            out.append(f'<details><summary>{title}</summary><pre>{_e(text)}</pre></details>')
    out.append("</section>")
    return "".join(out)


# ---------------------------------------------------------------------- page
def _css() -> str:
    status_css = "".join(
        f".s-{s}{{background:{_color(s)}}}.t-{s}{{color:{_color(s)}}}"
        f"i.sq.t-{s}{{background:{_color(s)};color:#fff}}" for s in (*RUN_STATUSES, "nonzero"))
    return _CSS + status_css + (
        f".mk-missing{{fill:{_color('missing')}}}.mk-zero{{fill:{_color('zero')}}}"
        f".mk-frozen{{fill:{_color('frozen')}}}.bar{{fill:{_color('covered')}}}"
        f".bnan{{fill:{_color('nonfinite')};opacity:.85}}"
        f".bar.vanish{{fill:{_color('zero')}}}.bar.explode{{fill:{_color('nonfinite')}}}")


_CSS = """
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,
sans-serif;color:#212529;background:#f4f5f7}main{max-width:1280px;margin:0 auto;padding:0 20px 40px}
h2{font-size:18px;margin:0 0 10px}h3{font-size:15px;margin:16px 0 6px}
section{background:#fff;border-radius:10px;padding:16px 20px;margin:16px 0;scroll-margin-top:40px;
box-shadow:0 1px 3px rgba(0,0,0,.08)}
.hero{display:flex;gap:20px;align-items:center;padding:20px max(20px,calc((100% - 1240px)/2));
color:#fff}.hero.pass{background:linear-gradient(90deg,#2b8a3e,#37b24d)}
.hero.fail{background:linear-gradient(90deg,#c92a2a,#f03e3e)}
.vd{font-size:34px;font-weight:800;letter-spacing:2px;border:3px solid #fff;border-radius:10px;
padding:6px 16px}.hero h1{margin:0;font-size:22px;word-break:break-all}.hl{opacity:.95}
.chips{margin-top:6px;display:flex;flex-wrap:wrap;gap:6px}.chip{background:rgba(255,255,255,.18);
border-radius:12px;padding:1px 10px;font-size:13px}.chip .dim{color:#fff;opacity:.75}
nav{position:sticky;top:0;z-index:5;background:#212529;
padding:6px max(20px,calc((100% - 1240px)/2))}
nav a{color:#dee2e6;text-decoration:none;margin-right:16px;font-size:13px}nav a:hover{color:#fff}
.cards{display:flex;flex-wrap:wrap;gap:10px}.card{flex:1 1 120px;border:1px solid #e9ecef;
border-top:5px solid;border-radius:8px;padding:8px 12px;color:inherit;text-decoration:none;
display:flex;flex-direction:column}.card b{font-size:26px}.card small{color:#868e96}
a.card:hover{background:#f8f9fa}.card.zero-count{opacity:.55}
.covline{display:flex;align-items:center;gap:12px;margin:12px 0 4px;flex-wrap:wrap}
.stack{display:inline-block;width:70px;height:9px;border-radius:5px;vertical-align:middle;
margin-right:8px;background:#dee2e6}.stack.big{width:360px;height:14px;margin:0}
ul.verdict{list-style:none;padding:0;margin:10px 0 0}ul.verdict li{padding:5px 10px;
border-radius:6px;margin:4px 0;word-break:break-word}li.fail{background:#fff5f5;
border-left:4px solid #e03131}li.warn{background:#fff9db;border-left:4px solid #e8a317}
.ok{color:#2b8a3e}.warn{color:#b35c00}.dim{color:#868e96}.note{color:#495057;margin:0 0 10px}
.mono,.tl,code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
.b{display:inline-block;color:#fff;border-radius:9px;padding:0 7px;font-size:11.5px;
font-weight:600;line-height:17px;white-space:nowrap}.s-x{background:#868e96}
.tl i{font-style:normal;font-weight:700;letter-spacing:1px}.t-x{color:#868e96}
table{border-collapse:collapse;width:100%}
table.rm,table.tt,table.tl-t{width:auto;min-width:50%}
th{text-align:left;font-weight:600;color:#495057;
border-bottom:2px solid #dee2e6;padding:4px 8px;font-size:12.5px;white-space:nowrap}
td{padding:3px 8px;border-bottom:1px solid #f1f3f5;vertical-align:top}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.pn{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px;
word-break:break-all}tr.dead td{background:#fff5f5}
.pills{display:flex;flex-wrap:wrap;gap:6px;margin-bottom:8px}.pill{border:1px solid #ced4da;
border-radius:14px;padding:2px 10px;text-decoration:none;color:inherit;font-size:13px}
.cc{background:#f1f3f5;border-radius:4px;padding:1px 6px;color:#862e9c;font-weight:600}
.cnt{background:#495057;color:#fff;border-radius:9px;padding:0 7px;font-size:12px}
details.cause{margin:8px 0}details>summary{cursor:pointer}
details.chart{margin:6px 0}.scroll{overflow-x:auto}svg text{font:10px system-ui,sans-serif;
fill:#495057}.ax{text-anchor:end}.axt{font-size:10px;fill:#868e96}.grid{stroke:#e9ecef}
.base{stroke:#adb5bd}.band0{fill:#f8f9fa}.band1{fill:#eef1f4}
.bl{font-size:10px;fill:#495057;font-weight:600}
.ref{stroke:#74c0fc;stroke-dasharray:4 3}.bmax{fill:#d3f9d8}
.rd{fill:#1971c2}.r0{fill:none;stroke:#868e96}.lab{font-size:10px;fill:#495057;text-anchor:end}
.spark{vertical-align:middle}.sl{fill:none;stroke:#1971c2;stroke-width:1.5}.sd{fill:#1971c2}
.sbad{stroke:#e03131;stroke-width:2}.key{margin-left:10px;white-space:nowrap}
.key i{display:inline-block;width:10px;height:10px;margin-right:4px;vertical-align:-1px}
.key i.tri{width:0;height:0;border:6px solid transparent;border-bottom:10px solid;
border-top:0}.key i.dot{background:#1971c2;border-radius:50%}
i.sq{display:inline-block;width:18px;height:18px;text-align:center;font:700 12px/18px
ui-monospace,monospace;border-radius:3px;margin-right:2px;font-style:normal}
.tools{display:flex;gap:8px;align-items:center;margin-bottom:10px;flex-wrap:wrap}
#q{flex:0 1 380px;padding:5px 10px;border:1px solid #ced4da;border-radius:6px;font:inherit}
button{border:1px solid #ced4da;background:#f8f9fa;border-radius:6px;padding:4px 10px;
cursor:pointer;font:inherit;font-size:13px}
details.mod{margin:1px 0}details.mod>summary{padding:2px 4px;border-radius:4px;list-style-position:
outside;margin-left:14px}details.mod>summary:hover{background:#f1f3f5}
.kids{margin-left:18px;border-left:1px dashed #dee2e6;padding-left:8px}
.mn{font-weight:600;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.cov{font-variant-numeric:tabular-nums;color:#495057}
table.pt{margin:4px 0 8px;background:#fcfcfd}table.pt td{font-size:13px}
pre{background:#f8f9fa;padding:10px;border-radius:6px;overflow:auto;max-height:400px}
footer{text-align:center;color:#868e96;font-size:12px;padding:10px}
"""

_JS = """
(function(){
var q=document.getElementById('q');if(!q)return;
var rows=[].slice.call(document.querySelectorAll('#tree tr.p'));
var mods=[].slice.call(document.querySelectorAll('#tree details.mod'));
var tabs=[].slice.call(document.querySelectorAll('#tree table.pt'));
function apply(){var t=q.value.trim().toLowerCase().split(/\\s+/).filter(Boolean);
rows.forEach(function(r){var k=r.getAttribute('data-k');
r.hidden=!t.every(function(w){return k.indexOf(w)>=0})});
if(!t.length){mods.forEach(function(d){d.hidden=false});tabs.forEach(function(x){x.hidden=false});
return}
tabs.forEach(function(x){x.hidden=!x.querySelector('tr.p:not([hidden])')});
mods.forEach(function(d){var any=d.querySelector('tr.p:not([hidden])');d.hidden=!any;
if(any)d.open=true})}
q.addEventListener('input',apply);
document.querySelectorAll('[data-filter]').forEach(function(a){a.addEventListener('click',
function(){q.value=a.getAttribute('data-filter');apply()})});
document.querySelectorAll('[data-act]').forEach(function(b){b.addEventListener('click',function(){
var o=b.getAttribute('data-act')==='open';mods.forEach(function(d){d.open=o})})});
})();
"""


def render_html(report) -> str:
    """The whole page as one string (no external references)."""
    from gradcheck import __version__

    v = report.verdict
    title = f"gradcheck: {report.config.get('model', '?')} {v.result.upper()}"
    sections = [_causes(report), _flow_section(report), _terms(report),
                _timeline_section(report), _tree(report), _extras(report)]
    body = "".join(sections)
    nav = "".join(f'<a href="#{sid}">{label}</a>' for sid, label in (
        ("summary", "Summary"), ("causes", "Causes"), ("flow", "Gradient flow"),
        ("terms", "Loss"), ("timeline", "Over steps"), ("modules", "Modules"),
        ("more", "Run details")) if f'id="{sid}"' in body or sid == "summary")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{_e(title)}</title><style>{_css()}</style></head><body>"
            + _page(report, nav, body, __version__))


def _page(report, nav: str, body: str, version: str) -> str:
    head = _header(report)
    hero_end = head.index("</header>") + len("</header>")
    return (head[:hero_end] + f"<nav>{nav}</nav><main>" + head[hero_end:] + body
            + f"</main><footer>gradcheck {_e(version)} · schema {_e(report.schema_version)}"
            f"</footer><script>{_JS}</script></body></html>\n")


def write_html(report, path) -> Path:
    """Render, then write atomically: ``path`` keeps its old content if anything fails."""
    return write_atomic(path, render_html(report))


class HtmlRenderer:
    """The page as a format of the registry (``--format html``; ``--html FILE`` writes it)."""

    def report(self, report, out, depth: int = 2) -> None:
        out.write(render_html(report))
