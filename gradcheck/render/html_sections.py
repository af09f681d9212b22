"""The text sections of the HTML page: header and verdict, causes, loss terms with the
term-to-module reach matrix, status over steps and the run details (the module tree is in
:mod:`~gradcheck.render.html_tree`)."""

from __future__ import annotations

import json
import math

from gradcheck.enums import INFORMATIONAL
from gradcheck.render.common import (
    STEP_MARK,
    attention,
    changing,
    headline,
    human,
    informational,
    notes,
)
from gradcheck.render.html_parts import (
    _GREY,
    _badge,
    _cls,
    _color,
    _fmt,
    _marks,
    _num,
    _shape,
    _stack,
    esc,
)
from gradcheck.render.html_svg import _group_key, _spark
from gradcheck.report import RUN_STATUSES
from gradcheck.summary import findings

MAX_TIMELINE_GROUPS = 300
MAX_BUFFERS = 2000
MAX_CAUSE_ROWS = 200  # rows of one cause group; the module tree's filter has every one
MAX_REACH_ROWS = 100  # modules of the term-to-module matrix (by top-level module past it)


def _header(report) -> str:
    cfg, v, s = report.config, report.verdict, report.summary
    verdict = "pass" if v.passed else "fail"
    out = [
        f'<header class="hero {verdict}"><div class="vd">{esc(v.result.upper())}</div>'
        f'<div class="ht"><h1>{esc(cfg.get("model", "?"))}</h1>'
        f'<div class="hl">{esc(headline(report))}</div>'
        f'<div class="chips">{"".join(_chips(report))}</div></div></header>'
    ]
    by = s.by_status
    cov = s.coverage
    cov_txt = (
        f"{cov * 100:.1f}% of trainable parameters covered"
        if isinstance(cov, (int, float))
        else "no trainable parameters"
    )
    out.append(
        f'<section id="summary"><div class="cards">{"".join(_cards(s))}</div>'
        f'<div class="covline">{_stack(by, sum(by.values()), "stack big")}'
        f"<span>{esc(cov_txt)}; {s.in_optimizer} in the optimizer, "
        f"{s.updated} updated"
        + (
            f", <b>{s.moved_without_grad} moved without a gradient</b>"
            if s.moved_without_grad
            else ""
        )
        + "</span></div>"
    )
    out += _verdict_lines(report)
    out.append("</section>")
    return "".join(out)


def _chips(report) -> list:
    """The run's settings as chips: steps, sizes, seed, device, optimizer, when it ran."""
    cfg, env = report.config, report.environment or {}
    chips = []
    for key, label in (
        ("steps", "steps"),
        ("img_size", "img size"),
        ("batch_size", "batch"),
        ("seed", "seed"),
        ("device", "device"),
    ):
        value = cfg.get(key, env.get(key) if key == "device" else None)
        if value is not None:
            chips.append(f'<span class="chip"><span class="dim">{label}</span> {esc(value)}</span>')
    opt = cfg.get("optimizer")
    if isinstance(opt, dict) and opt.get("type"):
        bits = [str(opt["type"])] + [
            f"{k} {opt[k]}"
            for k in ("lr", "momentum", "weight_decay")
            if opt.get(k) not in (None, 0, False)
        ]
        chips.append(
            f'<span class="chip"><span class="dim">optimizer</span> {esc(", ".join(bits))}</span>'
        )
    if report.created:
        chips.append(
            f'<span class="chip"><span class="dim">run</span> {esc(report.created)}</span>'
        )
    return chips


def _cards(s) -> list:
    """One card per status, counts linking to the filtered module table, then the buffers."""
    by, numel = s.by_status, s.numel_by_status
    cards = []
    for st in RUN_STATUSES:
        n = by.get(st, 0)
        cards.append(
            f'<a class="card{" zero-count" if not n else ""}" href="#modules" '
            f'data-filter="s:{st}" style="border-top-color:{_color(st)}">'
            f"<b>{n}</b><span>{st}</span><small>{esc(human(numel.get(st, 0)))} values"
            f"</small></a>"
        )
    cards.append(
        f'<div class="card" style="border-top-color:{_GREY}"><b>{s.buffers}'
        f"</b><span>buffers</span><small>{esc(human(s.buffer_numel))} values"
        f"</small></div>"
    )
    return cards


def _verdict_lines(report) -> list:
    """The verdict's failures and warnings (or that there are none), then the notes."""
    v, out = report.verdict, []
    if v.reasons or v.warnings:
        out.append('<ul class="verdict">')
        out.extend(f'<li class="fail"><b>FAIL</b> {esc(r)}</li>' for r in v.reasons)
        out.extend(f'<li class="warn"><b>WARN</b> {esc(w)}</li>' for w in v.warnings)
        out.append("</ul>")
    elif not notes(report):
        out.append('<p class="ok">Nothing to report: no failing findings and no warnings.</p>')
    else:
        out.append('<p class="ok">No failing findings and no warnings.</p>')
    if notes(report):  # the screen's notes, word for word
        out.append(
            '<ul class="notes">'
            + "".join(f"<li>{esc(line)}</li>" for line in notes(report))
            + "</ul>"
        )
    return out


def _causes(report) -> str:
    att = attention(report)
    out = ['<section id="causes"><h2>Causes</h2>']
    if not att:
        out.append(
            '<p class="ok">Every parameter is plainly covered: nothing needs attention.</p>'
            "</section>"
        )
        return "".join(out)
    info = set(informational(report))
    groups: dict = {}
    for p in att:
        groups.setdefault(p.cause or "", []).append(p)
    order = sorted(groups, key=lambda c: (c == "", -len(groups[c]), c))
    out.append(
        '<div class="pills">'
        + "".join(
            f'<a class="pill" href="#cause-{esc(c or "other")}"><b>{len(groups[c])}</b> '
            f"{esc(c or 'other findings')}</a>"
            for c in order
        )
        + "</div>"
    )
    for code in order:
        group = groups[code]
        details: dict[str | None, int] = {}
        for p in group:
            details[p.cause_detail] = details.get(p.cause_detail, 0) + 1
        common = (
            max(details, key=details.__getitem__) if code and len(details) < len(group) else None
        )
        shown = [
            None if common is not None and p.cause_detail == common else p.cause_detail
            for p in group
        ]
        col = any(shown)  # a detail column only when rows differ
        # a group of informational findings only (the notes above sum it up) starts folded
        quiet = all(p.cause in INFORMATIONAL + (None,) and set(findings(p)) <= info for p in group)
        out.append(
            f'<details class="cause" id="cause-{esc(code or "other")}"'
            f"{'' if quiet else ' open'}><summary>"
            f'<code class="cc">{esc(code or "other findings")}</code> '
            f'<span class="cnt">{len(group)}</span>'
            + (f' <span class="dim">{esc(common)}</span>' if common else "")
            + '</summary><table class="ct"><thead><tr><th>parameter</th><th>shape</th>'
            "<th>status</th><th>steps</th><th>findings</th>"
            + ("<th>detail</th>" if col else "")
            + "</tr></thead><tbody>"
        )
        for p, detail in zip(group[:MAX_CAUSE_ROWS], shown):
            out.append(
                f'<tr><td class="pn">{esc(p.name)}</td><td>{esc(_shape(p))}</td>'
                f"<td>{_badge(p.status)}</td><td>{_marks(p.steps)}</td>"
                f"<td>{esc(', '.join(findings(p)))}</td>"
                + (f"<td>{esc(detail)}</td>" if col else "")
                + "</tr>"
            )
        if len(group) > MAX_CAUSE_ROWS:
            more = len(group) - MAX_CAUSE_ROWS
            where = (
                f'<a href="#modules" data-filter="{esc(code)}">filter the module tree by '
                f"{esc(code)}</a> for all {len(group)}"
                if code
                else "the module tree below lists every one"
            )
            out.append(
                f'<tr><td colspan="{6 if col else 5}" class="dim">… {more} more: {where}</td></tr>'
            )
        out.append("</tbody></table></details>")
    out.append("</section>")
    return "".join(out)


def _terms(report) -> str:
    terms = report.loss_terms or []
    steps = report.steps or []
    if not terms and not steps:
        return ""
    out = ['<section id="terms"><h2>Loss</h2>']
    losses = [st.loss for st in steps]
    if losses:
        secs = [x for x in (_num(st.seconds) for st in steps) if x is not None and math.isfinite(x)]
        out.append(
            f'<p class="lossline">total loss per step {_spark(losses, 200, 36)} '
            f'<span class="mono">{esc(" → ".join(_fmt(x) for x in losses[:12]))}'
            f"{' …' if len(losses) > 12 else ''}</span>"
            + (
                f' <span class="dim">({sum(secs):.1f} s for {len(secs)} steps)</span>'
                if secs
                else ""
            )
            + "</p>"
        )
    if terms:
        out.append(
            '<table class="tt"><thead><tr><th>term</th><th>reaches</th><th>per step</th>'
            "<th>values</th><th></th></tr></thead><tbody>"
        )
        for t in terms:
            reaches = t.reaches
            dead = reaches == 0
            vals = t.values
            flags = []
            if dead:
                flags.append('<span class="b s-missing">reaches nothing</span>')
            if t.constant:
                flags.append('<span class="b s-zero">constant</span>')
            out.append(
                f'<tr class="{"dead" if dead else ""}"><td><b>{esc(t.name)}</b></td>'
                f'<td class="num">{esc("?" if reaches is None else reaches)}</td>'
                f"<td>{_spark(vals)}</td>"
                f'<td class="mono">{esc(", ".join(_fmt(x) for x in vals[:8]))}'
                f"{' …' if len(vals) > 8 else ''}</td><td>{' '.join(flags)}</td></tr>"
            )
        out.append("</tbody></table>")
        out.append(_reach_matrix(report, [t.name for t in terms]))
    out.append("</section>")
    return "".join(out)


def _reach_matrix(report, names: list) -> str:
    known = [p for p in report.params if p.reached_by is not None]
    if not known or not names:
        return ""
    for level in (2, 1):
        rows: dict = {}
        for p in known:
            rows.setdefault(_group_key(p.name, level), []).append(p)
        if len(rows) <= MAX_REACH_ROWS:
            break
    out = [
        '<h3>Which terms reach which module</h3><div class="scroll"><table class="rm"><thead>'
        '<tr><th>module</th><th class="num">params</th>'
        + "".join(f"<th>{esc(n)}</th>" for n in names)
        + "</tr></thead><tbody>"
    ]
    for i, (key, group) in enumerate(rows.items()):
        if i == MAX_REACH_ROWS:
            out.append(
                f'<tr><td colspan="{len(names) + 2}" class="dim">… {len(rows) - i} more '
                "modules: the module tree shows what reaches each parameter</td></tr>"
            )
            break
        cells = []
        for n in names:
            k = sum(1 for p in group if n in p.reached_by)
            frac = k / len(group)
            style = f' style="background:rgba(47,158,68,{0.15 + 0.7 * frac:.2f})"' if k else ""
            cells.append(f'<td class="num"{style} title="{k} of {len(group)}">{k or "·"}</td>')
        none = all(not p.reached_by for p in group)
        out.append(
            f'<tr{" class=dead" if none else ""}><td class="pn">{esc(key)}</td>'
            f'<td class="num">{len(group)}</td>{"".join(cells)}</tr>'
        )
    out.append("</tbody></table></div>")
    return "".join(out)


def _timeline_section(report) -> str:
    n_steps = max((len(p.steps) for p in report.params), default=0)
    if n_steps < 2:
        return ""
    ch = changing(report)
    out = ['<section id="timeline"><h2>Status over steps</h2>']
    if not ch:
        out.append(
            f'<p class="ok">Every parameter kept the same status on all {n_steps} steps.'
            "</p></section>"
        )
        return "".join(out)
    patterns: dict = {}
    for p in ch:
        patterns.setdefault((p.module, tuple(p.steps)), []).append(p)
    out.append(
        f'<p class="note">{len(ch)} parameters change status between steps '
        "(data-dependent or late gradients): + non-zero, 0 zero, − missing, ! non-finite, "
        'f frozen.</p><table class="tl-t"><thead><tr><th>module</th><th class="num">params'
        "</th><th>steps 1…{}</th><th>parameters</th></tr></thead><tbody>".format(n_steps)
    )
    for i, ((module, steps), group) in enumerate(patterns.items()):
        if i >= MAX_TIMELINE_GROUPS:
            out.append(
                f'<tr><td colspan="4" class="dim">… {len(patterns) - i} more groups</td></tr>'
            )
            break
        names = ", ".join(p.name.rsplit(".", 1)[-1] for p in group[:6]) + (
            f", … (+{len(group) - 6})" if len(group) > 6 else ""
        )
        cells = "".join(
            f'<i class="sq t-{_cls(s)}" title="step {j + 1}: {esc(s)}">'
            f"{esc(STEP_MARK.get(s, '?'))}</i>"
            for j, s in enumerate(steps)
        )
        out.append(
            f'<tr><td class="pn">{esc(module or "<root>")}</td><td class="num">{len(group)}'
            f'</td><td class="sqs">{cells}</td><td class="dim">{esc(names)}</td></tr>'
        )
    out.append("</tbody></table></section>")
    return "".join(out)


def _extras(report) -> str:
    out = ['<section id="more"><h2>Run details</h2>']
    if report.warnings:
        agree = sum(1 for w in report.warnings if w.agrees)
        out.append(
            f"<details><summary>Jittor warned {len(report.warnings)} time(s) about missing "
            f'gradients; {agree} agree with the probe</summary><table class="ct"><thead>'
            "<tr><th>step</th><th>index</th><th>parameter</th><th>agrees</th><th>text</th>"
            "</tr></thead><tbody>"
        )
        for w in report.warnings:
            out.append(
                f'<tr><td>{esc(w.step)}</td><td>{esc(w.index)}</td><td class="pn">'
                f"{esc(w.param)}</td><td>{esc(w.agrees)}</td><td>{esc(w.text)}</td></tr>"
            )
        out.append("</tbody></table></details>")
    if report.buffers:
        changed = sum(1 for b in report.buffers if b.changed)
        out.append(
            f"<details><summary>{len(report.buffers)} buffers, {changed} changed during the "
            'run</summary><table class="ct"><tbody>'
        )
        for b in report.buffers[:MAX_BUFFERS]:
            out.append(
                f'<tr><td class="pn">{esc(b.name)}</td><td>{esc(_shape(b))}</td>'
                f"<td>{'changed' if b.changed else '<span class=dim>unchanged</span>'}"
                "</td></tr>"
            )
        if len(report.buffers) > MAX_BUFFERS:
            more = len(report.buffers) - MAX_BUFFERS
            out.append(f'<tr><td class="dim">… {more} more</td></tr>')
        out.append("</tbody></table></details>")
    for title, data in (("configuration", report.config), ("environment", report.environment)):
        if data:
            text = json.dumps(data, indent=1, default=str, sort_keys=False)
            out.append(f"<details><summary>{title}</summary><pre>{esc(text)}</pre></details>")
    out.append("</section>")
    return "".join(out)
