"""What ``--nproc 2`` costs: ``gradcheck run`` on one process against ``gradcheck run --nproc 2``.

Runs the two alternately (``--repeat`` times each, every run its own process) with the
project's setup.cfg [gradcheck] settings unless told otherwise (gold_yolo_s, 3 steps at 640,
global batch 2: one image per rank under ``--nproc 2``), and prints per run and as medians:
wall time of the whole command (start-up, build, steps, gather, report) and the per-step
seconds the reports record (rank 0's under MPI).  Needs OpenMPI (``mpirun``, ``mpicc``).
Run on an otherwise idle machine; say so when it was not.

    python3 bench/bench_mpi.py [--model gold_yolo_s] [--steps 3] [--img-size 640]
                               [--batch-size 2] [--nproc 2] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def one(args, nproc: int, out: Path) -> dict:
    cmd = [sys.executable, "-m", "gradcheck.cli", "run", "--quiet", "--output", str(out)]
    for flag in ("model", "steps", "img_size", "batch_size"):
        value = getattr(args, flag)
        if value is not None:
            cmd += [f"--{flag.replace('_', '-')}", str(value)]
    if nproc > 1:
        cmd += ["--nproc", str(nproc)]
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode not in (0, 1):
        sys.exit(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stderr}")
    report = json.loads(out.read_text())
    return {
        "wall": wall,
        "steps": [s["seconds"] for s in report["steps"]],
        "load": load,
        "verdict": report["verdict"]["result"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model")
    ap.add_argument("--steps", type=int)
    ap.add_argument("--img-size", type=int)
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    runs: dict = {1: [], args.nproc: []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            for n in runs:
                r = one(args, n, Path(tmp) / f"r{n}_{i}.json")
                runs[n].append(r)
                print(
                    f"nproc {n}: wall {r['wall']:.1f} s, steps "
                    + ", ".join(f"{s:.2f}" for s in r["steps"])
                    + f" s, verdict {r['verdict']}, load average {r['load']:.1f}",
                    flush=True,
                )
    med = {n: statistics.median(r["wall"] for r in rs) for n, rs in runs.items()}
    print(
        f"median wall: 1 process {med[1]:.1f} s, --nproc {args.nproc} {med[args.nproc]:.1f} s "
        f"({med[args.nproc] / med[1]:.2f}x)"
    )


if __name__ == "__main__":
    main()
