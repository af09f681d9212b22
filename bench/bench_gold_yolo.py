"""Gold-YOLO training-step speed and memory, per variant.

For each variant: a real training step (forward, the real loss, backward and the official
SGD step) on the synthetic batch at --img-size (default 320) and --batch-size (default 2).
Prints the first step (operator compiles included on a cold cache), the warm median over
--steps steps, and the process's peak RSS.  Each variant runs in its own process.
Reference: the official PyTorch Gold-YOLO-S takes about 3.2 CPU-seconds per step at 320,
batch 2 on this kind of machine; the goal is at most 1.5x that.

    python3 bench/bench_gold_yolo.py [--variants n,s,m,l] [--img-size 320] [--steps 5]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_S = 3.2   # s/step, official PyTorch Gold-YOLO-S, 320px, batch 2, CPU

WORKER = r"""
import json, resource, statistics, sys, time
import gold_yolo
from gradcheck import runtime
name, img, bs, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
runtime.seed_everything(0)
jt = runtime.import_jittor()
model = gold_yolo.build_model(name)
loss_fn = gold_yolo.build_loss(name)
opt = gold_yolo.build_optimizer(model, name, batch_size=bs)
images, targets = gold_yolo.synthetic_batch(img, bs, 0)
model.train()
times = []
for step in range(steps + 1):
    t = time.perf_counter()
    loss, items = loss_fn(model(images), targets, 0, step)
    opt.step(loss)
    jt.sync_all(True)
    times.append(time.perf_counter() - t)
print(json.dumps({"first": times[0], "median": statistics.median(times[1:]),
                  "min": min(times[1:]), "loss": float(loss.item()),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", default="n,s,m,l")
    ap.add_argument("--img-size", type=int, default=320)
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5, help="warm steps timed after the first")
    a = ap.parse_args()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    print(f"# Gold-YOLO training step, {a.img_size}px, batch {a.batch_size}, "
          f"median of {a.steps} warm steps")
    print(f"{'variant':<12}{'first step':>12}{'warm median':>13}{'warm min':>10}{'peak RSS':>11}")
    for v in a.variants.split(","):
        name = f"gold_yolo_{v.strip()}"
        out = subprocess.run([sys.executable, "-c", WORKER, name, str(a.img_size),
                              str(a.batch_size), str(a.steps)],
                             cwd=ROOT, env=env, capture_output=True, text=True)
        if out.returncode:
            print(f"{name:<12} failed: {out.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        note = ""
        if v.strip() == "s" and a.img_size == 320 and a.batch_size == 2:
            note = f"   ({r['median'] / REFERENCE_S:.2f}x official PyTorch's ~{REFERENCE_S} s; goal <= 1.5x)"
        print(f"{name:<12}{r['first']:>10.2f} s{r['median']:>11.2f} s{r['min']:>8.2f} s"
              f"{r['rss_mb']:>8.0f} MB{note}")


if __name__ == "__main__":
    main()
