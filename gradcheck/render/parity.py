"""Drawing the port-parity outputs (``compare --across``, ``align``): their lines and
sections, the terminal and markdown views and the ``align --html`` page.  The formats of the
one registry (:mod:`gradcheck.render`) call these from their ``across``/``align`` methods
(:mod:`gradcheck.render.interface`).  Data stays in :mod:`gradcheck.parity.across` and
:mod:`gradcheck.parity.align`; only drawing here.
"""

from __future__ import annotations

import math

from gradcheck.parity.records import LossRow, LossTerm

MAX_ROWS = 40


def _f(x, spec=".2e") -> str:
    if x is None:
        return "-"
    if isinstance(x, float) and math.isinf(x):
        return "inf"
    return format(x, spec) if isinstance(x, (int, float)) else str(x)


def _verdict(row: LossRow | LossTerm) -> str:
    if not row.ok:
        return "DIFFERS"
    return "ok (agrees in float64)" if row.explained else "ok"


def across_lines(cmp) -> list:
    """(heading, [rows]) sections of an across comparison, shared by text and markdown."""
    sections = []
    if cmp.shape_mismatch:
        sections.append(
            (
                "shape mismatch",
                [
                    f"{s.name} {s.port} vs {s.original_name} {s.original}"
                    + (" (transposed)" if s.transposed else "")
                    for s in cmp.shape_mismatch
                ],
            )
        )
    if cmp.lost:
        sections.append(
            (
                "covered in the original, not in the port",
                [
                    f"{p.name}: {p.port_status}"
                    + (f" ({p.port_cause})" if p.port_cause else "")
                    + f" -- original {p.original_name}: {p.original_status}"
                    for p in cmp.lost
                ],
            )
        )
    if cmp.gained:
        sections.append(
            (
                "covered in the port, not in the original",
                [
                    f"{p.name}: {p.port_status} -- original {p.original_name}: {p.original_status}"
                    + (f" ({p.original_cause})" if p.original_cause else "")
                    for p in cmp.gained
                ],
            )
        )
    if cmp.frozen_diff:
        sections.append(
            (
                "frozen set differs",
                [
                    f"{d.name}: {d.port} in the port, {d.original} in the original"
                    for d in cmp.frozen_diff
                ],
            )
        )
    if cmp.optimizer_diff:
        sections.append(
            (
                "optimizer membership differs",
                [
                    f"{d.name}: {'in' if d.port else 'not in'} the port's optimizer, "
                    f"{'in' if d.original else 'not in'} the original's"
                    for d in cmp.optimizer_diff
                ],
            )
        )
    if cmp.original_only:
        sections.append(("in the original only", list(cmp.original_only)))
    if cmp.port_only:
        sections.append(("in the port only", list(cmp.port_only)))
    buffers = [f"original only: {b}" for b in cmp.buffers_original_only] + [
        f"port only: {b}" for b in cmp.buffers_port_only
    ]
    if buffers:
        sections.append(("buffers on one side (not counted as differences)", buffers))
    return sections


def across_headline(cmp) -> str:
    word = "agree" if cmp.ok else f"{cmp.differences} difference(s)"
    return (
        f"across: {word} -- {cmp.paired} parameters paired, port {cmp.port_model} "
        f"({cmp.port_framework}) vs original {cmp.original_model} ({cmp.original_framework});"
        f" {cmp.known_torch_only} torch-only buffer(s) known"
    )


def align_headline(res) -> str:
    s = res.summary()
    fd = res.first_divergence
    return (
        f"align: {res.verdict.result.replace('_', ' ')} -- {s.params} parameters, "
        f"gradients median rel {_f(s.grad_rel_median)} (noise floor "
        f"{_f(s.noise_floor_median)}), {s.grad_not_ok} beyond tolerance"
        + (f" ({s.explained_by_float64} more agree in float64)" if s.explained_by_float64 else "")
        + "; "
        + (f"first divergence {fd.port_module or '<root>'}" if fd else "no diverging module")
    )


def align_sections(res) -> list:
    out = [
        (
            "verdict",
            [res.verdict.result]
            + list(res.verdict.reasons)
            + [f"warning: {w}" for w in res.verdict.warnings],
        )
    ]
    k = res.keys
    out.append(
        (
            "weights",
            [
                f"{k.copied} tensors copied from the original; "
                f"{len(k.shape_mismatch)} shape mismatch(es), "
                f"{len(k.original_only)} original-only, {len(k.port_only)} "
                f"port-only, {k.known_torch_only} torch-only buffers skipped"
            ],
        )
    )
    out.append(("loss", _loss_rows(res.loss)))
    mods = [m for m in res.modules if m.ok is False][:MAX_ROWS]
    if mods:
        out.append(
            (
                "modules beyond tolerance (execution order)",
                [
                    f"{m.module} [{m.type}] call {m.call}: "
                    + (m.note or f"rel {_f(m.rel)} floor {_f(m.noise_floor)}")
                    for m in mods
                ],
            )
        )
    out += _float64_sections(res)
    bad = [p for p in res.params if not p.ok or p.value_ok is False][:MAX_ROWS]
    if bad:
        out.append(
            (
                "parameters beyond tolerance",
                [
                    f"{p.name}: grad rel {_f(p.grad_rel)} floor {_f(p.noise_floor)}"
                    + (
                        f", update rel {_f(p.update_rel)} floor {_f(p.update_floor)}"
                        if p.update_rel is not None
                        else ""
                    )
                    + (f"; in float64 {_f(p.grad_rel_f64)}" if p.grad_rel_f64 is not None else "")
                    + (f" -- {p.note}" if p.note else "")
                    for p in bad
                ],
            )
        )
    return out


def _loss_rows(lo) -> list:
    """The loss, port against original, then each of its terms."""
    rows = [
        f"loss: port {lo.port[0]:.7g} original {lo.original[0]:.7g} rel "
        f"{_f(lo.rel)} floor {_f(lo.noise_floor)} {_verdict(lo)}"
    ]
    rows += [
        f"  {t.name}: port {_f(t.port, '.7g')} original "
        f"{_f(t.original, '.7g')} rel {_f(t.rel)} "
        f"{_verdict(t)}"
        for t in lo.terms
    ]
    return rows


def _float64_sections(res) -> list:
    """The port's float64 rerun and the rows it explained; none when there was no rerun."""
    f = res.float64_rerun
    if f is None:
        return []
    from gradcheck.parity.float64 import describe_leak

    fd = res.first_divergence_f64
    out = [
        (
            "port rerun in float64 (step 1, against the original in float64)",
            [
                f"{f.explained} row(s) beyond float32 noise explained (agree in float64), "
                f"{f.float64_only} differ only in float64; {f.seconds:.1f} s",
                f"loss: port {_f(res.loss.port_f64, '.10g')} rel {_f(res.loss.rel_f64)}",
                "first module that differs in float64: "
                + (f"{fd.port_module or '<root>'} [{fd.type}] rel {_f(fd.rel)}" if fd else "none"),
            ]
            + ([f"failed: {f.error}"] if f.error else [])
            + [f"float32 leak: {describe_leak(k)}" for k in f.float32_leaks],
        )
    ]
    expl = [p for p in res.params if p.explained][:MAX_ROWS]
    if expl:
        out.append(
            (
                "explained by float64 (float32 noise, amplified)",
                [
                    f"{p.name}: grad rel {_f(p.grad_rel)} floor {_f(p.noise_floor)}; "
                    f"in float64 {_f(p.grad_rel_f64)}"
                    for p in expl
                ],
            )
        )
    return out


def text_across(cmp, out) -> None:
    """``compare --across`` for the terminal (the ``table`` format)."""
    out.write(across_headline(cmp) + "\n")
    for head, rows in across_lines(cmp):
        out.write(f"\n{head} ({len(rows)}):\n")
        out.write("".join(f"  {r}\n" for r in rows[:MAX_ROWS]))
        if len(rows) > MAX_ROWS:
            out.write(f"  ... and {len(rows) - MAX_ROWS} more\n")
    for w in cmp.warnings:
        out.write(f"warning: {w}\n")


def text_align(res, out) -> None:
    """``align`` for the terminal (the ``table`` format)."""
    out.write(align_headline(res) + "\n")
    for head, rows in align_sections(res):
        out.write(f"\n{head}:\n" + "".join(f"  {r}\n" for r in rows))


def markdown_across(cmp, out) -> None:
    out.write(f"## gradcheck {'✅' if cmp.ok else '❌'} {across_headline(cmp)}\n\n")
    for head, rows in across_lines(cmp):
        out.write(f"### {head} ({len(rows)})\n\n")
        out.write("".join(f"- `{r}`\n" for r in rows[:MAX_ROWS]) + "\n")


def markdown_align(res, out) -> None:
    out.write(f"## gradcheck {'✅' if res.aligned else '❌'} {align_headline(res)}\n\n")
    for head, rows in align_sections(res):
        out.write(f"### {head}\n\n" + "".join(f"- {r}\n" for r in rows) + "\n")


def _table(headings: tuple, rows: list) -> str:
    """An HTML table; ``rows``: (bad, [cell HTML, ...])."""
    head = "".join(f"<th>{h}</th>" for h in headings)
    body = "".join(
        f"<tr{' class=bad' if bad else ''}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"
        for bad, cells in rows
    )
    return f"<table class=al><tr>{head}</tr>{body}</table>"


def align_page(res) -> str:
    """The self-contained page of ``align --html``: verdict, its sections, every module and
    parameter row, through the one page template (:func:`gradcheck.render.html.page`)."""
    from gradcheck import __version__
    from gradcheck.render.html import nav_links, page
    from gradcheck.render.html_parts import esc

    e = esc
    verdict = "pass" if res.aligned else "fail"
    hero = (
        f'<header class="hero {verdict}" id="summary"><div class="vd">'
        f'{e(res.verdict.result.replace("_", " ").upper())}</div><div class="ht">'
        f'<h1>align</h1><div class="hl">{e(align_headline(res))}</div></div></header>'
    )
    sections = "".join(
        f"<h3>{e(h)}</h3><ul>" + "".join(f"<li>{e(r)}</li>" for r in rows) + "</ul>"
        for h, rows in align_sections(res)
    )
    modules = _table(
        ("module", "type", "call", "rel", "noise floor", "rel in float64", "note"),
        [
            (
                m.ok is False,
                [
                    e(m.module),
                    e(m.type),
                    e(m.call),
                    _f(m.rel),
                    _f(m.noise_floor),
                    _f(m.rel_f64),
                    e(m.note or ""),
                ],
            )
            for m in res.modules
        ],
    )
    params = _table(
        ("port", "original", "grad rel", "noise floor", "grad rel in float64", "value rel", "note"),
        [
            (
                not p.ok or p.value_ok is False,
                [
                    e(p.name),
                    e(p.original_name),
                    _f(p.grad_rel),
                    _f(p.noise_floor),
                    _f(p.grad_rel_f64),
                    _f(p.value_rel),
                    e(p.note or ""),
                ],
            )
            for p in res.params
        ],
    )
    body = (
        f'<section id="verdict"><h2>Verdict</h2>{sections}</section>'
        f'<section id="modules"><h2>Modules (original execution order)</h2>{modules}'
        f'</section><section id="params"><h2>Parameters</h2>{params}</section>'
    )
    return page(
        title=f"gradcheck align: {res.verdict.result}",
        hero=hero,
        nav=nav_links(
            body,
            (
                ("summary", "Summary"),
                ("verdict", "Verdict"),
                ("modules", "Modules"),
                ("params", "Parameters"),
            ),
        ),
        body=body,
        footer=f"gradcheck {__version__} · align",
        css="table.al td{font-family:monospace;font-size:13px}table.al tr.bad{background:#fff0f0}",
    )
