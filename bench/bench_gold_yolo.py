"""Gold-YOLO training-step speed: ours (Jittor) against the official PyTorch model, in one run.

    python3 bench/bench_gold_yolo.py [--variants n,s,m,l] [--img-sizes 320,640] [--batch-size 2]
        [--steps 5] [--official DIR/Detection/Gold-YOLO --pythonpath /tmp/offdeps]

A step is forward + loss + backward + optimizer update on ``gold_yolo.synthetic_batch``:
ours is ``build_model`` / ``build_loss`` / ``build_optimizer`` (model in train mode);
the official side (only with ``--official``, imported at run time exactly as
``bench/parity_official.py`` does, never part of this repository) is its ``build_model``
(SyncBN converted to BatchNorm2d), ``ComputeLoss`` built like ``yolov6/core/engine.py`` and
its ``build_optimizer`` (SGD, Nesterov, weight decay scaled to the batch as the engine does),
with our initial weights copied in (``parity_official.sync_weights``).
Without ``--official`` only ours is timed.

Each (variant, size) runs in its own process.  In it, ours is built and stepped first, so
Jittor compiles (and forks its compile workers) before torch starts any thread pool; then
both sides get ``--warmup`` untimed steps, and the timed steps alternate ours / official
so that both see the same machine load.  Printed per row: median s/step of each side, the
ratio ours / official (< 1 = ours faster), and the process's peak RSS (both models live in
the one process when ``--official`` is given).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build_ours(variant: str, img: int, bs: int):
    """Our side of the comparison, as both benches build it: (jt, model in train mode, loss,
    optimizer, images, targets) for ``gold_yolo_<variant>`` on the synthetic batch, seed 0."""
    sys.path.insert(0, str(ROOT))
    import gold_yolo
    from gradcheck import runtime

    jt = runtime.import_jittor()
    name = f"gold_yolo_{variant}"
    runtime.seed_everything(0)
    model = gold_yolo.build_model(name)
    loss_fn = gold_yolo.build_loss(name, ori_img_size=img)
    opt = gold_yolo.build_optimizer(model, name, batch_size=bs)
    images, targets = gold_yolo.synthetic_batch(img, bs, 0)
    model.train()
    return jt, model, loss_fn, opt, images, targets


def worker(a) -> dict:
    import resource
    import statistics
    import time

    img, bs = a.img_size, a.batch_size
    jt, model, loss_fn, opt, images, targets = build_ours(a.variant, img, bs)

    def ours_step(step):
        loss, _ = loss_fn(model(images), targets, 0, step)
        opt.step(loss)
        jt.sync_all(True)
        return float(loss.item())

    t = time.perf_counter()
    ours_step(0)  # compiles every operator (cold cache) before torch runs
    first = time.perf_counter() - t

    off_step = None
    if a.official:
        sys.path.insert(0, str(ROOT / "bench"))
        import parity_official as po  # imports torch; the official code is loaded at run time
        import torch

        if a.torch_threads:
            torch.set_num_threads(a.torch_threads)
        po.import_official(a.official, [p for p in a.pythonpath.split(":") if p])
        from yolov6.solver.build import build_optimizer as off_build_optimizer  # official

        cfg, off, loss_kw = po.build_official(a.official, a.variant, img)
        off.float()
        po.sync_weights(model, off)  # the same weights: both sides assign the same positives
        off.train()
        loss_t = po.OFF["loss"].ComputeLoss(**loss_kw)
        accumulate = max(1, round(64 / bs))
        cfg.solver.weight_decay *= bs * accumulate / 64  # as yolov6/core/engine.py
        opt_t = off_build_optimizer(cfg, off)
        x_t = torch.from_numpy(images.numpy().copy())
        targets_t = torch.from_numpy(targets.astype("float32").copy())

        def off_step(step):
            opt_t.zero_grad()
            preds, _featmaps = off(x_t)  # as yolov6/core/engine.py
            loss, _ = loss_t(preds, targets_t, 0, step)
            loss.backward()
            opt_t.step()
            return float(loss.item())

    times = {"ours": [], "official": []}
    losses = {"ours": [], "official": []}
    for step in range(1, a.warmup + a.steps + 1):
        for side, fn in (("ours", ours_step), ("official", off_step)):
            if fn is None:
                continue
            t = time.perf_counter()
            loss = fn(step)
            dt = time.perf_counter() - t
            if step > a.warmup:
                times[side].append(dt)
                losses[side].append(loss)
    med = {k: statistics.median(v) for k, v in times.items() if v}
    return {
        "variant": a.variant,
        "img_size": img,
        "batch_size": bs,
        "first_ours": first,
        "median": med,
        "times": times,
        "losses": losses,
        "torch_threads": (torch.get_num_threads() if a.official else None),
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", default="n,s,m,l")
    ap.add_argument("--img-sizes", default="320,640")
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per side (alternating)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps per side after the first")
    ap.add_argument(
        "--official", default="", help="folder Detection/Gold-YOLO of the official sources"
    )
    ap.add_argument(
        "--pythonpath",
        default="",
        help="':'-separated folders appended to sys.path for the official model's "
        "dependencies (mmcv, addict)",
    )
    ap.add_argument(
        "--torch-threads", type=int, default=0, help="torch intra-op threads (0: torch's default)"
    )
    ap.add_argument("--json", default="", help="also write every row (all step times) here")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--variant", default="s", help=argparse.SUPPRESS)
    ap.add_argument("--img-size", type=int, default=320, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(worker(a)))
        return

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    side = "ours vs official PyTorch" if a.official else "ours only (no --official)"
    print(
        f"# Gold-YOLO training step (forward+loss+backward+update), batch {a.batch_size}, "
        f"{side}; median of {a.steps} alternating steps after {a.warmup} warm-up; "
        f"{os.cpu_count()} CPUs"
    )
    print(
        f"{'variant':<8}{'size':>5}{'ours s/step':>13}{'official s/step':>17}{'ratio':>8}"
        f"{'first (ours)':>14}{'peak RSS':>10}"
    )
    rows = []
    for v in [s.strip() for s in a.variants.split(",") if s.strip()]:
        for size in [int(s) for s in a.img_sizes.split(",") if s.strip()]:
            cmd = [
                sys.executable,
                str(Path(__file__).resolve()),
                "--worker",
                "--variant",
                v,
                "--img-size",
                str(size),
                "--batch-size",
                str(a.batch_size),
                "--steps",
                str(a.steps),
                "--warmup",
                str(a.warmup),
                "--official",
                a.official,
                "--pythonpath",
                a.pythonpath,
                "--torch-threads",
                str(a.torch_threads),
            ]
            out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
            if out.returncode:
                print(f"{v:<8}{size:>5}  failed: {(out.stderr.strip().splitlines() or ['?'])[-1]}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(r)
            m = r["median"]
            off = m.get("official")
            ratio = f"{m['ours'] / off:7.2f}x" if off else f"{'-':>8}"
            off_s = f"{off:15.3f}" if off else f"{'-':>15}"
            print(
                f"{v:<8}{size:>5}{m['ours']:11.3f}  {off_s}  {ratio}{r['first_ours']:12.1f} s"
                f"{r['rss_mb']:7.0f} MB",
                flush=True,
            )
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
