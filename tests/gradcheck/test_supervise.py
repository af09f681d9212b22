"""The supervised run (gradcheck/supervise.py), on real `gradcheck` processes: a crash in
compiled code before the verdict costs one rerun, never a second verdict; a second crash
exits 128 + N with both tracebacks; signals keep 130/143 and leave no report."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from fixtures import FIXTURES, ROOT, cli
from gradcheck import supervise

FAILURES = str(FIXTURES / "zoo_failures.py")


@pytest.fixture
def gradcheck_cli(tmp_path):
    """Start `python3 -m gradcheck.cli ARGS` from this checkout, in tmp_path, in a session of
    its own (so that a test can signal its whole process group, as a terminal does)."""
    # this pytest process imported Jittor, whose SIGCHLD handler quick-exits (status 1)
    # when a child dies of a signal
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)

    def start(*args, env=None):
        return cli.start(tmp_path, *args, env=env, new_session=True)

    return start


def _verdict_lines(out: str) -> list:
    return [ln for ln in out.splitlines() if ": PASS - " in ln or ": FAIL - " in ln]


def test_a_crash_on_the_first_attempt_reruns_once(gradcheck_cli, tmp_path):
    report = tmp_path / "r.json"
    proc = gradcheck_cli(
        "run",
        "--model",
        f"{FAILURES}:crashes_first_attempt",
        "--steps",
        "1",
        "-q",
        "-o",
        str(report),
    )
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert len(_verdict_lines(out)) == 1, out
    notes = [ln for ln in err.splitlines() if "running it once more" in ln]
    assert len(notes) == 1 and "SIGSEGV" in notes[0] and "zoo_failures.py" in notes[0], err
    assert "Fatal Python error" not in err  # the first traceback is not shown
    warnings = json.loads(report.read_text())["verdict"]["warnings"]
    retried = [w for w in warnings if w.startswith("retried: the first attempt crashed")]
    assert len(retried) == 1 and "SIGSEGV" in retried[0], warnings


def test_a_second_crash_exits_139_with_both_tracebacks(gradcheck_cli, tmp_path):
    report = tmp_path / "r.json"
    proc = gradcheck_cli(
        "run", "--model", f"{FAILURES}:segfaults", "--steps", "1", "-o", str(report)
    )
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 128 + signal.SIGSEGV, err
    assert _verdict_lines(out) == [] and not report.exists()
    assert err.count("Fatal Python error: Segmentation fault") == 2, err
    assert "--- attempt 1: SIGSEGV ---" in err and "--- attempt 2: SIGSEGV ---" in err
    assert err.count('zoo_failures.py", line') == 2  # each attempt's crashing frame


def test_a_crash_after_the_verdict_is_not_rerun(gradcheck_cli, tmp_path):
    proc = gradcheck_cli(
        "run", "--model", f"{FAILURES}:crashes_after_verdict", "--steps", "1", "-q"
    )
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert len(_verdict_lines(out)) == 1, out
    assert "running it once more" not in err and "the verdict stands" in err


@pytest.mark.parametrize(
    "sig,code,word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")]
)
@pytest.mark.parametrize("to_group", [False, True], ids=["parent", "group"])
def test_signals_keep_their_exit_code_and_leave_no_report(
    gradcheck_cli, tmp_path, sig, code, word, to_group
):
    """To the parent alone (`kill PID`: forwarded) or to the whole process group (a
    terminal's Ctrl-C, `kill -- -PGID`: both get it; still one message, no rerun)."""
    marker, report = tmp_path / "step-started", tmp_path / "r.json"
    proc = gradcheck_cli(
        "run",
        "--model",
        f"{FAILURES}:sleeps",
        "-o",
        str(report),
        env={"GRADCHECK_TEST_MARKER": str(marker)},
    )
    cli.wait_for(marker, proc, 300)
    if to_group:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert err.splitlines().count(f"gradcheck: {word}; no report written") == 1, err
    assert "Traceback" not in err and "running it once more" not in err
    assert not report.exists() and list(tmp_path.iterdir()) == [marker]


def test_only_a_real_command_line_without_jittor_forks(monkeypatch):
    """In-process callers (click's test runner, this pytest process, which imported Jittor)
    run unsupervised: a fork must not copy a live Jittor."""
    monkeypatch.setattr(supervise, "_command_line", False)
    assert not supervise._should_supervise()
    monkeypatch.setattr(supervise, "_command_line", True)
    monkeypatch.setenv(supervise.SWITCH_ENV, "0")
    assert not supervise._should_supervise()
    monkeypatch.delenv(supervise.SWITCH_ENV)
    from gradcheck import runtime

    runtime.import_jittor()
    assert not supervise._should_supervise()


def test_innermost_frame_names_the_crashing_threads_own_code():
    text = (
        "Fatal Python error: Segmentation fault\n\n"
        "Thread 0x00007f01 (most recent call first):\n"
        '  File "/usr/lib/python3.11/threading.py", line 9 in run\n\n'
        "Current thread 0x00007f02 (most recent call first):\n"
        f'  File "{os.path.dirname(os.__file__)}/ctypes/__init__.py", line 519 in string_at\n'
        '  File "/src/model.py", line 90 in loss\n'
        '  File "/src/probe.py", line 3 in check\n\nExtension modules: x\n'
    )
    assert supervise._innermost_frame(text) == "in loss (model.py:90)"
    assert supervise._crash_name(text) == "SIGSEGV"
    assert (
        supervise._innermost_frame(
            "Fatal Python error: Aborted\n\nCurrent thread 0x01 (most recent call first):\n"
            "  <no Python frame>\n"
        )
        == "in a thread running no Python code"
    )


@pytest.mark.parametrize(
    "model,rerun",
    [("stopped_mid_compile", True), ("compile_cmd_fails", False)],
    ids=["after-a-stop", "no-stop"],
)
def test_a_compile_killed_by_a_stop_is_rerun(gradcheck_cli, tmp_path, model, rerun):
    """Ctrl-Z then ``fg`` during a cold compile fails an operator (Jittor's compiler helper
    quits when its g++ child stops): the run goes on in a second attempt and names the stop.
    The same failure without a stop is a compile error: exit 3, no rerun."""
    report = tmp_path / "r.json"
    proc = gradcheck_cli(
        "run", "--model", f"{FAILURES}:{model}", "--steps", "1", "-q", "-o", str(report)
    )
    out, err = proc.communicate(timeout=600)
    if rerun:
        assert proc.returncode == 0, err
        assert len(_verdict_lines(out)) == 1, out
        notes = [ln for ln in err.splitlines() if "running it once more" in ln]
        assert len(notes) == 1 and "a stop (Ctrl-Z or SIGSTOP)" in notes[0], err
        warnings = json.loads(report.read_text())["verdict"]["warnings"]
        assert [w for w in warnings if "a stop (Ctrl-Z or SIGSTOP)" in w], warnings
    else:
        assert proc.returncode == 3, err
        assert "running it once more" not in err and not report.exists()


@pytest.mark.parametrize(
    "port,what",
    [
        ("port_crashes_first_attempt", "crashed with SIGSEGV"),
        ("port_flaky_first_attempt", "transient fault"),
    ],
)
def test_align_survives_a_first_attempt_crash_or_compiler_fault(
    gradcheck_cli, tmp_path, port, what
):
    pytest.importorskip("torch")
    out_path = tmp_path / "a.json"
    proc = gradcheck_cli(
        "align",
        "--port",
        f"{FIXTURES / 'crash_pairs.py'}:{port}",
        "--original",
        f"{FIXTURES / 'parity_pairs.py'}:original",
        "-q",
        "-o",
        str(out_path),
    )
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert [ln for ln in out.splitlines() if ln.startswith("align:")] == out.splitlines()
    assert len(out.splitlines()) == 1 and "aligned" in out
    assert err.count("running it once more") == 1 and what in err, err
    warnings = json.loads(out_path.read_text())["verdict"]["warnings"]
    assert [w for w in warnings if w.startswith("retried: the first attempt")], warnings


WATCH = r"""
import os, socket, subprocess, sys, tempfile
from gradcheck import supervise
what = sys.argv[1]
supervise.from_command_line()
supervise.watch_writes()
open(os.__file__).close()                       # reading never counts
if what == "file":
    open(os.path.join(tempfile.mkdtemp(), "log.txt"), "a")
elif what == "fd":
    r, w = os.pipe()
    os.fdopen(w, "wb")
elif what == "socket":
    socket.socket().close()
elif what == "subprocess":
    subprocess.run(["true"])
supervise.own_writes()
open(os.path.join(tempfile.mkdtemp(), "report.json"), "w").close()   # gradcheck's own
print(supervise._writes)
"""


@pytest.mark.parametrize(
    "what,state",
    [
        ("nothing", "clean"),
        ("file", "written"),
        ("fd", "written"),
        ("socket", "written"),
        ("subprocess", "written"),
    ],
)
def test_leave_looks_for_unflushed_files_only_if_the_script_could_have_any(what, state):
    """The quick exit flushes the script's open files by a scan of the heap (40 ms in a
    Gold-YOLO process), skipped when the script opened nothing it could write through a
    buffer; gradcheck's own report, written after the watch, does not count."""
    res = subprocess.run(
        [sys.executable, "-c", WATCH, what],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == [state]


# Jittor, when it has just rebuilt its jit_utils_core, prints this and exits with status 0
# from inside `import jittor` (jittor/compiler.py); this stand-in does that once, then hands
# the import on to the real Jittor
EXITS_ONCE = """
import os, sys
if not os.path.exists(os.environ["JITTOR_EXITED"]):
    open(os.environ["JITTOR_EXITED"], "w").close()
    print("jit_utils updated, please rerun your command.", file=sys.stderr)
    sys.exit(0)
sys.path.remove(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
del sys.modules["jittor"]
import importlib
sys.modules["jittor"] = importlib.import_module("jittor")
"""


@pytest.mark.parametrize("supervised", [True, False])
def test_jittor_exiting_in_its_import_is_never_a_verdict(gradcheck_cli, tmp_path, supervised):
    """Status 0 from Jittor's import must not read as a pass: supervised, the command runs
    once more (Jittor starts from the rebuilt library) and gives its one verdict; alone, it
    exits 3 with one paragraph that says to run it again, and writes no report."""
    fake = tmp_path / "fake"
    (fake / "jittor").mkdir(parents=True)
    (fake / "jittor" / "__init__.py").write_text(EXITS_ONCE)
    report = tmp_path / "r.json"
    env = {
        "PYTHONPATH": os.pathsep.join([str(fake), str(ROOT)]),
        "JITTOR_EXITED": str(tmp_path / "exited"),
        "GRADCHECK_SUPERVISE": "1" if supervised else "0",
    }
    model = f"{FIXTURES / 'zoo.py'}:healthy"
    proc = gradcheck_cli("run", "--model", model, "-q", "-o", str(report), env=env)
    out, err = proc.communicate(timeout=600)
    assert (tmp_path / "exited").exists(), err  # the stand-in did exit
    if supervised:
        assert proc.returncode == 0, err
        assert len(_verdict_lines(out)) == 1, out
        assert err.count("running it once more") == 1 and "jit_utils_core" in err, err
        warnings = json.loads(report.read_text())["verdict"]["warnings"]
        assert [w for w in warnings if "jit_utils_core" in w], warnings
    else:
        assert proc.returncode == 3, (out, err)
        assert not report.exists() and not _verdict_lines(out)
        assert "Run the command again" in err and "Traceback" not in err, err
