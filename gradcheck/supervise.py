"""A supervised run: a crash in compiled code before the verdict costs one rerun, not the run.

Jittor's parallel operator compiler dies of SIGSEGV in about one cold process in 20-40, and
steps have crashed in compiled code now and then; a known transient fault of Jittor's own
(``op_compiler.cc: Check failed``) is as random; and a Jittor that rebuilds its core library
while starting exits with status 0 ("please rerun your command"), which must not read as a
verdict.  A crashed process cannot rerun itself, so
``gradcheck run`` and ``gradcheck align``, started from a real command line, work under a
parent process (:func:`supervised`):

* the parent, once click has parsed the arguments (it never imports Jittor), **forks**: the
  child carries on with the command exactly as an unsupervised process would, on the same
  stdin, stdout and stderr.  The normal path pays one ``fork`` and one ``wait`` (no second
  interpreter start, no re-import);
* the parent only waits.  SIGINT/SIGTERM sent to it with ``kill`` are forwarded to the child
  (a terminal's Ctrl-C reaches both already: they share the process group), and the child's
  130/143 is the parent's;
* a child that dies of SIGSEGV, SIGBUS, SIGABRT, SIGFPE or SIGILL before its verdict, or that
  reports a known transient Jittor fault (:func:`rerun_instead`), is run once more, from the
  parent's untouched state and the now warmer Jittor cache.  The parent says so on stderr
  and the second attempt names the first in its verdict's warnings (:func:`record_retry`);
* the child's crash traceback (``faulthandler``, every thread) goes to a file of the
  supervisor's, not to the screen: a second crash exits 128 + N with both tracebacks; a
  crash after the child began its verdict (:func:`verdict_begins`) is never rerun (that
  would print two verdicts), and the verdict's exit code stands.

The child and its descendants (``--nproc``'s MPI ranks) find the supervisor's folder in
``GRADCHECK_SUPERVISOR_DIR`` and which attempt they are in ``GRADCHECK_ATTEMPT``.
``GRADCHECK_SUPERVISE=0`` runs the command in one process, unsupervised.
"""

from __future__ import annotations

import functools
import os
import re
import signal
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NoReturn

from gradcheck import errors

ATTEMPT_ENV = "GRADCHECK_ATTEMPT"  # "1" or "2" in a supervised child
DIR_ENV = "GRADCHECK_SUPERVISOR_DIR"  # the current attempt's folder of notes
RETRY_ENV = "GRADCHECK_RETRIED"  # why this attempt is a rerun: a verdict warning
SWITCH_ENV = "GRADCHECK_SUPERVISE"  # "0": no supervisor
EXIT_RERUN = 75  # child -> parent: a transient fault, run me again
ATTEMPTS = 2
LOCK_POLL = 0.25  # seconds between looks at the child's lock waits
SI_KERNEL = 0x80  # siginfo si_code of a signal the kernel sent (a tty)

_CRASH_NAMES = {
    "Segmentation fault": "SIGSEGV",
    "Bus error": "SIGBUS",
    "Aborted": "SIGABRT",
    "Floating-point exception": "SIGFPE",
    "Floating point exception": "SIGFPE",
    "Illegal instruction": "SIGILL",
}
_command_line = False
# Whether the program may hold a buffer that only its teardown would flush (see leave()), from
# Python's audit events: "off" (not watched), "watching" (nothing seen yet), "written" (it
# opened a file or descriptor for writing, a socket, or a subprocess, whose pipes are
# buffered) or "clean" (the watch ended with nothing seen).
_writes = "off"
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT


# ------------------------------------------------------------------ the CLI's side
def from_command_line() -> None:
    """Called by the CLI's entry when its arguments are the process's own (``sys.argv``), not
    an in-process caller's (click's test runner): only then may a command fork."""
    global _command_line
    _command_line = True


def command_line() -> bool:
    """Whether this process runs the CLI on its own command line (not a test runner)."""
    return _command_line


def watch_writes() -> None:
    """From now on (a user's script is about to run), note whether the program opens anything
    it may write through a buffer; :func:`own_writes` ends the watch.  Only on the CLI's own
    command line: an audit hook stays for the life of the process, unwanted in a test runner."""
    global _writes
    if _command_line and _writes == "off":
        _writes = "watching"
        sys.addaudithook(_audit)


def own_writes() -> None:
    """What the program opens from here on is gradcheck's own (the report, written whole and
    closed), not the script's."""
    global _writes
    if _writes == "watching":
        _writes = "clean"


def _audit(event: str, args: tuple) -> None:
    # every audited call (id(), imports...) lands here: ~0.13 us each once the watch is over
    global _writes
    if _writes != "watching":
        return
    if (
        event == "open"
        and (args[2] or 0) & _WRITE_FLAGS
        or event in ("socket.__new__", "subprocess.Popen", "os.posix_spawn", "os.fork")
    ):
        _writes = "written"


def exit_at_once(code: int) -> NoReturn:
    """Exit now, without the interpreter's exit handlers (standard streams flushed)."""
    _flush()
    os._exit(code)


def leave(code: int, ours_only: bool = False) -> NoReturn:
    """End a command whose verdict is out (its report written).  On the CLI's own command line
    outside MPI: the interpreter's exit handlers run (the script's, Jittor's), every open file
    is flushed, and only the teardown of each module and object is skipped: with a model
    loaded (Jittor's Vars, the script's objects) it took 0.3-0.6 s, more than a probed step
    of Gold-YOLO-N.  ``ours_only``: only gradcheck's own code ran (``compare``, ``show``), so
    no one else's file needs the heap scan for buffered files (tearing down two 9,000-parameter
    reports: 0.05 s).  Elsewhere (a test runner, an MPI rank that must finalise): ``sys.exit``."""
    if not _command_line or "OMPI_COMM_WORLD_SIZE" in os.environ:
        sys.exit(code)
    import atexit
    import gc
    import io

    atexit._run_exitfuncs()
    if _writes == "clean" or ours_only:  # the script opened nothing to write, or none ran:
        exit_at_once(code)  # no heap scan (40 ms in a Gold-YOLO process)
    files = (io.TextIOWrapper, io.BufferedWriter, io.BufferedRandom)
    for obj in gc.get_objects():  # a script's log file, written through a buffer
        if type(obj) in files:
            try:
                if not obj.closed:
                    obj.flush()
            except Exception:  # noqa: BLE001 - not writable, detached, or its own failure
                pass
    exit_at_once(code)


def supervised(command: Callable) -> Callable:
    """Decorate a click command that may crash in compiled code (outside ``exit_codes``, so
    that the parent installs no handlers of its own): see the module doc."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        if _should_supervise():
            code = _supervise(show_lock_waits=not kwargs.get("quiet"))
            if code is not None:  # the parent: the child's outcome is ours, and
                exit_at_once(code)  # it has nothing else to tear down
        return command(*args, **kwargs)

    return wrapper


def _should_supervise() -> bool:
    import threading

    return (
        _command_line
        and os.environ.get(SWITCH_ENV, "1") != "0"
        and ATTEMPT_ENV not in os.environ  # already a supervised child
        and "OMPI_COMM_WORLD_SIZE" not in os.environ  # one MPI rank: mpirun watches it
        and "jittor" not in sys.modules  # a fork must not copy a live Jittor
        and hasattr(os, "fork")
        and hasattr(signal, "sigwaitinfo")
        and threading.current_thread() is threading.main_thread()
        and threading.active_count() == 1
    )


def attempt() -> int:
    """1 or 2 in a supervised child (and its MPI ranks), 0 elsewhere."""
    try:
        return int(os.environ.get(ATTEMPT_ENV, "0"))
    except ValueError:
        return 0


def _notes_dir() -> Path | None:
    d = os.environ.get(DIR_ENV)
    return Path(d) if d and os.path.isdir(d) else None


def crash_file_path() -> str | None:
    """Where this process's crash traceback goes under a supervisor (None: stderr)."""
    d = _notes_dir()
    return str(d / f"crash-{os.getpid()}.txt") if d is not None else None


def verdict_begins(code: int, warnings: list | None = None) -> None:
    """The command is about to write its verdict (files, then stdout), whose exit code is
    ``code``: from here on a crash is not rerun.  ``warnings``, the verdict's list of warnings,
    gets the retry's (a second attempt's) before anything is written."""
    if warnings is not None:
        record_retry(warnings)
    d = _notes_dir()
    if d is not None:
        _write(d / f"verdict-{os.getpid()}", str(int(code)))


def record_retry(warnings: list) -> None:
    why = os.environ.get(RETRY_ENV)
    if why and why not in warnings:
        warnings.append(why)


def rerun_instead(exc: BaseException) -> bool:
    """In a supervised first attempt, a known transient Jittor fault that was not retried
    already: leave its reason for the parent and return True (exit :data:`EXIT_RERUN`,
    printing nothing).  Anywhere else False: the failure is reported as usual."""
    d = _notes_dir()
    if d is None or attempt() != 1 or not errors.is_transient(exc):
        return False
    failure = exc if isinstance(exc, errors.JittorFailure) else errors.as_jittor_failure(exc)
    if failure is None or getattr(failure, "retried", False):
        return False
    reason = f"{failure.reason} {failure.where}".strip()
    if errors.is_stop_casualty(exc):
        reason = f"{errors.STOP_CASUALTY}: {reason}"
    _write(d / f"transient-{os.getpid()}", reason)
    return True


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError:  # a note lost only costs the rerun
        pass


# ------------------------------------------------------------------ the parent
@dataclass
class Outcome:
    """How one attempt ended, as the parent saw it."""

    code: int  # the exit code it stands for
    crash: str | None = None  # "SIGSEGV" when it crashed
    where: str = ""  # the crash's innermost Python frame, in words
    traceback: str = ""  # faulthandler's text (every thread)
    transient: str = ""  # a transient Jittor fault's reason
    verdict: int | None = None  # the exit code of a verdict it began
    interrupted: int | None = None  # SIGINT/SIGTERM the parent received

    def rerun(self) -> bool:
        return (
            self.interrupted is None and self.verdict is None and bool(self.crash or self.transient)
        )

    def what(self) -> str:
        if self.crash:
            where = f", {self.where}" if self.where else ""
            return f"crashed with {self.crash} in compiled code{where}"
        return f"hit a known transient fault of Jittor ({self.transient})"


def _supervise(show_lock_waits: bool = True) -> int | None:
    """Run the command in a child, twice at most; the exit code (in the parent), or None
    (in a child, which carries on with the command).  ``show_lock_waits``: say on stderr when
    the child waits for Jittor's cache lock, held by another process
    (:mod:`gradcheck.cachelock`; the child cannot: Jittor holds the GIL while it waits)."""
    parent = os.getpid()
    root = tempfile.mkdtemp(prefix="gradcheck-supervisor-")
    watched = {signal.SIGINT, signal.SIGTERM, signal.SIGCHLD}
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, watched)
    outcomes: list = []
    try:
        for n in range(1, ATTEMPTS + 1):
            notes = os.path.join(root, str(n))
            os.mkdir(notes)
            retried = _retry_warning(outcomes[-1]) if outcomes else None
            _flush()
            pid = os.fork()
            if pid == 0:
                _become_child(n, notes, retried, old_mask, parent)
                return None
            status, interrupted = _wait(pid, watched, show_lock_waits)
            out = _outcome(status, interrupted, Path(notes))
            outcomes.append(out)
            if n < ATTEMPTS and out.rerun():
                print(
                    f"gradcheck: the run {out.what()}, before its verdict; running it once "
                    f"more (attempt {n + 1} of {ATTEMPTS}), from Jittor's now warmer cache",
                    file=sys.stderr,
                    flush=True,
                )
                continue
            return _finish(outcomes)
        return _finish(outcomes)  # pragma: no cover - the loop returns
    finally:
        if os.getpid() == parent:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
            import shutil

            shutil.rmtree(root, ignore_errors=True)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


def _become_child(n: int, notes: str, retried: str | None, old_mask, parent: int) -> None:
    os.environ[ATTEMPT_ENV] = str(n)
    os.environ[DIR_ENV] = notes
    if retried:
        os.environ[RETRY_ENV] = retried
    signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    from gradcheck import runtime

    runtime.die_with_parent(parent, signal.SIGTERM)  # `kill -9` of the parent: no orphan run


def _wait(pid: int, watched: set, show_lock_waits: bool = False) -> tuple:
    """Wait for the child; forward SIGINT/SIGTERM that were sent to the parent alone.
    Returns (wait status, the first SIGINT/SIGTERM received or None)."""
    interrupted = None
    lock = None
    if show_lock_waits:
        from gradcheck import cachelock

        if os.path.exists(cachelock.PROC_LOCKS):
            lines = cachelock.StderrLines()
            lock = cachelock.ChildWatch(pid, lines.wait, lines.done)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            if lock is not None:
                lock.clock.end()
            return status, interrupted
        if lock is not None:
            info = signal.sigtimedwait(watched, LOCK_POLL)
            if info is None:  # a quarter of a second without a signal
                lock.poll()
                continue
        else:
            info = signal.sigwaitinfo(watched)
        if info.si_signo == signal.SIGCHLD:
            continue
        interrupted = interrupted or info.si_signo
        if info.si_code != SI_KERNEL:  # kill(): the child did not get it
            try:
                os.kill(pid, info.si_signo)
            except ProcessLookupError:
                pass


def _outcome(status: int, interrupted: int | None, notes: Path) -> Outcome:
    crashes = sorted(
        (p for p in notes.glob("crash-*.txt") if p.stat().st_size), key=os.path.getmtime
    )
    traceback = "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in crashes)
    verdicts = [p.read_text().strip() for p in notes.glob("verdict-*")]
    transient = [
        p.read_text(encoding="utf-8", errors="replace").strip() for p in notes.glob("transient-*")
    ]
    out = Outcome(
        code=0,
        traceback=traceback,
        interrupted=interrupted,
        verdict=int(verdicts[0]) if verdicts and verdicts[0].lstrip("-").isdigit() else None,
        transient=transient[0] if transient else "",
    )
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        out.code = 128 + sig
        if sig in errors.CRASH_SIGNALS:
            out.crash = signal.Signals(sig).name
    else:
        out.code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 3
        if traceback and out.code != 0:  # a descendant (an MPI rank) crashed
            out.crash = _crash_name(traceback)
            crash_sig = getattr(signal, out.crash, None)
            if crash_sig is not None and out.code not in (1, 2):
                out.code = 128 + int(crash_sig)
    if out.crash:
        out.where = _innermost_frame(traceback)
    return out


def _crash_name(traceback: str) -> str:
    m = re.search(r"Fatal Python error: ([^\n]+)", traceback)
    return _CRASH_NAMES.get(m.group(1).strip(), "SIGSEGV") if m else "SIGSEGV"


def _innermost_frame(traceback: str) -> str:
    """``in loss (zoo_failures.py:97)`` from faulthandler's text: the crashing thread's most
    recent Python frame outside Python's own library."""
    import sysconfig

    block = re.search(
        r"Current thread 0x[0-9a-f]+ \(most recent call first\):\n"
        r"((?:\s+File .*\n?)*)",
        traceback,
    )
    if block is None:
        return ""
    frames = re.findall(r'File "([^"]+)", line (\d+) in (\S+)', block.group(1))
    if not frames:
        return "in a thread running no Python code"
    stdlib = sysconfig.get_paths()["stdlib"] + os.sep
    path, line, func = next((f for f in frames if not f[0].startswith(stdlib)), frames[0])
    return f"in {func} ({os.path.basename(path)}:{line})"


def _retry_warning(first: Outcome) -> str:
    return (
        f"retried: the first attempt {first.what()}; the run was repeated once in a fresh "
        "process and this report is from the repeat"
    )


def _finish(outcomes: list) -> int:
    last = outcomes[-1]
    say = functools.partial(print, file=sys.stderr, flush=True)
    if last.interrupted is not None:
        if last.verdict is None and last.code not in (130, 143):
            # the child died before it could say so itself
            word = "interrupted" if last.interrupted == signal.SIGINT else "terminated"
            say(f"gradcheck: {word}; no report written")
            return 128 + last.interrupted
        return last.code
    if last.verdict is not None:
        if last.crash:
            say(
                f"gradcheck: note: the process {last.what()} after it wrote its verdict (while "
                "exiting); the verdict stands"
            )
            return last.verdict
        return last.code
    if last.crash:
        if len(outcomes) > 1:
            say(
                f"gradcheck: the run crashed again on its second attempt ({last.crash}"
                f"{', ' + last.where if last.where else ''}); no report written. Both "
                "attempts' tracebacks follow."
            )
            for n, out in enumerate(outcomes, 1):
                text = (
                    out.traceback.strip()
                    or "(no Python traceback: it crashed before "
                    "gradcheck's crash handler was in place)"
                )
                say(f"--- attempt {n}: {out.crash or 'no crash'} ---\n{text}")
        else:
            say(f"gradcheck: the run {last.what()}; no report written.\n{last.traceback.strip()}")
        return last.code
    if last.code == 128 + signal.SIGKILL:
        say(
            "gradcheck: killed (SIGKILL: by the out-of-memory killer, or by hand); no report "
            "written"
        )
    elif len(outcomes) > 1 and last.code not in (0, 1):
        say(f"gradcheck: (that was the second attempt; the first {outcomes[0].what()})")
    return last.code
