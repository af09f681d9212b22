"""Who holds Jittor's cache lock, and whether this process waits for it.

Processes that share a Jittor cache serialise on its ``jittor.lock`` (next to the cache's
build folder): Python takes it with ``flock`` while Jittor imports (and compiles its core) and
while it compiles custom ops, the C++ core with ``fcntl`` while it compiles operators.  A
second ``gradcheck run`` then waits, silently, for as long as the first one compiles.  The
kernel lists every held lock and every blocked waiter in ``/proc/locks``::

    3: FLOCK  ADVISORY  WRITE 12106 fe:00:573473 0 EOF        (held by 12106)
    3: -> FLOCK  ADVISORY  WRITE 12147 fe:00:573473 0 EOF     (12147 waits for it)

so :func:`waiting_for` tells, without touching Jittor, whether a process waits on the lock
file's inode and who holds it.  :class:`LockWatcher` polls it from a thread and reports the
wait (see :mod:`gradcheck.progress`).  Only the inode is compared: the device numbers that
``/proc/locks`` shows are the backing file system's, which an overlay (a container) hides.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from typing import Callable

PROC_LOCKS = "/proc/locks"
_DEVICE_INODE = re.compile(r"^[0-9a-f]+:[0-9a-f]+:(\d+)$")


def jittor_lock_path() -> str | None:
    """The lock file of the Jittor cache this process uses, once Jittor's utilities are
    imported (before that, nothing can wait on it)."""
    lock = sys.modules.get("jittor_utils.lock")
    return getattr(lock, "lock_path", None) if lock is not None else None


def waiting_for(path: str, pid: int | None = None, locks_file: str = PROC_LOCKS) -> int | None:
    """The pid holding the lock on ``path`` that ``pid`` (default: this process) waits for;
    0 when the holder is not listed; None when it does not wait (or cannot be known)."""
    pid = os.getpid() if pid is None else pid
    try:
        inode = os.stat(path).st_ino
        with open(locks_file, encoding="ascii", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    holders: dict = {}
    waits: set = set()
    for line in lines:
        fields = line.split()
        if not fields:
            continue
        waiter = len(fields) > 1 and fields[1] == "->"
        for i, field in enumerate(fields):
            m = _DEVICE_INODE.match(field)
            if m and i > 0:
                break
        else:
            continue
        if int(m.group(1)) != inode:
            continue
        try:
            owner = int(fields[i - 1])
        except ValueError:
            continue
        if waiter and owner == pid:
            waits.add(fields[0])
        elif not waiter:
            holders.setdefault(fields[0], owner)
    if not waits:
        return None
    return next((holders[k] for k in sorted(waits) if k in holders and holders[k] > 0), 0)


class WaitClock:
    """How long a wait has lasted, from polls of :func:`waiting_for`: calls
    ``on_wait(seconds, holder)`` on every poll while it waits (from ``show_after`` seconds
    on) and ``on_done(seconds, holder)`` once when a wait that was shown ends.  ``total``
    sums every wait's seconds."""

    def __init__(self, on_wait: Callable, on_done: Callable, show_after: float = 0.5):
        self.on_wait, self.on_done, self.show_after = on_wait, on_done, show_after
        self.total = 0.0
        self._since: float | None = None
        self._holder: int | None = None

    def poll(self, holder: int | None, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if holder is not None:
            if self._since is None:
                self._since = now
            self._holder = holder or self._holder
            if now - self._since >= self.show_after:
                _safe(self.on_wait, now - self._since, self._holder)
        else:
            self.end(now)

    def end(self, now: float | None = None) -> None:
        if self._since is None:
            return
        seconds = (time.monotonic() if now is None else now) - self._since
        self.total += seconds
        if seconds >= self.show_after:
            _safe(self.on_done, seconds, self._holder)
        self._since, self._holder = None, None


def _safe(callback: Callable, *args) -> None:
    try:
        callback(*args)
    except Exception:  # noqa: BLE001 - a display must never end the run
        pass


class LockWatcher:
    """Polls :func:`waiting_for` for this process from a daemon thread (a :class:`WaitClock`).
    Jittor holds the GIL while its C++ core waits for the lock to compile an operator, so
    this thread sees the waits of Python's side only (the import, custom ops); a supervised
    run's parent watches its child from outside instead (:class:`ChildWatch`)."""

    def __init__(
        self,
        on_wait: Callable,
        on_done: Callable,
        interval: float = 0.25,
        show_after: float = 0.5,
        path: Callable | None = None,
    ):
        self.clock = WaitClock(on_wait, on_done, show_after)
        self.interval = interval
        self.path = path or jittor_lock_path
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def total(self) -> float:
        return self.clock.total

    def start(self) -> LockWatcher:
        if os.path.exists(PROC_LOCKS):
            self._thread = threading.Thread(
                target=self._run, name="gradcheck-cache-lock", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            path = self.path()
            self.clock.poll(waiting_for(path) if path else None)
        self.clock.end()


class ChildWatch:
    """The waits of another process (a supervised run's child) for Jittor's cache lock: its
    lock file is the open file named ``jittor.lock`` in ``/proc/PID/fd``."""

    def __init__(self, pid: int, on_wait: Callable, on_done: Callable, show_after: float = 1.0):
        self.pid = pid
        self.clock = WaitClock(on_wait, on_done, show_after)
        self._path: str | None = None

    def poll(self) -> None:
        if self._path is None:
            self._path = _open_lock_file(self.pid)
        self.clock.poll(waiting_for(self._path, self.pid) if self._path else None)


def _open_lock_file(pid: int) -> str | None:
    fds = f"/proc/{pid}/fd"
    try:
        for fd in os.listdir(fds):
            try:
                target = os.readlink(f"{fds}/{fd}")
            except OSError:
                continue
            if target.endswith(os.sep + "jittor.lock"):
                return target
    except OSError:
        pass
    return None


class StderrLines:
    """A wait as two lines on stderr: one when it starts to show, one when it ends."""

    def __init__(self, stream=None):
        self.stream = stream
        self._said = False

    def wait(self, seconds: float, holder: int | None) -> None:
        if not self._said:
            self._said = True
            self._write(describe(seconds, holder).rsplit(":", 1)[0] + " ...")

    def done(self, seconds: float, holder: int | None) -> None:
        self._said = False
        self._write(describe(seconds, holder, done=True))

    def _write(self, text: str) -> None:
        stream = self.stream or sys.stderr
        stream.write(f"gradcheck: {text}\n")
        stream.flush()


def describe(seconds: float, holder: int | None, done: bool = False) -> str:
    """The progress line's text for a wait."""
    who = f" (pid {holder})" if holder else ""
    if done:
        return f"waited {seconds:.1f}s for Jittor's cache lock, held by another process{who}"
    return f"waiting for Jittor's cache lock held by another process{who}: {seconds:.0f}s"
