"""How often does a fresh process crash in compiled code?  (goal: 0 in 200, half of them cold)

K fresh processes, each running M real Gold-YOLO-N training steps (forward, loss, the port's
optimizer step) on a shape drawn at random: image sizes not divisible by 32 (padded with grey
up to the next multiple, as a letterbox does: the model's strides need it), tiny images,
batch 1, 3 or 5, images without any box.  Half the processes (``--cold``) start from an empty
operator cache: a fresh Jittor ``cache_name`` folder holding a copy of the warm cache's
compiled core but none of its operators, so that every operator is generated and compiled
again, in Jittor's parallel compiler (where the known crash lives).  The shared cache is never
touched; the cold folders are removed afterwards.

Two ways to run a process:

* ``--via bare`` (default): ``python3 bench/bench_crash.py --worker``, no gradcheck around it:
  the raw crash rate (a process that dies of a signal counts as a crash);
* ``--via gradcheck``: ``gradcheck run --model bench/bench_crash.py:workload``, supervised:
  what reaches a user (exit 128 + N), and how many crashes the one rerun absorbed.  A process
  counts as ok when it wrote its report (exit 0 or 1): Jittor's own quick exit is status 1
  too, so an exit 1 without a report is an error.

Prints one line per process, then ``crashes/runs`` per cache state::

    python3 bench/bench_crash.py --runs 4 --steps 2                # 4 warm
    python3 bench/bench_crash.py --runs 200 --cold-share 0.5       # the issue's figure
    python3 bench/bench_crash.py --runs 20 --via gradcheck

The figure can be gathered over several sittings: ``--log FILE`` appends one JSON line per
process (commit, date, cache state, shape, outcome), and ``--tally FILE`` prints the totals of
a log without running anything::

    python3 bench/bench_crash.py --runs 40 --cold-share 1 --via gradcheck \\
        --log bench/results/crash_runs.jsonl
    python3 bench/bench_crash.py --tally bench/results/crash_runs.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHAPE_ENV = "BENCH_CRASH_SHAPE"
SIZES = (33, 64, 70, 100, 127, 160, 203)  # most not divisible by 32; 33 and 64 are tiny
BATCHES = (1, 3, 5)


# ------------------------------------------------------------------ one process's work
def _batch(shape: dict):
    """Images (padded to a multiple of 32) and targets for ``shape``."""
    import numpy as np

    import gold_yolo
    from gradcheck import runtime

    jt = runtime.import_jittor()
    size, b = shape["size"], shape["batch"]
    padded = max(64, -(-size // 32) * 32)  # synthetic_batch draws stride-32 canvases
    images, targets = gold_yolo.synthetic_batch(padded, b, shape["seed"])
    canvas = images.numpy()
    canvas[:, :, size:, :] = 0.5  # the image is its top-left size x size corner,
    canvas[:, :, :, size:] = 0.5  # the rest grey padding, as a letterbox makes it
    targets = np.asarray(targets, dtype=np.float32)
    inside = (targets[:, 2] < size / padded) & (targets[:, 3] < size / padded)
    targets = targets[inside] if shape["boxes"] else np.zeros((0, 6), dtype=np.float32)
    return jt.array(canvas), targets


def workload():
    """``gradcheck run --model bench/bench_crash.py:workload``: Gold-YOLO-N on the shape in
    ``$BENCH_CRASH_SHAPE``."""
    import gold_yolo
    from gradcheck import Workload

    shape = json.loads(os.environ[SHAPE_ENV])
    images, targets = _batch(shape)
    model = gold_yolo.build_model("gold_yolo_n", num_classes=80)
    model.train()
    loss_fn = gold_yolo.build_loss("gold_yolo_n", num_classes=80)
    optimizer = gold_yolo.build_optimizer(model, "gold_yolo_n", batch_size=shape["batch"])

    def loss(model, batch):
        out = loss_fn.compute(model(batch[0]), batch[1], epoch_num=0, step_num=0)
        return out.total, out.terms, out.stats

    from gradcheck.bundled import RECOMMENDED

    return Workload(
        model=model,
        batch=(images, targets),
        loss=loss,
        optimizer=optimizer,
        frozen=dict(RECOMMENDED.expected_frozen),
        name="bench_crash",
    )


def worker(steps: int) -> None:
    """M bare training steps, no gradcheck: the raw crash rate."""
    from gradcheck import errors

    with errors.handling_signals():  # crashes die of their signal, with a traceback
        w = workload()
        errors.reclaim_signals()
        images, targets = w.batch
        for _ in range(steps):
            total, _, _ = w.loss(w.model, (images, targets))
            w.optimizer.step(total)
            print(f"loss {total.item():.4f}", flush=True)


# ------------------------------------------------------------------ the driver
def cold_cache(base: Path, n: int) -> str:
    """A ``cache_name`` whose folder holds the warm cache's core and none of its operators."""
    sys.path.insert(0, str(Path(__file__).parent))
    from sanitize import fresh_op_cache, warm_cache

    from gradcheck import errors

    name = f"{base.name}/{n}"
    fresh_op_cache(warm_cache(), name)
    errors.reclaim_signals()  # Jittor, imported there, quick-exits on Ctrl-C: no clean-up
    return name


def draw(rng: random.Random, seed: int) -> dict:
    return {
        "size": rng.choice(SIZES),
        "batch": rng.choice(BATCHES),
        "boxes": rng.random() > 0.25,
        "seed": seed,
    }


def run_one(shape: dict, steps: int, via: str, cache_name: str, timeout: float) -> dict:
    env = {
        **os.environ,
        SHAPE_ENV: json.dumps(shape),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    if cache_name:
        env["cache_name"] = cache_name
    report = Path(tempfile.gettempdir()) / f"bench_crash_{os.getpid()}.json"
    report.unlink(missing_ok=True)
    if via == "bare":
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--steps", str(steps)]
    else:
        cmd = [
            sys.executable,
            "-m",
            "gradcheck.cli",
            "run",
            "--model",
            f"{Path(__file__).resolve()}:workload",
            "--steps",
            str(steps),
            "-q",
            "-o",
            str(report),
        ]
    t0 = time.monotonic()
    code, err = _run_group(cmd, env, timeout)
    seconds = time.monotonic() - t0
    crashed = code is not None and (
        code < 0 or (via == "gradcheck" and code > 128 and code not in (130, 143))
    )
    retried = "running it once more" in err
    last = next((ln for ln in reversed(err.splitlines()) if ln.strip()), "")
    passed = (0, 1) if via == "gradcheck" else (0,)  # gradcheck: a verdict either way
    kind = "hung" if code is None else "crash" if crashed else "ok" if code in passed else "error"
    if kind == "ok" and via == "gradcheck" and not report.exists():
        # Jittor's quick exit is status 1 too, its message lost in the progress pipe: a
        # verdict is a written report, not an exit code
        kind, last = "error", f"exit {code} without a report (not a verdict)"
    report.unlink(missing_ok=True)
    return {
        "kind": kind,
        "code": code,
        "seconds": seconds,
        "retried": retried,
        "detail": last[:160],
    }


def _run_group(cmd: list[str], env: dict, timeout: float) -> tuple[int | None, str]:
    """Run ``cmd`` in a process group of its own: (exit code, None if it hung; its stderr).

    However this returns (exit, timeout, Ctrl-C or SIGTERM raised here), the whole group is
    killed: the compiler processes that Jittor starts would otherwise outlive the process
    and go on writing into a cold cache folder that the clean-up has removed.  stderr goes
    to a file, not a pipe, so that a leftover holding it open cannot keep us waiting."""
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace") as err:
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,  # its own group: Ctrl-C reaches it through us, then killpg
        )
        try:
            code: int | None = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass  # the group is gone
            proc.wait()
        err.seek(0)
        return code, err.read()


def _commit() -> str:
    """The checked-out commit (short), "unknown" outside a git clone."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
    except OSError:
        return "unknown"
    return out.stdout.strip() or "unknown"


def process_record(commit: str, state: str, shape: dict, steps: int, via: str, r: dict) -> dict:
    """One process's outcome as the log keeps it (one JSON object per line)."""
    return {
        "commit": commit,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "state": state,
        "via": via,
        "steps": steps,
        "shape": shape,
        **r,
    }


def append_log(path: Path, rec: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fh.write(json.dumps(rec, sort_keys=True) + "\n")


def tally_lines(records: list[dict]) -> dict[tuple[str, str, int], list[int]]:
    """(cache state, via, steps) -> [crashes, runs, absorbed by the rerun]."""
    tally: dict[tuple[str, str, int], list[int]] = {}
    for rec in records:
        t = tally.setdefault((rec["state"], rec["via"], rec["steps"]), [0, 0, 0])
        t[0] += rec["kind"] in ("crash", "hung")
        t[1] += 1
        t[2] += bool(rec["retried"])
    return tally


def print_totals(records: list[dict]) -> None:
    """Crashes per runs, per cache state, and the errors that are not crashes."""
    for (state, via, steps), (crashes, runs, absorbed) in sorted(tally_lines(records).items()):
        extra = f", {absorbed} absorbed by the rerun" if via == "gradcheck" else ""
        print(
            f"{state}: {crashes}/{runs} processes crashed (via {via}, {steps} step(s) each{extra})"
        )
    other = [r for r in records if r["kind"] == "error"]
    if other:
        why = other[0].get("note") or other[0]["detail"]
        print(f"{len(other)} exited with an error that is not a crash; first: {why}")


def print_tally(paths: list[Path]) -> None:
    """The totals of one or more logs written by ``--log``."""
    records = [json.loads(ln) for p in paths for ln in p.read_text().splitlines() if ln.strip()]
    commits = sorted({r["commit"] for r in records})
    dates = sorted(r["date"] for r in records)
    print(f"{len(records)} processes, commits {', '.join(commits)}, {dates[0]} .. {dates[-1]}")
    print_totals(records)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=4, help="processes in all (K)")
    ap.add_argument("--steps", type=int, default=2, help="training steps per process (M)")
    ap.add_argument(
        "--cold-share",
        type=float,
        default=0.0,
        help="share of the processes on a fresh operator cache (0.5: half)",
    )
    ap.add_argument("--via", choices=("bare", "gradcheck"), default="bare")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per process")
    ap.add_argument("--log", type=Path, help="append one JSON line per process to this file")
    ap.add_argument("--tally", type=Path, nargs="+", help="print the totals of these logs and stop")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.steps)
        return
    if args.tally:
        print_tally(args.tally)
        return
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    rng = random.Random(args.seed)
    n_cold = round(args.runs * args.cold_share)
    plan = ["cold"] * n_cold + ["warm"] * (args.runs - n_cold)
    rng.shuffle(plan)
    base = Path(f"bench_crash_cold_{os.getpid()}")
    commit, records, made = _commit(), [], []
    from gradcheck import errors

    try:
        with errors.handling_signals():  # Ctrl-C/SIGTERM raise here: the clean-up runs
            for i, state in enumerate(plan):
                shape = draw(rng, args.seed * 1000 + i)
                cache_name = ""
                if state == "cold":
                    cache_name = cold_cache(base, i)
                    made.append(cache_name)
                r = run_one(shape, args.steps, args.via, cache_name, args.timeout)
                records.append(process_record(commit, state, shape, args.steps, args.via, r))
                if args.log:
                    append_log(args.log, records[-1])
                note = " (a crash absorbed by the rerun)" if r["retried"] else ""
                detail = f": {r['detail']}" if r["kind"] != "ok" else ""
                print(
                    f"{i + 1:4d} {state} size {shape['size']:3d} batch {shape['batch']} "
                    f"{'boxes' if shape['boxes'] else 'no boxes'}: {r['kind']} "
                    f"(exit {r['code']}, {r['seconds']:.0f}s){note}{detail}",
                    flush=True,
                )
    finally:
        if made:
            from gradcheck import runtime

            warm = Path(runtime.import_jittor().flags.cache_path)
            shutil.rmtree(warm.parent / base.name, ignore_errors=True)
    print_totals(records)


if __name__ == "__main__":
    from gradcheck import errors

    code = 0
    try:
        main()
    except errors.Interrupted as exc:
        print(f"interrupted by signal {exc.signum}", file=sys.stderr)
        code = 128 + exc.signum
    sys.stdout.flush()
    sys.stderr.flush()
    # no interpreter shutdown: the Jittor imported for the cold caches leaves a compile pool
    # whose finaliser waits for ever on a lock a worker held when a Ctrl-C reached the group
    os._exit(code)
