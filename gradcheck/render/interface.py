"""What a format renders, as Protocols (in the spirit of pip-audit's ``_format/interface.py``).

A format is one class in the registry (:mod:`gradcheck.render`).  It renders a report, and
whichever of the other outputs it can show: a comparison of two reports (``compare``), a
comparison of a port with its original (``compare --across``) and an alignment (``align``).
Each output is one method writing text to a stream; :func:`gradcheck.render.can_render` asks
whether a format has it, so the command line can refuse a format in one line.
"""

from __future__ import annotations

from typing import IO, TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from gradcheck.compare import Comparison
    from gradcheck.parity.across import AcrossComparison
    from gradcheck.parity.alignment import Alignment
    from gradcheck.report import Report


@runtime_checkable
class Renderer(Protocol):
    """Every format renders a report (``depth``: how much of it; ``None`` the format's own)."""

    def report(self, report: Report, out: IO[str], depth: int | None = 2) -> None: ...


@runtime_checkable
class ComparisonRenderer(Protocol):
    """``gradcheck compare BEFORE AFTER``."""

    def comparison(self, cmp: Comparison, out: IO[str]) -> None: ...


@runtime_checkable
class AcrossRenderer(Protocol):
    """``gradcheck compare --across PORT ORIGINAL``."""

    def across(self, cmp: AcrossComparison, out: IO[str]) -> None: ...


@runtime_checkable
class AlignRenderer(Protocol):
    """``gradcheck align``."""

    def align(self, res: Alignment, out: IO[str]) -> None: ...


# output name -> its protocol; the name is also the method a format implements
OUTPUTS: dict = {
    "report": Renderer,
    "comparison": ComparisonRenderer,
    "across": AcrossRenderer,
    "align": AlignRenderer,
}

# how the command line names an output a format cannot show
DESCRIBED = {
    "report": "a report",
    "comparison": "a comparison",
    "across": "a comparison across frameworks",
    "align": "an alignment",
}
