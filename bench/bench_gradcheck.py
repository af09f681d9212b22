"""What gradcheck costs: `gradcheck run` against a bare script doing the same steps.

Prints, per model (default: the project's setup.cfg [gradcheck] settings, i.e. what a
plain ``gradcheck run`` does: gold_yolo_s, 3 steps at 640, batch 2; ``--variants n,s,m,l``
measures gold_yolo_n ... gold_yolo_l with the same settings):

* bare:  wall time and peak RSS of a script that imports gold_yolo, builds the model, loss,
         optimizer and synthetic batch, and runs the same training steps (``optimizer.step``);
* probe: the same for ``gradcheck run --model ... --steps N --output ...``;
* ratio: probe / bare, whole process and steps alone, and peak RSS (goal: at most 1.15x
         wall and 1.3x peak RSS), and
* cold:  with ``--cold``, the probe again with an empty Jittor cache (a fresh HOME), which
         includes compiling Jittor's core and every operator (minutes).

Each measurement runs in its own process, its wall time taken from outside it (start-up and
exit included, on both sides); run on an otherwise idle machine.

    python3 bench/bench_gradcheck.py [--model gold_yolo_s | --variants n,s,m,l] [--img-size 640]
                                     [--steps 3] [--repeat 3] [--cold]
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

BARE = r"""
import json, resource, sys, time
import gold_yolo
from gradcheck import runtime
name = sys.argv[1]
img, bs, steps, seed = map(int, sys.argv[2:6])
runtime.seed_everything(seed)
model = gold_yolo.build_model(name)
loss_fn = gold_yolo.build_loss(name)
opt = gold_yolo.build_optimizer(model, name, batch_size=bs)
images, targets = gold_yolo.synthetic_batch(img, bs, seed)
jt = runtime.import_jittor()
model.train()
step_times = []
for step in range(steps):
    t = time.perf_counter()
    loss, items = loss_fn(model(images), targets, 0, step)
    opt.step(loss)
    jt.sync_all(True)
    step_times.append(time.perf_counter() - t)
print(json.dumps({"steps": step_times,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


PROBE = r"""
import json, resource, sys
from gradcheck.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(json.dumps({"rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "code": code}), file=sys.stderr)
"""


def run_bare(model, img, bs, steps, seed, env) -> dict:
    # wall timed from outside the process, as the probe's is: interpreter start-up and
    # Jittor's exit (about 0.6 s together) count on both sides
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", BARE, model, str(img), str(bs), str(steps), str(seed)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - t0
    return dict(json.loads(out.stdout.strip().splitlines()[-1]), wall=wall)


def run_probe(model, img, bs, steps, seed, env) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "r.json"
        t0 = time.perf_counter()
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                PROBE,
                "run",
                "--model",
                model,
                "--img-size",
                str(img),
                "--batch-size",
                str(bs),
                "--steps",
                str(steps),
                "--seed",
                str(seed),
                "--output",
                str(report),
                "--quiet",
            ],
            cwd=tmp,
            env=env,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - t0
        tail = json.loads(proc.stderr.strip().splitlines()[-1])
        if tail["code"] not in (0, 1):
            raise SystemExit(f"gradcheck run failed ({tail['code']}): {proc.stderr.strip()}")
        data = json.loads(report.read_text())
    return {
        "wall": wall,
        "rss_mb": tail["rss_mb"],
        "steps": [s["seconds"] for s in data["steps"]],
        "verdict": data["verdict"]["result"],
        "covered": data["summary"]["by_status"]["covered"],
        "trainable": data["summary"]["trainable"],
    }


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from gradcheck.policy import load_config
    from gradcheck.settings import resolve_settings

    # what a plain `gradcheck run` in the repository runs (config, else the model's own)
    cfg = resolve_settings({}, load_config(ROOT / "setup.cfg").settings)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=cfg.model or "gold_yolo_s")
    ap.add_argument("--img-size", type=int, default=cfg.img_size or 640)
    ap.add_argument("--batch-size", type=int, default=cfg.batch_size or 2)
    ap.add_argument("--steps", type=int, default=cfg.steps)
    ap.add_argument("--seed", type=int, default=cfg.seed)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each; the median is printed")
    ap.add_argument(
        "--cold", action="store_true", help="also time a run with an empty Jittor cache"
    )
    ap.add_argument(
        "--variants",
        default="",
        help="comma list of Gold-YOLO variants (n,s,m,l): one row each, instead of --model",
    )
    a = ap.parse_args()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    models = (
        [f"gold_yolo_{v.strip()}" for v in a.variants.split(",") if v.strip()]
        if a.variants
        else [a.model]
    )
    print(
        f"# {a.img_size}px batch {a.batch_size}, {a.steps} steps, median wall of {a.repeat} "
        f"(bare and probe alternate); goal <= 1.15x wall, <= 1.3x peak RSS"
    )
    print(
        f"{'model':<13}{'bare wall':>10}{'probe wall':>11}{'ratio':>7}{'bare steps':>11}"
        f"{'probe steps':>12}{'ratio':>7}{'bare RSS':>10}{'probe RSS':>10}{'ratio':>7}  verdict"
    )
    for model in models:
        args = (model, a.img_size, a.batch_size, a.steps, a.seed)
        run_bare(*args, env)  # warm the operator cache for this shape
        bare, probe = [], []
        for _ in range(a.repeat):
            bare.append(run_bare(*args, env))
            probe.append(run_probe(*args, env))
        rss_bare = max(x["rss_mb"] for x in bare)
        rss_probe = max(x["rss_mb"] for x in probe)
        med = statistics.median
        bw, pw = med(x["wall"] for x in bare), med(x["wall"] for x in probe)
        bs_ = med(sum(x["steps"]) for x in bare)
        ps_ = med(sum(x["steps"]) for x in probe)
        print(
            f"{model:<13}{bw:8.2f} s{pw:9.2f} s{pw / bw:6.2f}x{bs_:9.2f} s{ps_:10.2f} s"
            f"{ps_ / bs_:6.2f}x{rss_bare:7.0f} MB{rss_probe:7.0f} MB{rss_probe / rss_bare:6.2f}x"
            f"  {probe[-1]['verdict']} ({probe[-1]['covered']}/{probe[-1]['trainable']} covered)",
            flush=True,
        )
        if a.cold:
            with tempfile.TemporaryDirectory() as home:
                cold_env = dict(env, HOME=home)  # a fresh ~/.cache/jittor, never JITTOR_HOME
                t0 = time.perf_counter()
                c = run_probe(*args, cold_env)
                print(
                    f"{'':<13}cold cache: wall {time.perf_counter() - t0:7.2f} s   "
                    f"(compiles Jittor's core and every operator; verdict {c['verdict']})"
                )


if __name__ == "__main__":
    main()
