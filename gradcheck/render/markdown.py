"""Markdown output, for pull-request comments and CI job summaries.

Made for a comment: the verdict and what fails come first, the long parts (loss terms, the
module tree, listed changes) fold into ``<details>``, tables are capped so a comment stays
far below GitHub's 65,536-character limit, and a hidden ``<!-- gradcheck -->`` marker lets
a CI job find its own earlier comment and update it instead of adding another.
"""

from __future__ import annotations

import html

from gradcheck.render.common import headline, human, needs_attention, notes, timeline
from gradcheck.report import RUN_STATUSES

MAX_ROWS = 100
MARKER = "<!-- gradcheck -->"
COMPARE_MARKER = "<!-- gradcheck compare -->"


def _cell(s) -> str:
    """Plain text in a table cell or line: HTML in a model's own names (a class name, a user
    string) must show as text in a PR comment, never render, and ``|`` must not split a cell."""
    text = html.escape(str(s if s is not None else ""), quote=False)
    return text.replace("|", "\\|").replace("\n", " ")


def _code(s) -> str:
    """A name as inline code: GitHub shows code spans literally; a backtick in the name gets
    a longer fence."""
    text = str(s).replace("\n", " ").replace("|", "\\|")
    fence = "``" if "`" in text else "`"
    return f"{fence} {text} {fence}" if fence == "``" else f"`{text}`"


def _details(w, summary: str) -> None:
    w(f"<details><summary>{summary}</summary>\n\n")


class MarkdownRenderer:
    def across(self, cmp, out) -> None:
        from gradcheck.render.parity import markdown_across

        markdown_across(cmp, out)

    def align(self, res, out) -> None:
        from gradcheck.render.parity import markdown_align

        markdown_align(res, out)

    def report(self, report, out, depth=None) -> None:
        depth = 2 if depth is None else depth  # markdown is always the full view
        v, s = report.verdict, report.summary
        w = out.write
        w(f"{MARKER}\n## gradcheck: {'✅' if v.passed else '❌'} {_cell(headline(report))}\n\n")
        for line in v.reasons:
            w(f"- **FAIL** {_cell(line)}\n")
        for line in v.warnings:
            w(f"- WARN {_cell(line)}\n")
        if v.reasons or v.warnings:
            w("\n")
        w("| status | params | values |\n|---|---:|---:|\n")
        for st in RUN_STATUSES:
            n = s.by_status.get(st, 0)
            if n:
                w(f"| {st} | {n} | {human(s.numel_by_status.get(st, 0))} |\n")
        w(f"| buffers | {s.buffers} | {human(s.buffer_numel)} |\n\n")
        att = needs_attention(report)
        if att:
            w(
                "### Needs attention\n\n| parameter | shape | status | steps | cause | detail |\n"
                "|---|---|---|---|---|---|\n"
            )
            for p in att[:MAX_ROWS]:
                w(
                    f"| {_code(p.name)} | {'x'.join(map(str, p.shape))} | {p.status} | "
                    f"`{timeline(p.steps)}` | {_cell(p.cause)} | {_cell(p.cause_detail)} |\n"
                )
            if len(att) > MAX_ROWS:
                w(f"\n… and {len(att) - MAX_ROWS} more (the JSON report lists all).\n")
            w("\n")
        if notes(report):
            w("".join(f"- note: {_cell(line)}\n" for line in notes(report)) + "\n")
        if report.loss_terms:
            _details(w, f"Loss terms ({len(report.loss_terms)})")
            w("| term | reaches params |\n|---|---:|\n")
            for t in report.loss_terms:
                w(f"| {_cell(t.name)} | {t.reaches} |\n")
            w("\n</details>\n\n")
        rows = [m for m in report.modules if m.depth <= depth] if depth > 0 else []
        if rows:
            _details(w, "Coverage by module")
            w("| module | covered/trainable | worst |\n|---|---:|---|\n")
            for m in rows[:MAX_ROWS]:
                w(
                    f"| {'&nbsp;' * 2 * m.depth}{_cell(m.module or '(model)')} | "
                    f"{m.covered}/{m.trainable} | {m.worst} |\n"
                )
            if len(rows) > MAX_ROWS:
                w(f"\n… and {len(rows) - MAX_ROWS} more modules.\n")
            w("\n</details>\n\n")
        w(f"**verdict: {v.result}**\n")

    def comparison(self, cmp, out) -> None:
        w = out.write
        w(f"{COMPARE_MARKER}\n## gradcheck compare: {'✅ ok' if cmp.ok else '❌ regression'}\n\n")
        w(
            f"{len(cmp.regressions)} regression(s), {len(cmp.allowed)} allowed; "
            f"{len(cmp.added)} added, {len(cmp.removed)} removed, {len(cmp.changed)} changed, "
            f"{cmp.unchanged} unchanged\n\n"
        )
        for warn in cmp.warnings:
            w(f"- WARN {_cell(warn)}\n")
        if cmp.warnings:
            w("\n")
        header = "| parameter | what | before | after | cause |\n|---|---|---|---|---|\n"

        def rows(changes):
            for c in changes[:MAX_ROWS]:
                kind = f"{c.kind} (allowed)" if c.allowed else c.kind
                w(
                    f"| {_code(c.name)} | {kind} | {_cell(c.before or '(new)')} | "
                    f"{_cell(c.after or '(removed)')} | {_cell(c.cause)} |\n"
                )
            if len(changes) > MAX_ROWS:
                w(f"\n… and {len(changes) - MAX_ROWS} more.\n")

        if cmp.regressions:
            w("### Regressions\n\n" + header)
            rows(cmp.regressions)
            w("\n")
        others = [
            c for c in cmp.added + cmp.changed + cmp.removed if not (c.regression and not c.allowed)
        ]
        if others:
            _details(w, f"Other changes ({len(others)})")
            w(header)
            rows(others)
            w("\n</details>\n")
