"""What zero-code mode costs: a training script's first N optimizer steps, bare and under
``gradcheck run --steps N -- python ...``, side by side in one run.

Each measurement is a fresh process on a warm Jittor cache (one untimed run of each first),
the two alternating, so load on the machine hits both alike:

* bare: the script itself, stopped after its N-th optimizer step (a counter on
  ``jittor.optim.Optimizer.post_step`` that exits there), with Jittor set up as gradcheck sets
  it up (:mod:`gradcheck.runtime`: device, oneDNN; a plain ``import jittor`` may not start on
  this machine);
* gradcheck: ``python -m gradcheck run --steps N --quiet -- python SCRIPT ARGS``.

Wall time, peak RSS (``ru_maxrss`` of the child, from ``os.wait4``) and CPU time (user + system)
per process; the medians and the gradcheck/bare ratios are printed (goal: at most 1.1x wall and
RSS).  CPU time moves less than wall when something else runs on the machine.

    python3 bench/bench_script.py [--steps 3] [--reps 3] -- python -m gold_yolo.train \\
        --variant n --img-size 320 --batch-size 1 --no-warmup --accumulate 1
    python3 bench/bench_script.py --steps 2 --reps 1 -- python tests/fixtures/scripts/mnist_mlp.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The bare run: the script as `python SCRIPT ARGS` / `python -m MOD ARGS` would run it, ended
# by a counter after the N-th optimizer step (os._exit: no teardown in the timing).
BARE = r"""
import os, runpy, sys
n, words = int(sys.argv[1]), sys.argv[2:]
from gradcheck import runtime   # the same Jittor set-up as under gradcheck (device, oneDNN)
runtime.setup()
jt = runtime.import_jittor()
cls = jt.optim.Optimizer
post, count = cls.post_step, [0]
def post_step(self):
    post(self)
    count[0] += 1
    if count[0] >= n:
        jt.sync_all(True)
        sys.stdout.flush()
        os._exit(0)
cls.post_step = post_step
if words[0] == "-m":
    sys.argv = [words[1]] + words[2:]
    sys.path.insert(0, os.getcwd())
    runpy.run_module(words[1], run_name="__main__", alter_sys=True)
else:
    sys.argv = words
    sys.path.insert(0, os.path.dirname(os.path.abspath(words[0])))
    runpy.run_path(words[0], run_name="__main__")
"""


def measure(cmd: list) -> tuple:
    """(wall seconds, peak RSS MiB, exit status, CPU seconds) of one child process (with the
    processes it waited for: gradcheck's supervised run)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss / 1024, proc.returncode, usage.ru_utime + usage.ru_stime


def main() -> None:
    argv = sys.argv[1:]
    if "--" not in argv:
        sys.exit("usage: bench_script.py [--steps N] [--reps R] -- python SCRIPT ARGS")
    split = argv.index("--")
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args(argv[:split])
    words = argv[split + 1 :]
    if words and os.path.basename(words[0]).startswith("python"):
        words = words[1:]
    bare = [sys.executable, "-c", BARE, str(args.steps), *words]
    probed = [
        sys.executable,
        "-m",
        "gradcheck",
        "run",
        "--steps",
        str(args.steps),
        "--quiet",
        "--",
        "python",
        *words,
    ]
    for cmd in (bare, probed):  # warm the cache, untimed
        measure(cmd)
    rows = {"bare": [], "gradcheck": []}
    for _ in range(args.reps):
        for name, cmd in (("bare", bare), ("gradcheck", probed)):
            wall, rss, code, cpu = measure(cmd)
            if name == "bare" and code != 0:
                sys.exit(f"the bare script exited with {code} before {args.steps} steps")
            if name == "gradcheck" and code not in (0, 1):
                sys.exit(f"gradcheck exited with {code}")
            rows[name].append((wall, rss, cpu))
    med = {k: tuple(statistics.median(x[j] for x in v) for j in range(3)) for k, v in rows.items()}
    print(
        f"{' '.join(words)}: first {args.steps} optimizer steps, {args.reps} alternating runs each"
    )
    print(f"{'':10} {'wall s':>8} {'peak RSS MiB':>13} {'CPU s':>7}")
    for k, (w, r, c) in med.items():
        print(f"{k:10} {w:8.2f} {r:13.0f} {c:7.2f}")
    (bw, br, bc), (gw, gr, gc) = med["bare"], med["gradcheck"]
    print(f"{'ratio':10} {gw / bw:8.2f}x {gr / br:12.2f}x {gc / bc:6.2f}x")


if __name__ == "__main__":
    main()
