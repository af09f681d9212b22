"""The people format, drawn with rich.

By default one screen: what ran (and where each setting came from), the verdict and counts,
the findings grouped by cause with the first few names and the fix, notes, and the command
to run next.  With a ``depth`` (``--verbose`` / ``--depth``) every table: what needs
attention grouped by module, loss-term reach, status changes over steps, a coverage tree.
"""

from __future__ import annotations

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from gradcheck.enums import Severity
from gradcheck.render.common import (
    STATUS_STYLE,
    by_module,
    changing,
    first_covered,
    headline,
    human,
    needs_attention,
    notes,
    settings_line,
    timeline,
    verdict_line,
)
from gradcheck.report import RUN_STATUSES
from gradcheck.summary import counted, group_line, next_command

MAX_ROWS = 60
SHOWN_NAMES = 3  # names per finding group on the one-screen view
MAX_NOTES = 4


def _console(out) -> Console:
    tty = hasattr(out, "isatty") and out.isatty()
    return Console(
        file=out, width=None if tty else 140, no_color=not tty, highlight=False, soft_wrap=False
    )


def _status(s: str | None) -> Text:
    return Text(str(s), style=STATUS_STYLE.get(str(s), ""))


class TableRenderer:
    def across(self, cmp, out) -> None:
        from gradcheck.render.parity import text_across

        text_across(cmp, out)

    def align(self, res, out) -> None:
        from gradcheck.render.parity import text_align

        text_align(res, out)

    def report(self, report, out, depth=None) -> None:
        """``depth`` None: the one-screen summary; a number: every table, the module tree
        that deep."""
        con = _console(out)
        if depth is None:
            self.screen(report, con)
            return
        v = report.verdict
        con.print(Text(headline(report), style="bold green" if v.passed else "bold red"))
        con.print(self._counts(report))
        att = needs_attention(report)
        if att:
            con.print(self._attention(att))
        for line in notes(report):
            con.print(Text(f"note  {line}", style="dim"))
        if report.loss_terms:
            con.print(self._terms(report))
        ch = changing(report)
        if ch and len(report.steps) > 1:
            con.print(self._timeline(ch))
        if report.modules and depth > 0:
            con.print(self._tree(report, depth))
        if report.warnings:
            agree = sum(1 for w in report.warnings if w.agrees)
            con.print(
                f"Jittor warned {len(report.warnings)} time(s) about missing gradients; "
                f"{agree} agree with the probe (Jittor warns once per name per process)."
            )
        for line in v.reasons:
            con.print(Text(f"FAIL  {line}", style="red"))
        for line in v.warnings:
            con.print(Text(f"WARN  {line}", style="yellow"))
        con.print(Text(f"verdict: {v.result}", style="bold green" if v.passed else "bold red"))

    def screen(self, report, con) -> None:
        v = report.verdict
        style = "bold green" if v.passed else "bold red"
        con.print(Text(settings_line(report), style="bold"))
        con.print(Text(verdict_line(report), style=style))
        by = report.summary.by_status
        con.print("by status: " + ", ".join(f"{by[st]} {st}" for st in RUN_STATUSES if by.get(st)))
        grew = first_covered(report)
        if len(report.steps) > 1 and grew:
            con.print(f"first covered on {grew}")
        if report.loss_terms:
            con.print(
                "loss terms reach: " + ", ".join(f"{t.name} {t.reaches}" for t in report.loss_terms)
            )
        grouped = set()
        for g in v.groups:
            if g.severity == Severity.ALLOWED:
                continue
            grouped.add(group_line(g))
            self._group(con, g)
        for line in v.reasons:  # a report from before findings were grouped
            if line not in grouped:
                con.print(Text(f"FAIL  {line}", style="red"))
        for line in v.warnings:
            if line not in grouped:
                con.print(Text(f"WARN  {line}", style="yellow"))
        lines = [
            f"{g.count} parameter(s) allowed to stay uncovered ({g.finding}): "
            f"{g.why}, e.g. {g.names[0]}"
            for g in v.groups
            if g.severity == Severity.ALLOWED
        ]
        lines += notes(report)
        for line in lines[:MAX_NOTES]:
            con.print(Text(f"note  {line}", style="dim"))
        if len(lines) > MAX_NOTES:
            con.print(Text(f"note  ... {len(lines) - MAX_NOTES} more (--verbose)", style="dim"))
        nxt = next_command(report)
        if nxt:
            con.print(Text(f"next: {nxt}", style="bold"))
        line = Text(f"verdict: {v.result}", style=style)
        line.append("   every parameter: --verbose, --format json, --html FILE", style="dim")
        con.print(line)

    def _group(self, con, g) -> None:
        fail = g.severity == Severity.FAIL
        n = g.count
        con.print(
            Text(
                f"{'FAIL' if fail else 'WARN'}  {g.finding}: {counted(g)}: {g.cause}, {g.why}",
                style="red" if fail else "yellow",
            )
        )
        names = ", ".join(g.names[:SHOWN_NAMES])
        if n > SHOWN_NAMES:
            names += f", ... (+{n - SHOWN_NAMES})"
        con.print(Text(f"      {names}", style="dim"))
        if g.fix:
            con.print(f"      fix: {g.fix}")

    def _counts(self, report) -> Table:
        s = report.summary
        t = Table(title="parameters by status", title_justify="left", show_edge=False)
        t.add_column("status")
        t.add_column("params", justify="right")
        t.add_column("values", justify="right")
        for st in RUN_STATUSES:
            n = s.by_status.get(st, 0)
            if n:
                t.add_row(_status(st), str(n), human(s.numel_by_status.get(st, 0)))
        t.add_row("buffers", str(s.buffers), human(s.buffer_numel))
        return t

    def _attention(self, params: list) -> Table:
        t = Table(
            title="needs attention (steps: + non-zero, 0 zero, - missing, ! non-finite, f frozen)",
            title_justify="left",
            show_lines=False,
        )
        for col in ("parameter", "shape", "status", "steps", "cause", "detail"):
            t.add_column(col, overflow="fold")
        shown = 0
        for module, group in by_module(params).items():
            if shown >= MAX_ROWS:
                break
            t.add_section()
            t.add_row(Text(module, style="bold"), "", "", "", "", "")
            for p in group:
                if shown >= MAX_ROWS:
                    break
                shown += 1
                t.add_row(
                    "  " + p.name.rsplit(".", 1)[-1],
                    "x".join(map(str, p.shape)),
                    _status(p.status),
                    timeline(p.steps),
                    p.cause or "",
                    p.cause_detail or "",
                )
        if len(params) > shown:
            t.caption = f"... and {len(params) - shown} more (see --format json)"
        return t

    def _terms(self, report) -> Table | Group:
        t = Table(title="loss terms", title_justify="left", show_edge=False)
        t.add_column("term")
        t.add_column("reaches params", justify="right")
        t.add_column("values per step")
        for term in report.loss_terms:
            dead = term.reaches == 0
            vals = ", ".join(
                f"{v:.4g}" if isinstance(v, (int, float)) else str(v) for v in term.values
            )
            t.add_row(
                Text(term.name, style="red" if dead else ""),
                str(term.reaches),
                vals + ("  (reaches nothing)" if dead else ""),
            )
        # per-module reach: which terms reach each top-level module
        mods: dict = {}
        for p in report.params:
            if p.reached_by is None:
                continue
            key = ".".join(p.name.split(".")[:2])
            mods.setdefault(key, set()).update(p.reached_by)
        if mods:
            r = Table(title="terms reaching each module", title_justify="left", show_edge=False)
            r.add_column("module")
            r.add_column("reached by")
            for key, terms in mods.items():
                r.add_row(key, "+".join(sorted(terms)) or Text("nothing", style="red"))
            return Group(t, r)
        return t

    def _timeline(self, params: list) -> Table:
        t = Table(
            title=f"status changes over steps ({len(params)} parameters)",
            title_justify="left",
            show_edge=False,
        )
        t.add_column("module")
        t.add_column("params", justify="right")
        t.add_column("pattern")
        patterns: dict = {}
        for p in params:  # grouped two levels deep: a timeline per block, not per conv
            key = (".".join(p.module.split(".")[:2]), timeline(p.steps))
            patterns[key] = patterns.get(key, 0) + 1
        for i, ((module, pattern), n) in enumerate(patterns.items()):
            if i >= MAX_ROWS:
                t.caption = f"... {len(patterns) - MAX_ROWS} more groups"
                break
            t.add_row(module or "<root>", str(n), pattern)
        return t

    def _tree(self, report, depth: int) -> Tree:
        rows = [m for m in report.modules if m.depth <= depth]
        root = Tree(Text("coverage by module (covered/trainable, worst status)", style="bold"))
        nodes: dict[str, Tree] = {}
        for m in rows:
            label = Text(f"{m.module or '<model>'}  {m.covered}/{m.trainable}  ")
            label.append(m.worst, style=STATUS_STYLE.get(m.worst, ""))
            parent_key = (
                m.module.rsplit(".", 1)[0] if "." in m.module else ("" if m.module else None)
            )
            parent = nodes.get(parent_key, root) if parent_key is not None else root
            nodes[m.module] = parent.add(label)
        return root

    def comparison(self, cmp, out) -> None:
        con = _console(out)
        for w in cmp.warnings:
            con.print(Text(f"WARN  {w}", style="yellow"))
        t = Table(title=f"{cmp.before_model} -> {cmp.after_model}", title_justify="left")
        for col in ("parameter", "before", "after", "", "cause"):
            t.add_column(col, overflow="fold")
        for c in cmp.added + cmp.changed + cmp.removed:
            tag = "REGRESSION" if c.regression and not c.allowed else "allowed" if c.allowed else ""
            tag = f"{tag}: {c.kind}" if tag else c.kind
            t.add_row(
                c.name,
                _status(c.before or "(new)"),
                _status(c.after or "(removed)"),
                Text(tag, style="bold red" if tag.startswith("REGRESSION") else "dim"),
                c.cause or "",
            )
        if t.row_count:
            con.print(t)
        con.print(
            f"{len(cmp.added)} added, {len(cmp.removed)} removed, "
            f"{len(cmp.changed)} changed, "
            f"{cmp.unchanged} unchanged; {len(cmp.regressions)} regression(s), "
            f"{len(cmp.allowed)} allowed"
        )
        con.print(
            Text(
                "compare: " + ("ok" if cmp.ok else "REGRESSION"),
                style="bold green" if cmp.ok else "bold red",
            )
        )
