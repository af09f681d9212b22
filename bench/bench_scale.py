"""What gradcheck costs as models grow: bare and under gradcheck, side by side, at growing size.

Models (``bench/scale_train.py``, a plain training script run in zero-code mode): residual
MLPs of 100, 500 and 1,500 blocks (604, 3,004 and 9,004 parameter tensors), and one with a
single 10,000 x 10,000 layer (1e8 values in one tensor).  For each:

* **wall and peak RSS**, bare vs ``gradcheck run --steps N -- python scale_train.py``: fresh
  processes on a warm Jittor cache, alternating, ``--reps`` each after one untimed run of each
  (so that Jittor's compile of new shapes lands on neither side), as ``bench_script.py`` does;
* **gradcheck's phases** (one more run, in-process timers around its functions): the graph
  walk (``graph.analyse``), the value snapshots (``Snapshot``), the gradient norms' fetch
  (``GradSummary.results``: their compute runs inside the step's own execution), building the
  report (``StepRecorder.report``) and writing it (``save_report``);
* **the report**: JSON and HTML size, and the wall time of ``gradcheck compare R R`` and
  ``gradcheck show R`` (median of 5 fresh processes after an untimed one);
* **growth**: how each figure grows per doubling of the tensor count, between the deep
  models (2.0x per doubling is linear).

    python3 bench/bench_scale.py                          # 604 / 3,004 / 9,004 tensors + 1e8
    python3 bench/bench_scale.py --blocks 100,500 --wide 0 --reps 1     # a quick look
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_script import BARE, ROOT, measure  # the same bare run and meter

SCRIPT = str(Path(__file__).with_name("scale_train.py"))

# gradcheck in this process, unsupervised, with a timer around each phase; the totals go to
# the file named by argv[1] when the command ends
PHASES = r"""
import json, os, sys, time
os.environ["GRADCHECK_SUPERVISE"] = "0"
out, words = sys.argv[1], sys.argv[2:]
from gradcheck import graph, observe, report, snapshot, supervise
totals = {}
def timed(owner, name, label):
    f = getattr(owner, name)
    def wrapper(*a, **k):
        t = time.perf_counter()
        try:
            return f(*a, **k)
        finally:
            totals[label] = totals.get(label, 0.0) + time.perf_counter() - t
    setattr(owner, name, wrapper)
timed(graph, "analyse", "graph walk")
for name in ("__init__", "queue", "compare"):
    timed(snapshot.Snapshot, name, "snapshot")
timed(snapshot.GradSummary, "results", "gradient norms")
timed(observe.StepRecorder, "report", "report building")
timed(report, "save_report", "writing")
real_exit = supervise.exit_at_once
def exit_at_once(code):
    with open(out, "w") as f:
        json.dump(totals, f)
    real_exit(code)
supervise.exit_at_once = exit_at_once
supervise.leave = exit_at_once
from gradcheck.cli import main
main(words)
"""
PHASE_NAMES = ("graph walk", "snapshot", "gradient norms", "report building", "writing")


def wall(cmd: list, reps: int = 5) -> float:
    """The median wall of ``reps`` fresh processes, after one untimed run.  Python caches its
    bytecode, as on a user's machine: a ``PYTHONDONTWRITEBYTECODE`` set in the environment (as
    in some containers) would have every process compile gradcheck's modules again (0.04-0.08 s
    here), a cost no installed gradcheck pays."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def case(words: list, steps: int, reps: int, folder: Path) -> dict:
    py = sys.executable
    bare = [py, "-c", BARE, str(steps), SCRIPT, *words]
    probed = [
        py,
        "-m",
        "gradcheck",
        "run",
        "--steps",
        str(steps),
        "--quiet",
        "--",
        "python",
        SCRIPT,
        *words,
    ]
    for cmd in (bare, probed):  # warm the cache, untimed
        measure(cmd)
    rows: dict = {"bare": [], "gradcheck": []}
    for _ in range(reps):
        for name, cmd in (("bare", bare), ("gradcheck", probed)):
            w, rss, code, _ = measure(cmd)
            if name == "bare" and code != 0 or name == "gradcheck" and code not in (0, 1):
                sys.exit(f"{name} exited with {code}: {' '.join(cmd)}")
            rows[name].append((w, rss))
    med = {
        k: (statistics.median(w for w, _ in v), statistics.median(r for _, r in v))
        for k, v in rows.items()
    }
    rep, page, phases = folder / "r.json", folder / "r.html", folder / "phases.json"
    subprocess.run(
        [
            py,
            "-c",
            PHASES,
            str(phases),
            "run",
            "--steps",
            str(steps),
            "--quiet",
            "-o",
            str(rep),
            "--html",
            str(page),
            "--",
            "python",
            SCRIPT,
            *words,
        ],
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    data = json.loads(rep.read_text())
    return {
        "tensors": len(data["params"]) + len(data["buffers"]),
        "values": sum(p["numel"] for p in data["params"]),
        "bare s": med["bare"][0],
        "gradcheck s": med["gradcheck"][0],
        "wall x": med["gradcheck"][0] / med["bare"][0],
        "RSS x": med["gradcheck"][1] / med["bare"][1],
        **{k: json.loads(phases.read_text()).get(k, 0.0) for k in PHASE_NAMES},
        "JSON MB": rep.stat().st_size / 1e6,
        "HTML MB": page.stat().st_size / 1e6,
        "compare s": wall([py, "-m", "gradcheck", "compare", str(rep), str(rep)]),
        "show s": wall([py, "-m", "gradcheck", "show", str(rep)]),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--blocks", default="100,500,1500", help="deep models' block counts")
    parser.add_argument("--wide", type=int, default=10000, help="the big layer's width (0: none)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--reps", type=int, default=2)
    args = parser.parse_args()
    cases = [(f"deep {b}", ["--blocks", b, "--steps", "100"]) for b in args.blocks.split(",")]
    if args.wide:
        cases.append((f"wide {args.wide}", ["--wide", str(args.wide), "--steps", "100"]))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, words in cases:
            folder = Path(tmp) / label.replace(" ", "_")
            folder.mkdir()
            results[label] = case(words, args.steps, args.reps, folder)
            print(f"{label}: done", file=sys.stderr)
    keys = list(next(iter(results.values())))
    print(
        f"first {args.steps} optimizer steps; wall and RSS: medians of {args.reps} alternating "
        "runs; phases in seconds (whole run)"
    )
    print(f"{'':16}" + "".join(f"{label:>14}" for label in results))
    for k in keys:
        print(f"{k:16}" + "".join(f"{_fmt(k, r[k]):>14}" for r in results.values()))
    deep = [r for label, r in results.items() if label.startswith("deep")]
    if len(deep) > 1:
        print("growth per doubling of the tensor count (2.00x: linear)")
        for k in ("gradcheck s", *PHASE_NAMES, "JSON MB", "HTML MB", "compare s", "show s"):
            steps = [
                _per_doubling(a["tensors"], b["tensors"], a[k], b[k])
                for a, b in zip(deep, deep[1:])
            ]
            print(f"{k:16}" + "".join(f"{s:>13.2f}x" for s in steps))


def _per_doubling(n1: int, n2: int, v1: float, v2: float) -> float:
    if v1 <= 0 or v2 <= 0:
        return float("nan")
    return 2 ** (math.log(v2 / v1) / math.log(n2 / n1))


def _fmt(key: str, v) -> str:
    if isinstance(v, int):
        return f"{v:,}"
    if key.endswith(" x"):
        return f"{v:.2f}x"
    return f"{v:.3f}"


if __name__ == "__main__":
    main()
