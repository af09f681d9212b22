"""Where a newcomer's first run goes: Jittor's core, the operators, the steps.

A fresh HOME (so an empty Jittor cache, as on a new machine or CI runner), then, each in its
own process and timed from outside:

1. ``import jittor`` through gradcheck's runtime set-up: Jittor compiles its C++ core (and
   gradcheck lays out oneDNN);
2. ``gradcheck run --model M``: every operator of the model's step is compiled, then the
   steps run; gradcheck's own "compiled N Jittor operators in S s" lines give the operators'
   share;
3. the same run again, on the now warm cache: the steps and the set-up alone.

Prints one line per phase and each phase's share of the cold total (1 + 2).  The fresh HOME
is removed afterwards (``--keep`` leaves it).  Run it on an otherwise idle machine::

    python3 bench/bench_cold.py                        # gold_yolo_s, as the README's first run
    python3 bench/bench_cold.py --model gold_yolo_n
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

COMPILED = re.compile(r"compiled (\d+) Jittor operators? in ([\d.]+)s")


def timed(cmd: list[str], env: dict, cwd: str) -> tuple[float, int, str]:
    """(wall seconds, exit code, stderr) of one process."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    return time.perf_counter() - t0, proc.returncode, proc.stderr


def operators(stderr: str) -> tuple[int, float]:
    """Operators compiled and their seconds, summed over gradcheck's progress lines."""
    found = COMPILED.findall(stderr.replace("\r", "\n"))
    return sum(int(n) for n, _ in found), sum(float(s) for _, s in found)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="gold_yolo_s")
    ap.add_argument("--keep", action="store_true", help="leave the fresh HOME in place")
    args = ap.parse_args()
    home = tempfile.mkdtemp(prefix="bench-cold-home-")
    env = {k: v for k, v in os.environ.items() if k not in ("cache_path", "JITTOR_HOME")}
    env["HOME"] = home
    report = os.path.join(home, "report.json")
    run = [sys.executable, "-m", "gradcheck", "run", "--model", args.model, "-o", report]
    core_cmd = [sys.executable, "-c", "import gradcheck.runtime as r; r.import_jittor()"]
    try:
        core, rc0, err0 = timed(core_cmd, env, home)
        cold, rc1, err1 = timed(run, env, home)
        warm, rc2, err2 = timed(run, env, home)
    finally:
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
    for name, rc, err in (("core", rc0, err0), ("cold run", rc1, err1), ("warm run", rc2, err2)):
        if rc not in (0, 1):  # 1: the model's verdict, not a failure of the bench
            print(f"{name} exited {rc}:\n{err[-2000:]}", file=sys.stderr)
            return 3
    n_ops, op_s = operators(err1)
    total = core + cold
    rest = cold - op_s
    print(f"fresh HOME, {args.model}, {os.cpu_count()} CPU(s)")
    print(f"  Jittor core (import jittor)       {core:7.1f} s  {core / total:4.0%}")
    print(f"  operators ({n_ops} compiled)         {op_s:7.1f} s  {op_s / total:4.0%}")
    print(f"  the rest of the first run        {rest:7.1f} s  {rest / total:4.0%}")
    print(f"  cold total (core + first run)    {total:7.1f} s")
    print(f"  the same run, warm cache         {warm:7.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
