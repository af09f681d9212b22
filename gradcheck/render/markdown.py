"""Markdown output, for pull-request comments and CI job summaries."""

from __future__ import annotations

from gradcheck.render.common import attention, headline, human, notes, timeline
from gradcheck.report import RUN_STATUSES

MAX_ROWS = 100


def _cell(s) -> str:
    return str(s if s is not None else "").replace("|", "\\|").replace("\n", " ")


class MarkdownRenderer:
    def report(self, report, out, depth=None) -> None:
        depth = 2 if depth is None else depth   # markdown is always the full view
        v, s = report.verdict, report.summary
        w = out.write
        w(f"## gradcheck: {'✅' if v.passed else '❌'} {_cell(headline(report))}\n\n")
        w("| status | params | values |\n|---|---:|---:|\n")
        for st in RUN_STATUSES:
            n = s.get("by_status", {}).get(st, 0)
            if n:
                w(f"| {st} | {n} | {human(s.get('numel_by_status', {}).get(st, 0))} |\n")
        w(f"| buffers | {s.get('buffers', 0)} | {human(s.get('buffer_numel', 0))} |\n\n")
        att = attention(report)
        if att:
            w("### Needs attention\n\n| parameter | shape | status | steps | cause | detail |\n"
              "|---|---|---|---|---|---|\n")
            for p in att[:MAX_ROWS]:
                w(f"| `{p.name}` | {'x'.join(map(str, p.shape))} | {p.status} | "
                  f"`{timeline(p.steps)}` | {_cell(p.cause)} | {_cell(p.cause_detail)} |\n")
            if len(att) > MAX_ROWS:
                w(f"\n… and {len(att) - MAX_ROWS} more.\n")
            w("\n")
        if notes(report):
            w("".join(f"- note: {_cell(line)}\n" for line in notes(report)) + "\n")
        if report.loss_terms:
            w("### Loss terms\n\n| term | reaches params |\n|---|---:|\n")
            for t in report.loss_terms:
                w(f"| {t['name']} | {t.get('reaches')} |\n")
            w("\n")
        if report.modules and depth > 0:
            w("### Coverage by module\n\n| module | covered/trainable | worst |\n|---|---:|---|\n")
            for m in report.modules:
                if m["depth"] <= depth:
                    w(f"| {'&nbsp;' * 2 * m['depth']}{m['module'] or '(model)'} | "
                      f"{m['covered']}/{m['trainable']} | {m['worst']} |\n")
            w("\n")
        for line in v.reasons:
            w(f"- **FAIL** {_cell(line)}\n")
        for line in v.warnings:
            w(f"- WARN {_cell(line)}\n")
        w(f"\n**verdict: {v.result}**\n")

    def comparison(self, cmp, out) -> None:
        w = out.write
        w(f"## gradcheck compare: {'✅ ok' if cmp.ok else '❌ regression'}\n\n")
        for warn in cmp.warnings:
            w(f"- WARN {_cell(warn)}\n")
        rows = cmp.added + cmp.changed + cmp.removed
        if rows:
            w("\n| parameter | before | after | |\n|---|---|---|---|\n")
            for c in rows:
                tag = "**REGRESSION**" if c.regression and not c.allowed else (
                    "allowed" if c.allowed else "")
                w(f"| `{c.name}` | {c.before or '(new)'} | {c.after or '(removed)'} | {tag} |\n")
        w(f"\n{len(cmp.added)} added, {len(cmp.removed)} removed, {len(cmp.changed)} changed, "
          f"{cmp.unchanged} unchanged; {len(cmp.regressions)} regression(s)\n")
