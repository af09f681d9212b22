"""The port's convolution forward against Jittor's own, on whole Gold-YOLO training steps.

``gold_yolo/layers/conv.py`` runs the float32 CPU forward as torch's oneDNN training forward;
without it Jittor's conv tuner runs ``mkl_conv`` (an inference forward, NHWC reorders).  One
process, one model: the steps alternate between the two paths (the switch is the module's
compile flags: without them ``Conv2d`` takes Jittor's path), and the medians are printed.

    python3 bench/bench_conv.py [--variants n,s] [--img-sizes 320,640] [--steps 6]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def measure(variant: str, img: int, steps: int, warmup: int = 2) -> dict:
    from bench_gold_yolo import build_ours  # ours as the other benches build it

    jt, model, loss_fn, opt, images, targets = build_ours(variant, img, 2)
    from gold_yolo.layers import conv

    flags = conv._FLAGS
    if flags is None:
        raise SystemExit("oneDNN is not wired in: both paths would be Jittor's")
    times = {"jittor": [], "ours": []}
    try:
        for i in range(warmup + steps):
            for side, f in (("jittor", None), ("ours", flags)):
                conv._FLAGS = f
                t = time.perf_counter()
                loss, _ = loss_fn(model(images), targets, 0, i)
                opt.step(loss)
                jt.sync_all(True)
                if i >= warmup:
                    times[side].append(time.perf_counter() - t)
    finally:
        conv._FLAGS = flags
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", default="n,s")
    ap.add_argument("--img-sizes", default="320,640")
    ap.add_argument("--steps", type=int, default=6, help="timed steps per side (alternating)")
    a = ap.parse_args()
    print(f"# batch 2, median of {a.steps} alternating steps after 2 warm-up steps each")
    print(f"{'variant':<8}{'size':>5}{'Jittor conv':>13}{'ours':>9}{'ratio':>8}")
    for v in [v.strip() for v in a.variants.split(",") if v.strip()]:
        for img in [int(s) for s in a.img_sizes.split(",") if s.strip()]:
            m = measure(v, img, a.steps)
            print(
                f"{v:<8}{img:5d}{m['jittor']:11.3f} s{m['ours']:7.3f} s"
                f"{m['ours'] / m['jittor']:7.2f}x",
                flush=True,
            )


if __name__ == "__main__":
    main()
