"""How often does the default gate give a different outcome on the same code?  (target: 0)

Runs the project's own gate N times, each a fresh process exactly as CI runs it
(`gradcheck run --quiet --output ...` in the repository root, so with the [gradcheck] settings
of setup.cfg: Gold-YOLO-S, 3 steps, 640 px), and compares the outcomes: exit code, verdict,
every parameter's status and the comparison against the committed baseline.  Prints one line
per run and then how many outcomes differ from the most common one.  A run that fails inside
Jittor (exit 3) shows its message; a run that needed gradcheck's one retry says so.

    python3 bench/bench_flaky.py            # N=20
    python3 bench/bench_flaky.py --runs 3 --keep out/flaky
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def outcome(code: int, report_path: Path, baseline: Path) -> tuple:
    """What a CI sees of one run, without timings or timestamps."""
    if not report_path.exists():
        return (code, "no report", "", "")
    data = json.loads(report_path.read_text())
    statuses = json.dumps(sorted((p["name"], p["status"]) for p in data["params"]))
    digest = hashlib.sha256(statuses.encode()).hexdigest()[:12]
    gate = subprocess.run(
        [
            sys.executable,
            "-m",
            "gradcheck.cli",
            "compare",
            str(baseline),
            str(report_path),
            "--quiet",
        ],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
    )
    return (code, data["verdict"]["result"], digest, gate.stdout.strip() or gate.stderr.strip())


def _jit_dirs() -> list:
    """Jittor's compiled-operator folders
    (~/.cache/jittor/jt<ver>/<cc>/<py>/<os>/<cpu>/<arch>/<branch>/jit)."""
    return list((Path.home() / ".cache" / "jittor").glob("jt*/*/*/*/*/*/*/jit"))


def _new_libs(since: float) -> int:
    """Operator libraries compiled since ``since``: the op-compiler failure can only happen
    while Jittor compiles a new fused operator.  (The cache is shared: other processes count.)"""
    n = 0
    for d in _jit_dirs():
        with os.scandir(d) as it:
            n += sum(1 for e in it if e.name.endswith(".so") and e.stat().st_mtime >= since)
    return n


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
    )
    return env


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", "-n", type=int, default=20)
    ap.add_argument("--baseline", default=str(ROOT / "reports" / "gold_yolo_s.json"))
    ap.add_argument("--keep", default=None, help="keep the reports in this folder")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per run")
    args = ap.parse_args()

    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="gradcheck-flaky-"))
    folder.mkdir(parents=True, exist_ok=True)
    results = []
    for i in range(1, args.runs + 1):
        report = folder / f"run{i:02d}.json"
        report.unlink(missing_ok=True)
        t0, wall0 = time.perf_counter(), time.time()
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "gradcheck.cli", "run", "--quiet", "--output", str(report)],
                cwd=ROOT,
                env=_env(),
                capture_output=True,
                text=True,
                timeout=args.timeout,
            )
            code, err = proc.returncode, proc.stderr
        except subprocess.TimeoutExpired:
            code, err = -1, f"timed out after {args.timeout:.0f} s"
        seconds = time.perf_counter() - t0
        compiled = _new_libs(wall0)
        out = outcome(code, report, Path(args.baseline))
        retried = report.exists() and any(
            w.startswith("retried:") for w in json.loads(report.read_text())["verdict"]["warnings"]
        )
        results.append((out, retried))
        print(
            f"run {i:2d}/{args.runs}: exit {code}, {seconds:6.1f} s, verdict {out[1]}, "
            f"statuses {out[2] or '-'}, {out[3]}, {compiled} op libs compiled meanwhile"
            + (" [retried once]" if retried else ""),
            flush=True,
        )
        if code not in (0, 1):
            print("   " + "\n   ".join(err.strip().splitlines()[-6:]), flush=True)
    counts = collections.Counter(out for out, _ in results)
    common, n_common = counts.most_common(1)[0]
    differ = len(results) - n_common
    print(
        f"\n{len(results)} runs of the default gate: {differ} outcome(s) differ from the most "
        f"common one (exit {common[0]}, verdict {common[1]}, {common[3]}); target 0; "
        f"{sum(r for _, r in results)} run(s) needed the op-compiler retry"
    )
    return 0 if differ == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
