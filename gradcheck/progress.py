"""Take over Jittor's compile progress and keep stderr honest.

Jittor's C++ core writes ``Compiling Operators(i/n) used: 4.3s eta: 5.8s \\r`` (and, on a
fresh cache, ``Compiling jittor_core(i/n) ...``) straight to file descriptor 2 with
``std::cerr``, bypassing Python's ``sys.stderr``.  :func:`compile_progress` points fd 2 at a
pipe for the duration of a block; a reader thread parses the progress lines into a rich
progress bar on the *original* stderr (or drops them when ``quiet``) and passes every other
byte through, unchanged and in order, to the original stderr as it arrives.  Error messages
are never lost: whatever is left in the pipe is drained before the block returns.

Guarantees:

* fd 2 is restored on every exit path (exceptions, ``KeyboardInterrupt``);
* nested or concurrent uses are no-ops that share the outer capture's statistics;
* the reader never stops draining the pipe, so a block that writes megabytes to stderr
  cannot deadlock on a full pipe.

The yielded :class:`CompileStats` counts operators compiled and compile seconds so callers
can report them ("compiled 37 operators in 41.2s").
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gradcheck.procmaps import mapped_files
from gradcheck.progress_parser import PROGRESS_RE, ProgressParser, _Batch

if TYPE_CHECKING:  # rich is imported when a bar or a spinner is first shown
    from rich.console import Console
    from rich.live import Live
    from rich.progress import Progress, TaskID

__all__ = ["CompileStats", "compile_progress", "ProgressParser", "PROGRESS_RE"]


@dataclass
class CompileStats:
    """What one capture saw.  ``ops_compiled`` is the larger of the operators Jittor's
    progress lines announced and the operator libraries this process compiled during the
    block (``*.so`` files in Jittor's ``jit`` cache that this process loaded and that were
    written after the block began; other processes sharing the cache do not count).
    Jittor prints progress only for batches slower than 2 s, so the library count also
    catches quick compiles.  ``compile_seconds`` sums the batches Jittor reported; quick
    batches under 2 s are not included."""

    ops_compiled: int = 0
    compile_seconds: float = 0.0
    batches: int = 0  # compile batches that reported progress
    core_compiled: bool = False  # a "Compiling jittor_core" batch was seen
    passthrough_bytes: int = 0  # other stderr bytes forwarded unchanged
    progress_ops: int = 0  # operators announced by progress lines
    new_jit_libs: int | None = None  # op libraries compiled here (None: not measurable)
    lock_wait_seconds: float = 0.0  # waited for Jittor's cache lock (another process held it)

    def summary(self) -> str:
        if not self.ops_compiled:
            return "no operators compiled"
        secs = f" in {self.compile_seconds:.1f}s" if self.compile_seconds else ""
        return f"compiled {self.ops_compiled} Jittor operator(s){secs}"


# --------------------------------------------------------------------------- display
class _Display:
    """A transient rich progress bar on the original stderr, shown only while Jittor
    compiles; other stderr text is written raw after the bar is taken down."""

    def __init__(self, fd: int, quiet: bool, console=None):
        self.fd = fd
        self.quiet = quiet
        self._console = console
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._lock = threading.Lock()
        self._no_bar = False
        self._status: Live | None = None  # a rich Live spinner while nothing else is shown
        self._status_console: Console | None = None
        self._lock_said = False  # the lock wait's line is out (stderr not a terminal)

    def _make_console(self):
        from rich.console import Console

        c = self._console
        if c is not None:
            try:
                if c.file.fileno() != 2:  # it writes elsewhere than the captured fd
                    return c
            except (AttributeError, OSError, ValueError):
                return c
        stream = os.fdopen(os.dup(self.fd), "w", buffering=1, encoding="utf-8", errors="replace")
        return Console(file=stream, stderr=False)

    def progress(self, what: str, i: int, n: int, used: float, eta: float) -> None:
        if self.quiet or self._no_bar:
            return
        with self._lock:
            if self._progress is None:
                console = self._make_console()
                if not console.is_terminal:  # a log file or pipe: the summary line is enough
                    self._no_bar = True
                    if console is not self._console:
                        console.file.close()
                    return
                from rich.progress import (
                    BarColumn,
                    MofNCompleteColumn,
                    Progress,
                    TextColumn,
                    TimeElapsedColumn,
                )

                self._progress = Progress(
                    TextColumn("[bold blue]{task.description}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeElapsedColumn(),
                    console=console,
                    transient=True,
                    redirect_stdout=False,
                    redirect_stderr=False,
                )
                label = (
                    "compiling Jittor core"
                    if what == "jittor_core"
                    else f"compiling Jittor {what.lower()}"
                )
                self._task = self._progress.add_task(label, total=n)
                self._progress.start()
            assert self._task is not None  # added with the bar
            self._progress.update(self._task, completed=i, total=n)

    def show_status(self, text: str) -> None:
        """A spinner with ``text`` (a plain line when stderr is not a terminal), until the
        first progress line or other stderr text arrives."""
        if self.quiet:
            return
        with self._lock:
            if self._progress is not None or self._status is not None:
                return
            self._spin_or_line(text, text)

    def _spin_or_line(self, text: str, line: str) -> bool:
        """A spinner saying ``text`` on a terminal (True); elsewhere ``line``, once (False).
        The caller holds the lock."""
        console = self._make_console()
        if not console.is_terminal:
            if console is not self._console:
                console.file.close()
            _write_all(self.fd, f"{line}\n".encode())
            return False
        from rich.live import Live
        from rich.spinner import Spinner

        self._status_console = console
        self._status = Live(
            Spinner("dots", text=text),
            console=console,
            transient=True,
            refresh_per_second=8,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._status.start()
        return True

    def lock_wait(self, seconds: float, holder) -> None:
        """This process waits for Jittor's cache lock: the spinner says so, with the seconds
        (one line when stderr is not a terminal)."""
        if self.quiet:
            return
        from gradcheck.cachelock import describe

        text = "gradcheck: " + describe(seconds, holder)
        with self._lock:
            if self._progress is not None or self._lock_said:
                return
            if self._status is not None:
                from rich.spinner import Spinner

                self._status.update(Spinner("dots", text=text))
                return
            if not self._spin_or_line(text, f"{text.rsplit(':', 1)[0]} ..."):
                self._lock_said = True

    def lock_done(self, seconds: float, holder) -> None:
        if self.quiet:
            return
        from gradcheck.cachelock import describe

        with self._lock:
            self._stop()
            self._lock_said = False
            _write_all(self.fd, f"gradcheck: {describe(seconds, holder, done=True)}\n".encode())

    def _stop(self) -> None:
        if self._status is not None:
            live, self._status = self._status, None
            live.stop()
            console = self._status_console
            if console is not None and console is not self._console:
                console.file.close()
        if self._progress is not None:
            p, self._progress = self._progress, None
            p.stop()
            if p.console is not self._console:
                p.console.file.close()

    def batch_end(self, batch: _Batch) -> None:
        if self.quiet:
            return
        with self._lock:
            self._stop()
            noun = "core files" if batch.what == "jittor_core" else "operators"
            _write_all(self.fd, f"compiled {batch.n} Jittor {noun} in {batch.used:.1f}s\n".encode())

    def text(self, data: bytes) -> None:
        with self._lock:
            self._stop()
            _write_all(self.fd, data)

    def close(self) -> None:
        with self._lock:
            self._stop()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            k = os.write(fd, view)
        except InterruptedError:
            continue
        except OSError:  # the original stderr is gone (closed pipe): nothing to do
            return
        view = view[k:]


# --------------------------------------------------------------------------- capture
def _jit_dir() -> str | None:
    jt = sys.modules.get("jittor")
    try:
        return os.path.join(jt.flags.cache_path, "jit") if jt is not None else None
    except Exception:  # noqa: BLE001 - a half-imported jittor
        return None


def _mapped_libs(jit_dir: str | None) -> set | None:
    """Operator libraries under ``jit_dir`` mapped into this process (None: unknown)."""
    if not jit_dir:
        return None
    files = mapped_files()
    if files is None:
        return None
    prefix = os.path.realpath(jit_dir) + os.sep
    return {p for p in files if p.endswith(".so") and p.startswith(prefix)}


def _libs_compiled_here(jit_dir: str | None, before: set | None, since: float) -> int | None:
    """Operator libraries loaded during the block and written at or after ``since``
    (wall clock): the ones this process compiled (not merely loaded from the cache)."""
    after = _mapped_libs(jit_dir)
    if after is None:
        return None
    n = 0
    for path in after - (before or set()):
        try:
            if os.stat(path).st_mtime >= since - 1.0:  # coarse filesystem clocks
                n += 1
        except OSError:
            continue
    return n


_capture_lock = threading.Lock()
_active: CompileStats | None = None


@contextlib.contextmanager
def compile_progress(
    quiet: bool = True, console=None, status: str | None = None, status_after: float = 2.0
) -> Iterator[CompileStats]:
    """Capture fd 2 for the block; show Jittor's compile progress as a rich bar (none when
    ``quiet``), forward all other stderr bytes unchanged.  Yields :class:`CompileStats`,
    complete once the block has exited.  A no-op (yielding the outer stats) when nested
    or when another thread already captures.

    ``status``: a message shown with a spinner when the block is still running after
    ``status_after`` seconds and nothing else is on screen (e.g. "preparing Jittor"
    around a first import, which compiles for minutes without a word)."""
    global _active
    if not _capture_lock.acquire(blocking=False):
        yield _active if _active is not None else CompileStats()
        return
    stats = CompileStats()
    fds = _Fds.open()
    if fds is None:  # no stderr at all (daemon) or out of fds: run the block uncaptured
        _capture_lock.release()
        yield stats
        return
    display = _Display(fds.saved, quiet, console)
    parser = _counting_parser(stats, display)
    from gradcheck.cachelock import LockWatcher

    watcher = LockWatcher(display.lock_wait, display.lock_done)
    t_start = time.time()
    jit_dir = _jit_dir()
    libs_before = _mapped_libs(jit_dir) if jit_dir else set()
    thread = threading.Thread(
        target=_read_stderr, args=(fds, parser, display), name="gradcheck-stderr", daemon=True
    )
    timer = None
    if status and not quiet:
        timer = threading.Timer(status_after, display.show_status, args=(status,))
        timer.daemon = True
    _active = stats
    restored = False
    try:
        fds.redirect()
        thread.start()
        if timer is not None:
            timer.start()
        from gradcheck import supervise

        if not supervise.attempt():  # a supervised run's parent watches from outside
            watcher.start()
        yield stats
    finally:
        watcher.stop()
        stats.lock_wait_seconds = watcher.total
        if timer is not None:
            timer.cancel()
            if timer.is_alive():
                timer.join()
        try:
            fds.restore()
            restored = True
        finally:
            fds.close(thread)
            _active = None
            _capture_lock.release()
        if restored:
            stats.new_jit_libs = _libs_compiled_here(jit_dir or _jit_dir(), libs_before, t_start)
            stats.ops_compiled = max(stats.progress_ops, stats.new_jit_libs or 0)


@dataclass
class _Fds:
    """The file descriptors of one capture: the original stderr (``saved``), the pipe fd 2
    points at meanwhile (``r``, ``w``) and the pipe that tells the reader to finish."""

    saved: int
    r: int
    w: int  # -1 once fd 2 is the pipe's only write end
    stop_r: int
    stop_w: int

    @classmethod
    def open(cls) -> _Fds | None:
        """Duplicate fd 2 and open both pipes; None, with nothing left open, on failure."""
        opened: list = []
        try:
            saved = os.dup(2)
            opened.append(saved)
            r, w = os.pipe()
            opened += [r, w]
            stop_r, stop_w = os.pipe()
            opened += [stop_r, stop_w]
        except OSError:
            for fd in opened:
                os.close(fd)
            return None
        return cls(saved, r, w, stop_r, stop_w)

    def redirect(self) -> None:
        """Point fd 2 at the pipe (closing ``w``: end of file comes when fd 2 goes)."""
        _flush_python_stderr()
        os.dup2(self.w, 2)
        os.close(self.w)
        self.w = -1

    def restore(self) -> None:
        """Point fd 2 back at the original stderr."""
        _flush_python_stderr()
        os.dup2(self.saved, 2)

    def close(self, reader: threading.Thread) -> None:
        """Tell ``reader`` to drain the pipe and finish, wait for it, then close every fd."""
        if self.w >= 0:
            os.close(self.w)
        if reader.is_alive():
            os.write(self.stop_w, b"x")
            reader.join()
        for fd in (self.r, self.stop_r, self.stop_w, self.saved):
            with contextlib.suppress(OSError):
                os.close(fd)


def _counting_parser(stats: CompileStats, display: _Display) -> ProgressParser:
    """A parser that counts what it sees into ``stats`` and shows it on ``display``."""

    def on_progress(what, i, n, used, eta):
        if what == "jittor_core":
            stats.core_compiled = True
        display.progress(what, i, n, used, eta)

    def on_batch_end(b: _Batch):
        stats.batches += 1
        stats.compile_seconds += b.used
        if b.what != "jittor_core":
            stats.progress_ops += b.n
        display.batch_end(b)

    def on_text(data: bytes):
        stats.passthrough_bytes += len(data)
        display.text(data)

    return ProgressParser(on_progress, on_text, on_batch_end)


def _read_stderr(fds: _Fds, parser: ProgressParser, display: _Display) -> None:
    """The reader thread: every chunk of the pipe through ``parser`` (raw to the original
    stderr should the parser or the display fail), then the parser's tail."""
    broken = False  # the parser or display failed: forward raw bytes from then on

    def handle(data: bytes) -> None:
        nonlocal broken
        if not broken:
            try:
                parser.feed(data)
                return
            except Exception as exc:  # noqa: BLE001 - never let stderr vanish
                broken = True
                _write_all(
                    fds.saved,
                    f"[gradcheck] compile progress display failed "
                    f"({exc!r}); stderr follows unfiltered\n".encode(),
                )
        _write_all(fds.saved, data)

    for data in _pipe_chunks(fds.r, fds.stop_r):
        handle(data)
    if not broken:
        try:
            parser.close()
        except Exception:  # noqa: BLE001
            pass
    with contextlib.suppress(Exception):
        display.close()


def _pipe_chunks(r: int, stop_r: int) -> Iterator[bytes]:
    """What arrives on ``r`` until it closes, or until ``stop_r`` is written and what is
    left in ``r`` has been drained."""
    poller = select.poll()
    poller.register(r, select.POLLIN)
    poller.register(stop_r, select.POLLIN)
    while True:
        events = dict(poller.poll())
        if r in events:
            data = os.read(r, 65536)
            if not data:
                return
            yield data
        elif stop_r in events:
            # Everything written before fd 2 was restored is in the pipe: drain it
            # without blocking (forked children may keep the write end open).
            os.set_blocking(r, False)
            while True:
                try:
                    data = os.read(r, 65536)
                except BlockingIOError:
                    return
                if not data:
                    return
                yield data


def _flush_python_stderr() -> None:
    for stream in (sys.stderr, sys.__stderr__):
        with contextlib.suppress(Exception):
            if stream is not None:
                stream.flush()
