"""Where a Gold-YOLO training step spends its time, ours (Jittor) against the official PyTorch one.

    python3 bench/profile_phases.py --variant n --img-size 320 [--steps 5] \\
        --official /work/ext/official/Detection/Gold-YOLO --pythonpath /work/ext/offdeps \\
        [--ops 25]

Phases: forward, loss (assigner included), backward, optimizer update.  Ours runs lazily, so
each phase is forced with a ``jt.sync`` at its end (this costs a little fusion across the
boundaries: the "phased" total is printed next to the plain step).  The official side uses
manual timers (torch is eager).  The steps alternate ours / official as in
``bench_gold_yolo.py``; printed are the medians.  With ``--ops N`` one more plain step of
ours runs under Jittor's profiler and its N most expensive operators are printed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", default="n")
    ap.add_argument("--img-size", type=int, default=320)
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--official", default="")
    ap.add_argument("--pythonpath", default="")
    ap.add_argument(
        "--ops", type=int, default=0, help="print the N costliest ops of one step (both sides)"
    )
    a = ap.parse_args()

    sys.path.insert(0, str(ROOT / "bench"))
    from bench_gold_yolo import build_ours

    name, img, bs = f"gold_yolo_{a.variant}", a.img_size, a.batch_size
    jt, model, loss_fn, opt, images, targets = build_ours(a.variant, img, bs)

    def ours_plain(step):
        loss, _ = loss_fn(model(images), targets, 0, step)
        opt.step(loss)
        jt.sync_all(True)

    def ours_phased(step):
        t = [time.perf_counter()]
        out = model(images)
        jt.sync([out[1], out[2]] + list(out[0]))
        t.append(time.perf_counter())
        loss, _ = loss_fn(out, targets, 0, step)
        loss.sync()
        t.append(time.perf_counter())
        opt.backward(loss)
        jt.sync(
            [
                g
                for pg in opt.param_groups
                for g, p in zip(pg["grads"], pg["params"])
                if not p.is_stop_grad()
            ]
        )
        t.append(time.perf_counter())
        opt.step()
        jt.sync_all(True)
        t.append(time.perf_counter())
        return [t[i + 1] - t[i] for i in range(4)]

    ours_plain(0)
    off_plain = off_phased = None
    if a.official:
        sys.path.insert(0, str(ROOT / "bench"))
        import parity_official as po
        import torch

        po.import_official(a.official, [p for p in a.pythonpath.split(":") if p])
        from yolov6.solver.build import build_optimizer as off_build_optimizer

        cfg, off, loss_kw = po.build_official(a.official, a.variant, img)
        off.float()
        po.sync_weights(model, off)
        off.train()
        loss_t = po.OFF["loss"].ComputeLoss(**loss_kw)
        accumulate = max(1, round(64 / bs))
        cfg.solver.weight_decay *= bs * accumulate / 64
        opt_t = off_build_optimizer(cfg, off)
        x_t = torch.from_numpy(images.numpy().copy())
        targets_t = torch.from_numpy(targets.astype("float32").copy())

        def off_plain(step):
            opt_t.zero_grad()
            preds, _ = off(x_t)
            loss, _ = loss_t(preds, targets_t, 0, step)
            loss.backward()
            opt_t.step()

        def off_phased(step):
            t = [time.perf_counter()]
            opt_t.zero_grad()
            preds, _ = off(x_t)
            t.append(time.perf_counter())
            loss, _ = loss_t(preds, targets_t, 0, step)
            t.append(time.perf_counter())
            loss.backward()
            t.append(time.perf_counter())
            opt_t.step()
            t.append(time.perf_counter())
            return [t[i + 1] - t[i] for i in range(4)]

    sides = [("ours", ours_plain, ours_phased)]
    if off_plain:
        sides.append(("official", off_plain, off_phased))
    plain = {s: [] for s, _, _ in sides}
    phased = {s: [] for s, _, _ in sides}
    for step in range(1, a.steps + 2):
        for s, fp, fph in sides:
            t = time.perf_counter()
            fp(step)
            dt = time.perf_counter() - t
            ph = fph(step)
            if step > 1:
                plain[s].append(dt)
                phased[s].append(ph)
    names = ("forward", "loss+assign", "backward", "update")
    print(f"# {name} {img}px batch {bs}: median of {a.steps} alternating steps (ms)")
    print(
        f"{'phase':<14}"
        + "".join(f"{s:>12}" for s, _, _ in sides)
        + ("   ratio" if len(sides) == 2 else "")
    )
    rows = []
    for i, n in enumerate(names):
        vals = [statistics.median(p[i] for p in phased[s]) * 1e3 for s, _, _ in sides]
        rows.append(vals)
        print(
            f"{n:<14}"
            + "".join(f"{v:12.1f}" for v in vals)
            + (f"{vals[0] / vals[1]:8.2f}" if len(vals) == 2 and vals[1] else "")
        )
    vals = [statistics.median(sum(p) for p in phased[s]) * 1e3 for s, _, _ in sides]
    print(
        f"{'phased total':<14}"
        + "".join(f"{v:12.1f}" for v in vals)
        + (f"{vals[0] / vals[1]:8.2f}" if len(vals) == 2 else "")
    )
    vals = [statistics.median(plain[s]) * 1e3 for s, _, _ in sides]
    print(
        f"{'plain step':<14}"
        + "".join(f"{v:12.1f}" for v in vals)
        + (f"{vals[0] / vals[1]:8.2f}" if len(vals) == 2 else "")
    )

    if a.ops:
        jt.sync_all(True)
        jt.profiler.start(0, 0)
        ours_plain(a.steps + 2)
        jt.profiler.stop()
        rep = jt.profiler.report()
        head, body = rep[0], rep[1:]
        col = {k: i for i, k in enumerate(head)}
        total = sum(float(r[col["TotalTime"]]) for r in body)
        body.sort(key=lambda r: -float(r[col["TotalTime"]]))
        print(
            f"# Jittor profiler, one plain step: {len(body)} op kinds, {total / 1e6:.1f} ms op time"
        )
        for r in body[: a.ops]:
            tt = float(r[col["TotalTime"]])
            print(
                f"{tt / 1e6:8.2f} ms {100 * tt / total:5.1f}% x{int(r[col['Count']]):<5} "
                f"{r[col['Name']][:150]}"
            )
        if off_plain:
            from torch.profiler import ProfilerActivity, profile

            with profile(activities=[ProfilerActivity.CPU]) as prof:
                off_plain(a.steps + 2)
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=a.ops))


if __name__ == "__main__":
    main()
