"""What each failure means to a caller: exit codes, signals, and Jittor's own failures.

One home for the mapping the CLI uses (and that a CI reads)::

    0    pass / no regression
    1    coverage fail or regression (a finding about the model)
    2    bad input: one line naming the bad value, never a traceback
    3    internal or environment error: Jittor failed to compile or execute an operator,
         ran out of memory, or gradcheck itself broke (one short paragraph, no traceback)
    130  interrupted by SIGINT (Ctrl-C); 143 terminated by SIGTERM

Jittor installs its own SIGINT handler when its library loads (a ``quick_exit(1)``: exit 1,
no message, which reads as "coverage failed"), and a SIGCHLD handler that quick-exits when
a compiler child dies of a signal or merely stops.  :func:`handling_signals` puts Python-level
handlers back for the duration of a command, and :func:`reclaim_signals` re-installs them as
soon as Jittor's core library has loaded (:func:`gradcheck.runtime.import_jittor`, before the
rest of its import compiles anything) and again after each step.

A failing step leaves parameters half-updated, so a retry re-runs the whole probe from a
fresh model (:func:`retrying`), and only for failures inside Jittor's operator compiler:
those are known to be transient (``op_compiler.cc: Check failed: member.size() <= var_num``).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Callable, TypeVar

EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
EXIT_SIGINT, EXIT_SIGTERM = 128 + signal.SIGINT, 128 + signal.SIGTERM  # 130, 143

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)
TRACEBACK_ENV = "GRADCHECK_TRACEBACK"  # set to 1 to see the traceback of an exit-3 failure


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived.  A BaseException, like KeyboardInterrupt, so that no
    ``except Exception`` in a workload swallows it."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


class JittorFailure(RuntimeError):
    """Jittor failed (operator compile or execution, memory): an environment error, exit 3."""

    def __init__(
        self,
        reason: str,
        where: str = "",
        kind: str = "jittor",
        cache_dir: str = "",
        step: int | None = None,
    ):
        super().__init__(reason)
        self.reason, self.where, self.kind, self.cache_dir = reason, where, kind, cache_dir
        self.step = step  # the 1-based step it failed in, if it got that far
        self.retried = False  # it failed again when retried (:func:`retrying`)

    def message(self) -> str:
        where = f" {self.where}" if self.where else ""
        if self.kind == "memory":
            head = f"gradcheck: out of memory{where}: {self.reason}."
            tips = (
                "Try a smaller --img-size or --batch-size, fewer --steps, or close other "
                "jobs on this machine; `gradcheck doctor` checks the set-up."
            )
            return (
                f"{head}\nThis is a limit of the machine, not a finding about the model; "
                f"no report was written. {tips}"
            )
        if self.kind == "restart":
            return (
                f"gradcheck: {self.reason}; no report was written. Run the command again: "
                "Jittor starts from the rebuilt library."
            )
        else:
            head = f"gradcheck: Jittor failed{where}: {self.reason}."
            cache = self.cache_dir or "~/.cache/jittor/<build>/jit"
            tips = (
                "Try: rerun it (some Jittor compile failures are transient); rerun with "
                "JT_SYNC=1 trace_py_var=3 to locate the operator; if it persists, clear "
                f"Jittor's compiled operators (rm -rf {cache}) and rerun; "
                "`gradcheck doctor` checks the set-up."
            )
        return (
            f"{head}\nThis is an error inside Jittor, not a finding about the model; "
            f"no report was written. {tips}"
        )


# ------------------------------------------------------------------ signals
@dataclass
class _SignalState:
    depth: int = 0
    received: int | None = None  # the first signal seen while handling
    pid: int = 0  # the process that installed the handlers
    continued: bool = False  # stopped and continued (Ctrl-Z then fg, SIGSTOP then SIGCONT)


_signals = _SignalState()


def _on_signal(signum, frame):
    if os.getpid() != _signals.pid:  # a forked child that has not run _after_fork_in_child
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    if _signals.received is not None:
        # already on the way out: the same signal again (a process group's and the
        # supervisor's copy of one Ctrl-C or kill) must not break the exit path in two
        return
    _signals.received = signum
    raise Interrupted(signum)


def _on_continue(signum, frame):
    _signals.continued = True


def _install() -> None:
    _signals.pid = os.getpid()
    for sig in HANDLED_SIGNALS:
        signal.signal(sig, _on_signal)
    # a stop kills Jittor's compiler helpers (see is_stop_casualty): remember one happened
    signal.signal(signal.SIGCONT, _on_continue)
    # Jittor's SIGCHLD handler quick-exits (status 1) when a compiler child dies of a
    # signal, e.g. of the Ctrl-C sent to the whole process group, or of the OOM killer.
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    _report_crashes()


# A crash in compiled code (a kernel, oneDNN, Jittor itself): Jittor's handler writes to fd 2
# -- during a run the compile-progress pipe, whose reader dies with the process -- and calls
# exit(1), the status of a coverage failure: a silent "FAIL".  Instead faulthandler prints
# every thread's Python traceback on the stderr the process started with, and the process
# then dies of the signal (status 128 + N, e.g. 139 for SIGSEGV): never taken for a verdict.
CRASH_SIGNALS = tuple(
    getattr(signal, n)
    for n in ("SIGSEGV", "SIGFPE", "SIGBUS", "SIGILL", "SIGABRT")
    if hasattr(signal, n)
)
_STARTING_STDERR: int | None
try:
    _STARTING_STDERR = os.dup(2)  # before any redirection of fd 2
except OSError:  # pragma: no cover - no stderr at all
    _STARTING_STDERR = None
_crash_file = None


def _close_crash_file() -> None:
    import faulthandler

    faulthandler.disable()
    if _crash_file is not None:
        _crash_file.close()


def _report_crashes() -> None:
    global _crash_file
    import faulthandler

    if _STARTING_STDERR is None:
        return
    if _crash_file is None:
        import atexit

        from gradcheck.supervise import crash_file_path

        path = crash_file_path()  # under a supervisor: its file, shown if there is no rerun
        try:
            # open for the process's life: faulthandler writes to it; closed atexit
            _crash_file = open(path, "w") if path else None  # noqa: SIM115
        except OSError:
            _crash_file = None
        if _crash_file is None:
            _crash_file = os.fdopen(os.dup(_STARTING_STDERR), "w")
        atexit.register(_close_crash_file)
    faulthandler.disable()  # enable() is a no-op while enabled, even if replaced
    for sig in CRASH_SIGNALS:  # Jittor's handler out (it is a C sigaction), then ours
        _libc_default(sig)
    faulthandler.enable(file=_crash_file, all_threads=True)


def _after_fork_in_child() -> None:
    """A forked child (Jittor's compile pool forks Python workers) must die at once on
    SIGTERM/SIGINT, as it did under Jittor: a Python-level handler only runs between
    bytecodes, and Pool.terminate() at exit then waits forever on a worker blocked in C."""
    if _signals.depth:
        _signals.depth = 0
        for sig in HANDLED_SIGNALS:
            try:
                signal.signal(sig, signal.SIG_DFL)
            except ValueError:  # forked from a thread that Python does not take as main
                _libc_default(sig)


def _libc_default(sig: int) -> None:
    import ctypes

    libc = ctypes.CDLL(None)
    libc.signal.argtypes, libc.signal.restype = [ctypes.c_int, ctypes.c_void_p], ctypes.c_void_p
    libc.signal(int(sig), None)  # SIG_DFL


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def reclaim_signals() -> None:
    """Re-install gradcheck's handlers (call once Jittor's core is loaded); a no-op outside
    :func:`handling_signals` or off the main thread."""
    if _signals.depth and _main_thread():
        _install()


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def handling_signals() -> Iterator[None]:
    """SIGINT/SIGTERM raise :class:`Interrupted` in the block; the previous handlers (Python's,
    or Jittor's) are put back afterwards, so an in-process caller (tests) is left as it was."""
    if not _main_thread():
        yield
        return
    saved = {
        sig: signal.getsignal(sig) for sig in HANDLED_SIGNALS + (signal.SIGCHLD, signal.SIGCONT)
    }
    if _signals.depth == 0:
        _signals.received = None
        _signals.continued = False
    _signals.depth += 1
    _install()
    try:
        yield
    finally:
        _signals.depth -= 1
        for sig, handler in saved.items():
            if handler is not None:
                signal.signal(sig, handler)


def signal_received() -> int | None:
    return _signals.received


# ------------------------------------------------------------------ Jittor failures
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# Jittor's fatal log line: "[f 1126 13:20:30.624733 64 executor.cc:686] text"
_FATAL = re.compile(r"\[f \d{4} [\d:.]+ [\w:]+ ([\w./-]+\.(?:cc|h|cpp|cu|py):\d+)\]\s*([^\n]*)")
_OP_FAILED = re.compile(r"((?:Execute fused|Compile) operator\(\d+/\d+\)\s*failed)")
_MEMORY = ("out of memory", "std::bad_alloc", "cannot allocate memory", "memory exhausted")


def _text(exc: BaseException) -> str:
    return _ANSI.sub("", str(exc))


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        yield e
        e = e.__cause__ or e.__context__


def jittor_cause(exc: BaseException) -> BaseException | None:
    """The exception in ``exc``'s chain that comes from inside Jittor (a fatal log line of its
    C++ core, an operator that failed to compile or execute, or memory), if any.  A workload
    error whose cause is one (the loss synced a failing operator) counts too: the deepest
    such exception of the chain is returned, the one with Jittor's whole message."""
    found: BaseException | None = None
    for e in _chain(exc):
        if isinstance(e, MemoryError):
            found = e
            continue
        text = _text(e)
        if _FATAL.search(text) or _OP_FAILED.search(text):
            # Jittor's argument-checking errors at op creation ("Wrong inputs arguments" with
            # a shape check) are the workload's bug, not Jittor's: only execution counts
            if (
                "Wrong inputs arguments" in text
                and not _OP_FAILED.search(text)
                and "compil" not in text.lower()
            ):
                return None
            found = e
    return found


def is_compiler_flake(exc: BaseException) -> bool:
    """A failure inside Jittor's own operator compiler (op_compiler.cc), not a g++ error."""
    e = jittor_cause(exc)
    return e is not None and "op_compiler.cc" in _text(e)


def is_stop_casualty(exc: BaseException) -> bool:
    """A compile command that failed in a run that was stopped and continued (Ctrl-Z then
    ``fg``).  Jittor compiles each operator through a Python helper (``asm_tuner.py``, which
    runs g++) whose SIGCHLD handler quits ("Caught SIGCHLD ... quick exit") when its child
    merely stops or continues: a stop of the process group during a compile fails the
    operator, though nothing is wrong with it."""
    e = jittor_cause(exc)
    return _signals.continued and e is not None and "Run cmd failed" in _text(e)


STOP_CASUALTY = "a stop (Ctrl-Z or SIGSTOP) while Jittor compiled killed its compiler helper"


def is_transient(exc: BaseException) -> bool:
    """A known transient Jittor fault that a rerun gets past: its operator compiler's own
    failure, a compile killed by a stop of the run, or Jittor's exit after rebuilding its
    core library while starting."""
    restart = isinstance(exc, JittorFailure) and exc.kind == "restart"
    return restart or is_compiler_flake(exc) or is_stop_casualty(exc)


def _shorten(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


_OP_TYPE = re.compile(r"\[OP TYPE\]:\s*(\S+)")


def jittor_reason(exc: BaseException) -> str:
    """One line from Jittor's multi-line error: which operator failed, and why."""
    if isinstance(exc, MemoryError):
        return f"MemoryError: {exc}" if str(exc) else "MemoryError"
    text = _text(exc)
    op = _OP_FAILED.search(text)
    parts = [op.group(1)] if op else []
    op_type = _OP_TYPE.search(text)
    if op and op_type:
        parts[0] += f" (a {op_type.group(1)} operator)"
    fatals = [(loc, why.strip()) for loc, why in _FATAL.findall(text)]
    fatals = [(loc, why) for loc, why in fatals if why and not (op and why.startswith(op.group(1)))]
    if fatals:
        loc, why = fatals[-1]
        loc = os.path.basename(loc)
        # a generated operator's source file is named after its whole key: leave it out
        parts.append(why if len(loc) > 40 else f"{loc}: {why}")
    elif not op:
        lines = [ln for ln in text.strip().splitlines() if ln.strip()]
        parts = [lines[0] if lines else type(exc).__name__]
    return _shorten(": ".join(parts))


def _kind(exc: BaseException) -> str:
    if isinstance(exc, MemoryError) or any(m in _text(exc).lower() for m in _MEMORY):
        return "memory"
    return "jittor"


def jittor_cache_dir() -> str:
    """Where Jittor keeps compiled operators (empty before Jittor is imported)."""
    jt = sys.modules.get("jittor")
    try:
        return os.path.join(str(jt.flags.cache_path), "jit") if jt is not None else ""
    except Exception:  # noqa: BLE001 - a hint only
        return ""


def as_jittor_failure(exc: BaseException, where: Where | None = None) -> JittorFailure | None:
    cause = jittor_cause(exc)
    if cause is None:
        return None
    return JittorFailure(
        jittor_reason(cause),
        where=str(where or ""),
        kind=_kind(cause),
        cache_dir=jittor_cache_dir(),
        step=(where.step or None) if where else None,
    )


@dataclass
class Where:
    """Where a run is, for the message of a failure: set by the step callback."""

    what: str = ""  # e.g. "gold_yolo_s"
    step: int = 0
    total: int = 0
    phase: str = "loading the model"

    def set(self, step: int, total: int, phase: str) -> None:
        self.step, self.total, self.phase = step, total, phase

    def __str__(self) -> str:
        of = f" of {self.what}" if self.what else ""
        if self.step:
            return f"in step {self.step}/{self.total} ({self.phase}){of}"
        return f"while {self.phase}{of}"


_T = TypeVar("_T")


def retrying(attempt: Callable[[Where], _T], where: Where, on_retry: Callable) -> _T:
    """Run ``attempt(where)``; if it fails inside Jittor's operator compiler, run it once more
    and call ``on_retry(result, first_failure)`` on the second result (to record it).  Any
    other Jittor failure is raised as :class:`JittorFailure` (chained to the original)."""
    try:
        return attempt(where)
    except Exception as exc:  # classified right here
        failure = as_jittor_failure(exc, where)
        if failure is None:
            raise
        if failure.kind != "jittor" or not is_compiler_flake(exc):
            raise failure from exc
    first = failure
    try:
        result = attempt(where)
    except Exception as exc:
        again = as_jittor_failure(exc, where)
        if again is None:
            raise
        again.reason += f" (after a retry; first attempt: {first.reason})"
        again.retried = True
        raise again from exc
    on_retry(result, first)
    return result


# ------------------------------------------------------------------ the CLI's mapping
def user_errors() -> tuple:
    """Exceptions that mean bad input (exit 2): each carries one line naming the bad value."""
    from gradcheck.policy import ConfigError
    from gradcheck.report import ReportError
    from gradcheck.runtime import RuntimeSetupError
    from gradcheck.workload import WorkloadError

    return (ConfigError, ReportError, RuntimeSetupError, WorkloadError, BadInput)


class MachineError(OSError):
    """The machine cannot do what was asked (a full disk, an I/O error): exit 3, one line."""


class BadInput(ValueError):
    """A bad command-line value found by the CLI itself (exit 2)."""


def classify(exc: BaseException) -> tuple:
    """``(exit code, message for stderr)`` for an exception that ended a command."""
    if isinstance(exc, (Interrupted, KeyboardInterrupt)) or signal_received() is not None:
        signum = getattr(exc, "signum", None) or signal_received() or signal.SIGINT
        code = 128 + signum
        what = "interrupted" if signum == signal.SIGINT else "terminated"
        return code, f"gradcheck: {what}; no report written"
    if isinstance(exc, JittorFailure):
        return EXIT_INTERNAL, exc.message()
    failure = as_jittor_failure(exc)
    if failure is not None:
        return EXIT_INTERNAL, failure.message()
    if isinstance(exc, user_errors()):
        return EXIT_USAGE, f"gradcheck: error: {exc}"
    if isinstance(exc, MachineError):
        return EXIT_INTERNAL, f"gradcheck: error: {exc}"
    detail = _shorten(f"{type(exc).__name__}: {_text(exc)}")
    hint = "" if os.environ.get(TRACEBACK_ENV) else f" Set {TRACEBACK_ENV}=1 to see the traceback."
    return EXIT_INTERNAL, (
        f"gradcheck: internal error: {detail}\nNo report was written. "
        f"This is a bug in gradcheck or in the workload's own code.{hint}"
    )
