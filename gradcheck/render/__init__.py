"""Output formats behind one interface: ``get_renderer(fmt)`` -> an object with
``report(report, out, depth)`` and ``comparison(cmp, out)``, writing to a text stream.

``table`` is for people (rich), ``json`` for machines, ``markdown`` for pull requests and CI
summaries.  The HTML page (``--html``) is a separate, self-contained file: see
:mod:`gradcheck.render.html`.
"""

from __future__ import annotations

FORMATS = ("table", "json", "markdown")


def get_renderer(fmt: str):
    if fmt == "table":
        from gradcheck.render.table import TableRenderer

        return TableRenderer()
    if fmt == "json":
        from gradcheck.render.jsonfmt import JsonRenderer

        return JsonRenderer()
    if fmt == "markdown":
        from gradcheck.render.markdown import MarkdownRenderer

        return MarkdownRenderer()
    raise ValueError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")
