"""Runs side by side (issue 22, item 5): processes sharing one Jittor cache serialise on its
jittor.lock; a run that waits for it says so on its progress line, with the seconds, and both
runs finish with their own verdict."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time

import pytest

from fixtures import FIXTURES, cli
from gradcheck import cachelock

ZOO = str(FIXTURES / "zoo.py")


def test_waiting_for_reads_proc_locks(tmp_path):
    lock = tmp_path / "jittor.lock"
    lock.touch()
    ino = os.stat(lock).st_ino
    table = tmp_path / "locks"
    table.write_text(
        f"1: POSIX  ADVISORY  WRITE 500 fe:00:999 0 EOF\n"
        f"2: FLOCK  ADVISORY  WRITE 4242 fe:00:{ino} 0 EOF\n"
        f"2: -> FLOCK  ADVISORY  WRITE 77 fe:00:{ino} 0 EOF\n"
        f"3: POSIX  ADVISORY  WRITE 4243 00:2f:{ino} 0 EOF\n"
    )
    assert cachelock.waiting_for(str(lock), pid=77, locks_file=str(table)) == 4242
    assert cachelock.waiting_for(str(lock), pid=4242, locks_file=str(table)) is None
    assert cachelock.waiting_for(str(lock), pid=500, locks_file=str(table)) is None


@pytest.mark.skipif(not os.path.exists(cachelock.PROC_LOCKS), reason="needs Linux /proc/locks")
def test_the_watcher_sees_this_process_wait_and_for_how_long(tmp_path):
    lock = tmp_path / "jittor.lock"
    lock.touch()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import fcntl, sys, time\n"
                f"f = open({str(lock)!r}, 'w'); fcntl.flock(f, fcntl.LOCK_EX)\n"
                "print('held', flush=True); time.sleep(1.5)"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline() == "held\n"
    waits, done = [], []
    watcher = cachelock.LockWatcher(
        lambda s, h: waits.append((s, h)),
        lambda s, h: done.append((s, h)),
        interval=0.05,
        show_after=0.2,
        path=lambda: str(lock),
    ).start()
    t0 = time.monotonic()
    with open(lock, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # blocks until the holder exits
        blocked = time.monotonic() - t0
    time.sleep(0.2)
    watcher.stop()
    holder.wait()
    assert blocked > 0.5
    assert waits and all(h == holder.pid for _, h in waits)
    assert len(done) == 1 and done[0][1] == holder.pid
    assert abs(done[0][0] - blocked) < 0.3 and abs(watcher.total - blocked) < 0.3


def test_a_run_waiting_for_the_cache_lock_says_so_and_for_how_long(tmp_path):
    """This test holds the real cache lock (as another run importing Jittor would) for 3 s;
    the run's supervisor watches its child's waits from outside (the child holds the GIL
    while Jittor's C++ core waits)."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    from gradcheck import runtime

    runtime.import_jittor()
    path = cachelock.jittor_lock_path()
    assert path and os.path.exists(path)
    with open(path, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        proc = cli.start(tmp_path, "run", "--model", f"{ZOO}:healthy", "--steps", "1")
        time.sleep(3)
        fcntl.flock(held, fcntl.LOCK_UN)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    lines = err.splitlines()
    assert (
        f"gradcheck: waiting for Jittor's cache lock held by another process (pid "
        f"{os.getpid()}) ..." in lines
    ), err
    # (other processes sharing the cache may make it wait too: only ours is counted)
    waited = [
        ln
        for ln in lines
        if ln.startswith("gradcheck: waited ") and ln.endswith(f"(pid {os.getpid()})")
    ]
    assert len(waited) == 1, err
    seconds = float(waited[0].split()[2].rstrip("s"))
    assert 1.0 < seconds < 3.5


def test_two_runs_sharing_the_cache_both_finish_with_their_verdict(tmp_path):
    """Two `gradcheck run`s at once, on one Jittor cache and one report path: each exits with
    its own verdict (the zoo's `unused` fails, `healthy` passes) and the report file is one
    of the two, whole."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    from gradcheck.report import load_report

    out = tmp_path / "r.json"
    procs = {
        name: cli.start(
            tmp_path, "run", "--model", f"{ZOO}:{name}", "--steps", "2", "-q", "-o", str(out)
        )
        for name in ("healthy", "unused")
    }
    results = {name: (p.communicate(timeout=900), p.returncode) for name, p in procs.items()}
    assert results["healthy"][1] == 0, results["healthy"][0][1]
    assert results["unused"][1] == 1, results["unused"][0][1]
    assert ": PASS - " in results["healthy"][0][0] and ": FAIL - " in results["unused"][0][0]
    report = load_report(out)
    assert report.config["model"] in (f"{ZOO}:healthy", f"{ZOO}:unused")
    assert sorted(os.listdir(tmp_path)) == ["r.json"]
