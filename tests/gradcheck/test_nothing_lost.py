"""Nothing is ever lost (issue 22, item 4): a report or baseline path that is a folder, a FIFO,
on a full disk or in a read-only folder gives one line and exit 2 or 3 with the old file
intact; two writers of one path leave one whole file; SIGKILL at any moment leaves the old
file or the whole new one, never part of one."""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import random
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fixtures import FIXTURES, ROOT
from gradcheck import supervise
from gradcheck.report import ReportError, load_report, write_atomic

ZOO = str(FIXTURES / "zoo.py")
OLD = '{"an": "old baseline"}\n'


def _no_litter(folder: Path, *keep: str) -> bool:
    return sorted(os.listdir(folder)) == sorted(keep)


def _run_args(out):
    return ("run", "--model", f"{ZOO}:healthy", "--steps", "1", "-q", "-o", str(out))


# ------------------------------------------------------------------ bad places
def test_a_folder_or_fifo_as_the_report_path(cli, tmp_path):
    folder = tmp_path / "r.json"
    folder.mkdir()
    res = cli(*_run_args(folder))
    assert res.exit_code == 2 and "is a directory" in res.stderr, res.output
    fifo = tmp_path / "f.json"
    os.mkfifo(fifo)
    res = cli(*_run_args(fifo))
    assert res.exit_code == 2, res.output
    assert res.stderr.splitlines() == [
        f"gradcheck: error: cannot write {fifo}: it is a FIFO, not a regular file"
    ]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)  # still the FIFO, nothing opened
    with pytest.raises(ReportError, match="it is a folder"):
        write_atomic(folder, "x")  # the library says it too


def test_a_read_only_folder(cli, tmp_path, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir()
    (folder / "r.json").write_text(OLD)
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):
            # root writes anywhere: make the folder refuse the way a read-only mount does
            def refuse(*a, **k):
                raise OSError(errno.EROFS, "Read-only file system")

            monkeypatch.setattr("gradcheck.report.os.access", lambda *a, **k: True)
            monkeypatch.setattr("gradcheck.report.tempfile.mkstemp", refuse)
        res = cli(*_run_args(folder / "r.json"))
        assert res.exit_code == 2, res.output
        lines = res.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith(
            f"gradcheck: error: cannot write {folder / 'r.json'}"
        ), res.stderr
        assert "read-only" in lines[0] or "permission denied" in lines[0]
        assert (folder / "r.json").read_text() == OLD and _no_litter(folder, "r.json")
    finally:
        folder.chmod(0o755)


def test_a_full_disk_exit_3_one_line_old_file_intact(cli, tmp_path, monkeypatch):
    out = tmp_path / "r.json"
    out.write_text(OLD)
    real_fsync = os.fsync

    def full(fd):
        if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")).startswith(".r.json."):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full)
    res = cli(*_run_args(out))
    assert res.exit_code == 3, res.output
    assert res.stderr.splitlines() == [
        f"gradcheck: error: cannot write {out}: no space left on "
        "device (the file there is unchanged)"
    ]
    assert out.read_text() == OLD and _no_litter(tmp_path, "r.json")


# ------------------------------------------------------------------ races and kills
def _writer(path, text, n):
    for _ in range(n):
        write_atomic(path, text)


def test_two_writers_of_one_path_leave_one_whole_file(tmp_path):
    path = tmp_path / "r.json"
    texts = [json.dumps({"writer": k, "pad": [k] * 200_000}) for k in (1, 2)]
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(path, t, 15)) for t in texts]
    for p in procs:
        p.start()
    seen = set()
    while any(p.is_alive() for p in procs):
        try:
            text = path.read_text()
        except FileNotFoundError:
            continue
        assert text in texts  # never a mix, never a part
        seen.add(text)
    for p in procs:
        p.join()
        assert p.exitcode == 0
    assert path.read_text() in texts and _no_litter(tmp_path, "r.json")


def test_sigkill_mid_write_leaves_the_old_file_or_the_whole_new_one(tmp_path):
    path = tmp_path / "baseline.json"
    path.write_text(OLD)
    new = json.dumps({"new": list(range(3_000_000))})  # ~20 MB: a write takes a while
    started = time.monotonic()
    _writer(tmp_path / "probe.json", new, 1)
    duration = time.monotonic() - started
    os.unlink(tmp_path / "probe.json")
    rng = random.Random(0)
    outcomes = set()
    for _ in range(20):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            try:
                write_atomic(path, new)
            finally:
                os._exit(0)
        time.sleep(rng.uniform(0, duration * 1.2))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        text = path.read_text()
        assert text in (OLD, new)
        outcomes.add(text == new)
        if text == new:
            path.write_text(OLD)
    # the killed writers' temporary files go with the next write of that path
    write_atomic(path, OLD)
    assert _no_litter(tmp_path, "baseline.json") and path.read_text() == OLD


@pytest.mark.slow
def test_sigkill_at_random_moments_of_a_real_run(tmp_path):
    """`gradcheck run -o baseline.json` over an existing baseline, its process group killed
    with SIGKILL at 20 random moments (and its supervisor alone, 4 times): the baseline is
    the old one or a whole new report, every time."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    baseline = tmp_path / "baseline.json"
    baseline.write_text(OLD)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for key in (supervise.ATTEMPT_ENV, supervise.DIR_ENV):
        env.pop(key, None)
    cmd = [sys.executable, "-m", "gradcheck.cli", *_run_args(baseline)]

    def start():
        return subprocess.Popen(
            cmd,
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    t0 = time.monotonic()
    assert start().wait(timeout=600) == 0
    duration = time.monotonic() - t0
    load_report(baseline)
    rng = random.Random(1)
    complete = 0
    for i in range(24):
        baseline.write_text(OLD)
        proc = start()
        time.sleep(rng.uniform(0, duration * 1.1))
        if i % 6 == 5:
            proc.kill()  # the supervisor alone: its child is told
        else:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        deadline = time.monotonic() + 60
        while _group_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _group_alive(proc.pid)  # no orphan still running
        text = baseline.read_text()
        if text != OLD:
            load_report(baseline)  # whole, or this raises
            complete += 1
    write_atomic(baseline, OLD)
    assert _no_litter(tmp_path, "baseline.json")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
