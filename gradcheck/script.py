"""``gradcheck run -- python train.py ARGS``: probe the user's own training script, unmodified.

:func:`parse_command` reads what follows ``--`` (``python train.py ARGS``, ``train.py ARGS`` or
``python -m package.module ARGS``); :func:`run_script` runs it in this process, as Python
would (its own ``sys.argv``, ``__main__``, ``sys.path[0]``), with a
:class:`gradcheck.observe.StepRecorder` attached to Jittor's optimizers, and returns the
report of its first ``steps`` optimizer steps.  The script is stopped there (the recorder
raises :class:`~gradcheck.observe.StopScript` out of the optimizer call), or with
``keep_going`` runs on to its end unobserved; its exit status is kept in the report's config.

The script's own output goes to stderr while it runs, so stdout carries only the report.
The script is the user's program: one that is not found, raises or exits before its first
optimizer step, or never steps one is a :class:`ScriptError` (exit 2), with the script's own
traceback (gradcheck's frames left out) in ``script_traceback``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import runpy
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from gradcheck.workload import WorkloadError

if TYPE_CHECKING:
    from gradcheck.report import Report

_PYTHON = ("python", "python3")


class ScriptError(WorkloadError):
    """The user's script cannot be probed (exit 2): its traceback, if any, is the script's."""

    def __init__(self, message: str, script_traceback: str = ""):
        super().__init__(message)
        self.script_traceback = script_traceback


@dataclass
class Command:
    """What to run: a file or a module, and the ``sys.argv`` it gets."""

    path: str | None = None
    module: str | None = None
    args: list = field(default_factory=list)

    @property
    def file(self) -> str:
        """The script's path, for a Command that is no module (parse_command sets one)."""
        assert self.path is not None, "a Command names a file or a module"
        return self.path

    @property
    def label(self) -> str:
        return f"-m {self.module}" if self.module else os.path.basename(self.file)

    @property
    def words(self) -> list:
        head = ["python", "-m", self.module] if self.module else ["python", self.file]
        return head + list(self.args)


def _is_python(word: str) -> bool:
    base = os.path.basename(word)
    return (
        base in _PYTHON
        or base.startswith("python3.")
        or (
            os.path.realpath(word) == os.path.realpath(sys.executable)
            if os.path.sep in word
            else False
        )
    )


def parse_command(words) -> Command:
    """``python train.py ARGS`` / ``train.py ARGS`` / ``python -m pkg.mod ARGS`` -> Command."""
    words = list(words)
    if words and _is_python(words[0]):
        words = words[1:]
    if not words:
        raise ScriptError("nothing to run after --: give a script, e.g. -- python train.py")
    if words[0] == "-m":
        if len(words) < 2:
            raise ScriptError("-m needs a module name, e.g. -- python -m mypkg.train")
        module = words[1]
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            raise ScriptError(f"no module named {module!r} (from -m {module})")
        return Command(module=module, args=words[2:])
    if words[0].startswith("-"):
        raise ScriptError(f"unsupported python option {words[0]!r}: give a script or -m module")
    path = words[0]
    if not Path(path).is_file():
        raise ScriptError(f"script {path} not found")
    return Command(path=path, args=words[1:])


@dataclass
class ScriptRun:
    """What running the script gave."""

    report: Report
    exit_status: int | None = None  # the script's own, when it ended by itself
    script_traceback: str = ""  # when it raised after some recorded steps


def run_script(
    command: Command, steps: int, policy=None, keep_going: bool = False, on_step=None
) -> ScriptRun:
    """Run ``command`` with a :class:`~gradcheck.observe.StepRecorder` on Jittor's optimizers;
    the report of its first ``steps`` optimizer steps.  See the module doc."""
    from gradcheck import errors, runtime, supervise
    from gradcheck.observe import StepRecorder, StopScript

    runtime.import_jittor()  # the script's `import jittor` finds it ready
    errors.reclaim_signals()
    supervise.watch_writes()  # its files, flushed at exit only if it opened any
    recorder = StepRecorder(steps, name=command.label, keep_going=keep_going, on_step=on_step)
    exit_status, raised = None, None
    saved_argv, saved_path = sys.argv[:], sys.path[:]
    main_before = sys.modules.get("__main__")
    recorder.attach()
    try:
        if command.module:
            sys.argv = [command.module] + list(command.args)  # runpy sets argv[0] to the file
            sys.path.insert(0, os.getcwd())
        else:
            sys.argv = [command.file] + list(command.args)
            sys.path.insert(0, os.path.dirname(os.path.abspath(command.file)))
        with contextlib.redirect_stdout(sys.stderr):
            if command.module:
                runpy.run_module(command.module, run_name="__main__", alter_sys=True)
            else:
                runpy.run_path(command.file, run_name="__main__")
        exit_status = 0
    except StopScript:
        pass
    except SystemExit as exc:
        exit_status = _exit_status(exc)
    except (KeyboardInterrupt, errors.Interrupted):
        raise
    except Exception as exc:  # noqa: BLE001 - the script's own failure, reported as such
        raised = exc
    finally:
        supervise.own_writes()  # what opens files from here on is gradcheck
        recorder.detach()
        sys.argv, sys.path[:] = saved_argv, saved_path
        if main_before is not None:
            sys.modules["__main__"] = main_before
    recorder.end()
    failure = errors.as_jittor_failure(raised) if raised is not None else None
    if failure is not None:
        raise failure from raised
    tb = script_traceback(raised) if raised is not None else ""
    if recorder.steps_made == 0:
        _raise_no_steps(command.label, raised, exit_status, tb)
    config = _script_config(command, recorder.steps_made, keep_going, exit_status, raised)
    report = recorder.report(policy, config)
    if raised is not None:
        report.verdict.warnings.append(
            f"the script raised {type(raised).__name__} after {recorder.steps_made} recorded "
            f"step(s): {_one_line(raised)}"
        )
    return ScriptRun(report, exit_status, tb)


def _raise_no_steps(label: str, raised, exit_status, tb: str) -> NoReturn:
    """The script ended before its first optimizer step: say how, as a ScriptError."""
    if raised is not None:
        raise ScriptError(
            f"the script {label} raised {type(raised).__name__} before its "
            f"first optimizer step: {_one_line(raised)}",
            tb,
        ) from raised
    if exit_status:
        raise ScriptError(
            f"the script {label} exited with status {exit_status} before its first optimizer step"
        )
    raise ScriptError(
        f"the script {label} ended without stepping a jittor optimizer "
        "(gradcheck records jittor.optim.Optimizer steps)"
    )


def _script_config(
    command: Command, steps_made: int, keep_going: bool, exit_status, raised
) -> dict:
    """The report's config: the command, how many steps it made, how the script ended."""
    from gradcheck import runtime

    config = {
        "mode": "script",
        "command": command.words,
        "steps_made": steps_made,
        "keep_going": keep_going,
    }
    jt = runtime.import_jittor()
    if getattr(jt, "in_mpi", False):
        config["nproc"] = int(jt.world_size)
    if exit_status is not None:
        config["script_exit"] = exit_status
    if raised is not None:
        config["script_exit"] = 1
        config["script_error"] = f"{type(raised).__name__}: {_one_line(raised)}"
    return config


def _exit_status(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)  # as Python does with sys.exit("message")
    return 1


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def script_traceback(exc: BaseException) -> str:
    """The traceback as the script would print it: gradcheck's and runpy's frames left out."""
    own = os.path.dirname(os.path.abspath(__file__))
    tb = exc.__traceback__
    while tb is not None:
        raw = tb.tb_frame.f_code.co_filename
        fname = os.path.abspath(raw)
        if not (fname.startswith(own) or raw in ("<frozen runpy>", runpy.__file__)):
            break
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))
