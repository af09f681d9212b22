"""One self-contained HTML page for a report: header and verdict, causes, gradient-flow charts,
loss terms, status changes over steps and the module tree with every parameter.

No external assets: the page's CSS and a little vanilla JS are package data
(``render/assets/report.css``, ``report.js``) inlined into the page, the charts are inline SVG,
so the file works offline when opened from disk or attached to a CI run.  The script builds
the module tree from data the page embeds once (:mod:`~gradcheck.render.html_tree`), a module
when it is opened, and runs its filter box; every other section is plain HTML and reads
without it.  All report text goes through one escape helper
(:func:`gradcheck.render.html_parts.esc`, :func:`html.escape`; the tree's JSON through
:func:`~gradcheck.render.html_tree.embed_json` and the script's own ``esc``).
The page is about 400 KB for Gold-YOLO-S (458 tensors), under 5 MB at 9,000 tensors.

Where things live: :mod:`~gradcheck.render.html_parts` (escaping, colours, numbers, badges),
:mod:`~gradcheck.render.html_svg` (chart geometry), :mod:`~gradcheck.render.html_sections`
(the text sections), :mod:`~gradcheck.render.html_tree` (the module tree's data); this module
assembles the page.

Numbers may be ``None``, floats (NaN/Inf included) or the strings ``"nan"``/``"inf"``/``"-inf"``
that the JSON writer uses for non-finite floats; every chart and cell copes with all of them.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

from gradcheck.enums import Status
from gradcheck.render.html_parts import _color, esc
from gradcheck.render.html_sections import _causes, _extras, _header, _terms, _timeline_section
from gradcheck.render.html_svg import _flow_section
from gradcheck.render.html_tree import _tree
from gradcheck.report import RUN_STATUSES, write_atomic

__all__ = ["page", "render_html", "write_html"]

_NAV = (
    ("summary", "Summary"),
    ("causes", "Causes"),
    ("flow", "Gradient flow"),
    ("terms", "Loss"),
    ("timeline", "Over steps"),
    ("modules", "Modules"),
    ("more", "Run details"),
)


@cache
def _asset(name: str) -> str:
    """A file of ``gradcheck/render/assets`` (package data: present in an installed wheel)."""
    return resources.files("gradcheck.render").joinpath("assets").joinpath(name).read_text("utf-8")


def _css() -> str:
    """The stylesheet, plus the status colours, which are shared with the terminal view."""
    status_css = "".join(
        f".s-{s}{{background:{_color(s)}}}.t-{s}{{color:{_color(s)}}}"
        f"i.sq.t-{s}{{background:{_color(s)};color:#fff}}"
        for s in (*RUN_STATUSES, Status.NONZERO)
    )
    return (
        "\n"
        + _asset("report.css")
        + status_css
        + (
            f".mk-missing{{fill:{_color(Status.MISSING)}}}.mk-zero{{fill:{_color(Status.ZERO)}}}"
            f".mk-frozen{{fill:{_color(Status.FROZEN)}}}.bar{{fill:{_color(Status.COVERED)}}}"
            f".bnan{{fill:{_color(Status.NONFINITE)};opacity:.85}}"
            f".bar.vanish{{fill:{_color(Status.ZERO)}}}.bar.explode{{fill:{_color(Status.NONFINITE)}}}"
        )
    )


def page(*, title: str, hero: str, nav: str, body: str, footer: str, css: str = "") -> str:
    """The one page template: every HTML page gradcheck writes (a report, an alignment) is
    this shell with the shared stylesheet and script, its own ``hero`` (the header block,
    verdict first), ``nav`` links, ``body`` sections and ``footer`` text, all already
    escaped HTML except ``title`` and ``footer``; ``css``: a page's own extra rules."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{_css()}{css}</style></head><body>"
        + hero
        + f"<nav>{nav}</nav><main>"
        + body
        + f"</main><footer>{esc(footer)}</footer><script>\n{_asset('report.js')}</script>"
        "</body></html>\n"
    )


def nav_links(body: str, sections) -> str:
    """The page's navigation: a link per (id, label) whose section the body holds; the
    first one (the summary, in the header) always."""
    return "".join(
        f'<a href="#{sid}">{label}</a>'
        for i, (sid, label) in enumerate(sections)
        if i == 0 or f'id="{sid}"' in body
    )


def render_html(report) -> str:
    """The whole page as one string (no external references)."""
    from gradcheck import __version__

    v = report.verdict
    sections = [
        _causes(report),
        _flow_section(report),
        _terms(report),
        _timeline_section(report),
        _tree(report),
        _extras(report),
    ]
    body = "".join(sections)
    head = _header(report)
    hero_end = head.index("</header>") + len("</header>")
    # the header's summary cards follow the navigation, inside <main>
    return page(
        title=f"gradcheck: {report.config.get('model', '?')} {v.result.upper()}",
        hero=head[:hero_end],
        nav=nav_links(body, _NAV),
        body=head[hero_end:] + body,
        footer=f"gradcheck {__version__} · schema {report.schema_version}",
    )


def write_html(report, path) -> Path:
    """Render, then write atomically: ``path`` keeps its old content if anything fails."""
    return write_atomic(path, render_html(report))


class HtmlRenderer:
    """The page as a format of the registry (``--format html``; ``--html FILE`` writes it)."""

    def report(self, report, out, depth: int = 2) -> None:
        out.write(render_html(report))

    def align(self, res, out) -> None:
        from gradcheck.render.parity import align_page

        out.write(align_page(res))
