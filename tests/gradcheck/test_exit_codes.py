"""Exit codes that mean one thing each, tested on real `gradcheck run` processes: a signal
gives 130/143 and its message, a failure inside Jittor gives 3 and one paragraph, and
neither leaves a report file or a traceback."""

from __future__ import annotations

import os
import signal

import pytest

from fixtures import FIXTURES, cli
from gradcheck import errors

FAILURES = str(FIXTURES / "zoo_failures.py")


@pytest.mark.parametrize(
    "sig,code,word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")]
)
def test_signal_during_a_step(tmp_path, sig, code, word):
    marker, report = tmp_path / "step-started", tmp_path / "r.json"
    proc = cli.start(
        tmp_path,
        "run",
        "--model",
        f"{FAILURES}:sleeps",
        "-o",
        str(report),
        env={"GRADCHECK_TEST_MARKER": str(marker)},
    )
    cli.wait_for(marker, proc, 120)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert f"gradcheck: {word}; no report written" in err.splitlines()
    assert "Traceback" not in err and "quick exit" not in err
    assert not report.exists() and list(tmp_path.iterdir()) == [marker]  # no temp file either


def test_jittor_failure_exit_3_one_paragraph(tmp_path):
    report = tmp_path / "r.json"
    proc = cli.start(
        tmp_path, "run", "--model", f"{FAILURES}:jittor_fails", "--steps", "2", "-o", str(report)
    )
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 3, err
    assert "Traceback" not in err and "Async error" not in err
    msg = [ln for ln in err.splitlines() if ln.startswith("gradcheck: Jittor failed")]
    assert len(msg) == 1, err
    assert "in step 1/2 (backward)" in msg[0] and "injected failure inside an op" in msg[0]
    for hint in ("rerun", "JT_SYNC=1", "rm -rf ", "gradcheck doctor"):
        assert hint in err
    assert not report.exists()


def test_a_crash_in_compiled_code_is_never_a_verdict(tmp_path):
    """Jittor's own SIGSEGV handler would exit with status 1 (a coverage failure) and write
    its message into the compile-progress pipe, lost: a silent FAIL.  The process must die
    of the signal instead, after a traceback on the real stderr; under the supervisor (a
    real command line) a crash on every attempt exits 139 with the tracebacks."""
    report = tmp_path / "r.json"
    # this pytest process imported Jittor, whose SIGCHLD handler quick-exits (status 1)
    # when a child dies of a signal -- as this child will
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for supervised, code in (("0", -signal.SIGSEGV), ("1", 128 + signal.SIGSEGV)):
        proc = cli.start(
            tmp_path,
            "run",
            "--model",
            f"{FAILURES}:segfaults",
            "-o",
            str(report),
            env={"GRADCHECK_SUPERVISE": supervised},
        )
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == code, (proc.returncode, err)
        assert "Segmentation fault" in err and "zoo_failures.py" in err, err
        assert not report.exists()


def test_compiler_flake_is_retried_once_and_recorded(cli, tmp_path, monkeypatch):
    monkeypatch.delenv("_GRADCHECK_TEST_FLAKED", raising=False)
    out = tmp_path / "r.json"
    res = cli(
        "run", "--model", f"{FAILURES}:flaky_compiler", "--steps", "1", "-o", str(out), "--quiet"
    )
    assert res.exit_code == 0, res.output
    from gradcheck.report import load_report

    warned = [w for w in load_report(out).verdict.warnings if w.startswith("retried:")]
    assert len(warned) == 1 and "op_compiler.cc:832" in warned[0] and "step 1/1" in warned[0]


def test_failure_that_persists_after_the_retry(cli, tmp_path):
    res = cli("run", "--model", f"{FAILURES}:always_flaky", "-o", str(tmp_path / "r.json"))
    assert res.exit_code == 3
    assert "after a retry" in res.stderr and "op_compiler.cc:832" in res.stderr
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize(
    "exc,code,text",
    [
        (MemoryError(), 3, "gradcheck: out of memory"),
        (
            RuntimeError("[f 1126 10:00:00.1 64 mem.cc:9] std::bad_alloc"),
            3,
            "gradcheck: out of memory",
        ),
        (ValueError("a bug"), 3, "gradcheck: internal error: ValueError: a bug"),
        (KeyboardInterrupt(), 130, "gradcheck: interrupted; no report written"),
        (errors.Interrupted(signal.SIGTERM), 143, "gradcheck: terminated; no report written"),
    ],
)
def test_classify(exc, code, text):
    got_code, message = errors.classify(exc)
    assert got_code == code and message.startswith(text) and "Traceback" not in message


def test_a_shape_error_at_op_creation_stays_bad_input():
    from gradcheck.workload import WorkloadError

    cause = RuntimeError(
        "Wrong inputs arguments, Please refer to examples(help(jt.matmul)).\n"
        "Failed reason:[f 1126 10:00:00.1 64 matmul_op.cc:30] Check failed: "
        "a->shape[1] == b->shape[0]"
    )
    try:
        raise WorkloadError("the loss raised RuntimeError: Wrong inputs") from cause
    except WorkloadError as exc:
        assert errors.classify(exc)[0] == 2


def test_forked_children_die_at_once_on_sigterm():
    """Jittor's compile pool forks Python workers; with gradcheck's Python-level handler
    inherited, a worker blocked in C never ran it and Pool.terminate() at exit waited forever
    (seen once in bench/bench_flaky.py).  Children get the default action back."""
    with errors.handling_signals():
        pid = os.fork()
        if pid == 0:  # the child reports what it would do on SIGTERM
            os._exit(0 if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL else 1)
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        assert signal.getsignal(signal.SIGTERM) is errors._on_signal  # the parent keeps its own


@pytest.mark.parametrize("fmt", ["table", "markdown", "junit", "json"])
@pytest.mark.parametrize("verdict", ["pass", "fail"])
def test_a_reader_that_stops_reading_leaves_the_verdict_code(tmp_path, fmt, verdict):
    """`gradcheck show R | head`: the pipe closes while the output is written.  The command
    still ends with its verdict's code, without a word on stderr: before, rich's console
    exited 1 (a coverage failure's code) and the markdown and JUnit writers raised, "internal
    error", exit 3.  The same for compare, with 3,000 changes to list."""
    from fixtures.reports import make_report
    from gradcheck.report import save_report

    names = [f"block{i}.linear.weight" for i in range(3000)]  # output over a pipe's 64 KiB
    before, after = tmp_path / "before.json", tmp_path / "after.json"
    save_report(make_report(**dict.fromkeys(names, "covered")), before)
    save_report(make_report(**dict.fromkeys(names, "zero")), after)
    allow = ["--allow", "block*"] if verdict == "pass" else []
    shown = before if verdict == "pass" else after
    expected = 0 if verdict == "pass" else 1
    for args in (["show", str(shown), "--verbose"], ["compare", str(before), str(after), *allow]):
        proc = cli.start(tmp_path, *args, "--format", fmt)
        proc.stdout.read(10)
        proc.stdout.close()  # the reader leaves
        err = proc.stderr.read()
        assert (proc.wait(timeout=120), err) == (expected, ""), args
