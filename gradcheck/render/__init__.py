"""Output formats behind one interface, found through one registry.

A renderer is an object with ``report(report, out, depth=2)`` and, for each other output it
can show, ``comparison(cmp, out)`` (``compare``), ``across(cmp, out)`` (``compare --across``)
and ``align(res, out)`` (``align``), each writing text to a stream: the Protocols are in
:mod:`gradcheck.render.interface`.  Formats register by name::

    from gradcheck import render

    @render.register("csv")
    class CsvRenderer:
        def report(self, report, out, depth=2): ...

Built-in formats are registered here by import path so that ``gradcheck --help`` does not
import them all: ``table`` for people (rich), ``json`` for machines, ``markdown`` for
pull-request comments and CI job summaries, ``junit`` for CI test reports, and ``html``
for the self-contained page (also what ``--html FILE`` writes).  ``FORMATS`` lists the names.
"""

from __future__ import annotations

import importlib
import io

_REGISTRY: dict = {}  # name -> renderer class, or "module:Class" until first use


def register(name: str, renderer: type | str | None = None):
    """Register ``renderer`` (a class, or ``"module:Class"`` imported on first use) under
    ``name``; without ``renderer``, a class decorator."""

    def add(cls):
        _REGISTRY[name] = cls
        return cls

    return add if renderer is None else add(renderer)


register("table", "gradcheck.render.table:TableRenderer")
register("json", "gradcheck.render.jsonfmt:JsonRenderer")
register("markdown", "gradcheck.render.markdown:MarkdownRenderer")
register("junit", "gradcheck.render.junit:JunitRenderer")
register("html", "gradcheck.render.html:HtmlRenderer")


def formats() -> tuple:
    return tuple(_REGISTRY)


FORMATS = formats()  # the names known at import time (what the CLI offers)


def _resolve(name: str) -> type:
    cls = _REGISTRY[name]
    if isinstance(cls, str):
        module, _, attr = cls.partition(":")
        cls = _REGISTRY[name] = getattr(importlib.import_module(module), attr)
    return cls


def get_renderer(fmt: str):
    if fmt not in _REGISTRY:
        raise ValueError(f"unknown format {fmt!r}: choose one of {', '.join(formats())}")
    return _resolve(fmt)()


def can_render(fmt: str, what: str) -> bool:
    """Whether the format can show ``what``: one of
    :data:`gradcheck.render.interface.OUTPUTS` (report, comparison, across, align)."""
    from gradcheck.render.interface import OUTPUTS

    if what not in OUTPUTS:
        raise ValueError(f"unknown output {what!r}: one of {', '.join(OUTPUTS)}")
    return callable(getattr(_resolve(fmt), what, None))


def can_compare(fmt: str) -> bool:
    """Whether the format can show a comparison of two reports."""
    return can_render(fmt, "comparison")


def renderers_for(what: str) -> tuple:
    """The formats that can show ``what``."""
    return tuple(f for f in formats() if can_render(f, what))


def render_text(fmt: str, what: str, *args, **kwargs) -> str:
    """Render to a string: ``render_text("html", "report", report)``."""
    out = io.StringIO()
    getattr(get_renderer(fmt), what)(*args, out, **kwargs)
    return out.getvalue()


def write_file(fmt: str, obj, path, depth: int = 2, what: str = "report"):
    """Render ``obj`` (a report, or what ``what`` names) in ``fmt`` and write it to ``path``
    atomically."""
    from gradcheck.report import write_atomic

    kwargs = {"depth": depth} if what == "report" else {}
    return write_atomic(path, render_text(fmt, what, obj, **kwargs))
