"""Split Jittor's stderr into compile-progress updates and everything else.

Jittor's C++ core writes ``Compiling Operators(i/n) used: 4.3s eta: 5.8s \\r`` (and, on a
fresh cache, ``Compiling jittor_core(i/n) ...``) to file descriptor 2.  :class:`ProgressParser`
is the pure logic behind :func:`gradcheck.progress.compile_progress`: no fds, no display.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["ProgressParser", "PROGRESS_RE"]

#: ``Compiling Operators(3/7) used: 4.33s eta: 5.77s`` (C++) and
#: ``Compiling jittor_core(12/40) used: 3.100s eta: 7.000s`` (Python, fresh cache).
PROGRESS_RE = re.compile(
    rb"^Compiling (?P<what>[\w.\-]+)\((?P<i>\d+)/(?P<n>\d+)\) used: *(?P<used>[0-9.eE+\-]+)s"
    rb" eta: *(?P<eta>[0-9.eE+\-]+)s *$"
)


@dataclass
class _Batch:
    """One compile batch as its progress lines announce it."""

    what: str
    i: int = 0
    n: int = 0
    used: float = 0.0


class ProgressParser:
    """Stream splitter: feed raw stderr bytes, get callbacks for progress updates and
    for pass-through bytes.  Pure logic, no fds; the output is byte-for-byte the input
    minus the progress lines (and the bare newlines Jittor writes around them)."""

    def __init__(self, on_progress, on_text, on_batch_end):
        self._buf = b""
        self._on_progress = on_progress  # (what, i, n, used, eta)
        self._on_text = on_text  # (bytes)
        self._on_batch_end = on_batch_end  # (_Batch)
        self._pending_nl = False  # a bare "\n" held back: maybe Jittor's lead-in
        self._batch: _Batch | None = None
        self._expect_nl = False  # Jittor's std::endl after a finished batch

    def feed(self, data: bytes) -> None:
        self._buf += data
        while True:
            cut = min(
                (k for k in (self._buf.find(b"\r"), self._buf.find(b"\n")) if k >= 0), default=-1
            )
            if cut < 0:
                break
            seg, term, self._buf = self._buf[:cut], self._buf[cut : cut + 1], self._buf[cut + 1 :]
            self._segment(seg, term)
        # Text that is clearly not the start of a progress line goes out at once, so a
        # prompt or partial message without a newline is not held back.
        if self._buf and not b"Compiling ".startswith(self._buf[:10]):
            self._text(self._buf)
            self._buf = b""

    def _segment(self, seg: bytes, term: bytes) -> None:
        m = PROGRESS_RE.match(seg)
        if m:
            self._pending_nl = False  # Jittor's "\n" before the first progress line
            what = m["what"].decode("ascii", "replace")
            if self._batch is not None and self._batch.what != what:
                self._end_batch()
            if self._batch is None:
                self._batch = _Batch(what)
            b = self._batch
            b.i, b.n, b.used = int(m["i"]), int(m["n"]), float(m["used"])
            self._on_progress(what, b.i, b.n, b.used, float(m["eta"]))
            if b.i >= b.n:
                self._end_batch(expect_nl=True)
            return
        if seg == b"" and term == b"\n":
            if self._expect_nl:  # Jittor's std::endl after the last progress line
                self._expect_nl = False
                return
            if self._batch is not None:  # a batch ended without reaching n/n
                self._end_batch(expect_nl=False)
                return
            if self._pending_nl:
                self._text(b"")  # emits the held "\n"; this one is held in turn
            self._pending_nl = True
            return
        if self._batch is not None:
            self._end_batch()
        self._text(seg + term)

    def _end_batch(self, expect_nl: bool = False) -> None:
        b, self._batch = self._batch, None
        self._expect_nl = expect_nl
        if b is not None:
            self._on_batch_end(b)

    def _text(self, data: bytes) -> None:
        self._expect_nl = False
        if self._pending_nl:
            self._pending_nl = False
            data = b"\n" + data
        if data:
            self._on_text(data)

    def close(self) -> None:
        """End of stream: flush whatever is held back."""
        if self._batch is not None:
            self._end_batch()
        rest, self._buf = self._buf, b""
        if rest or self._pending_nl:
            self._text(rest)
