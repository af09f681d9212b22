"""What ``gradcheck.watch`` costs over a long run: the same training loop bare and under
``watch(model, optimizer, every=K)``, side by side in one process (blocks alternating, so load
on the machine hits both alike).

Each block runs ``--steps`` optimizer steps from the same model state (values restored between
blocks); the watched block samples steps 1, 1+K, ... (the recorder attached for those steps
only).  Prints the median wall time per block and the watched/bare ratio: the amortised
overhead (goal: at most 1.02x at every=100 on Gold-YOLO-N).

    python3 bench/bench_watch.py --model gold_yolo_n --img-size 320 --steps 300 --every 100
    python3 bench/bench_watch.py --steps 20 --every 10 --reps 1      # a tiny MLP: proves it runs
"""

from __future__ import annotations

import argparse
import statistics
import time


def build(name: str, img_size: int, batch_size: int):
    """(model, optimizer, step function) of a training loop."""
    from gradcheck import runtime

    jt = runtime.import_jittor()
    runtime.seed_everything(0)
    if name == "mlp":
        model = jt.nn.Sequential(jt.nn.Linear(32, 64), jt.nn.ReLU(), jt.nn.Linear(64, 1))
        optimizer = jt.nn.SGD(model.parameters(), 0.01, momentum=0.9)
        x, y = jt.randn(16, 32), jt.randn(16, 1)

        def step():
            optimizer.step(((model(x) - y) ** 2).mean())

        return model, optimizer, step
    import gold_yolo

    model = gold_yolo.build_model(name)
    model.train()
    loss_fn = gold_yolo.build_loss(name)
    optimizer = gold_yolo.build_optimizer(model, name, batch_size=batch_size)
    images, targets = gold_yolo.synthetic_batch(img_size, batch_size, 0)

    def step():
        loss, _ = loss_fn(model(images), targets, 0, 0)
        optimizer.step(loss)

    return model, optimizer, step


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="mlp", help="mlp or gold_yolo_n|s|m|l")
    p.add_argument("--img-size", type=int, default=320)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--every", type=int, default=100)
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args()

    import gradcheck
    from gradcheck import runtime

    jt = runtime.import_jittor()
    model, optimizer, step = build(args.model, args.img_size, args.batch_size)
    start = {k: v.numpy().copy() for k, v in model.state_dict().items()}

    def block(watched: bool) -> float:
        for k, v in model.state_dict().items():
            v.assign(jt.array(start[k]))
        jt.sync_all(True)
        t = time.perf_counter()
        if watched:
            with gradcheck.watch(model, optimizer, every=args.every):
                for _ in range(args.steps):
                    step()
                jt.sync_all(True)
        else:
            for _ in range(args.steps):
                step()
            jt.sync_all(True)
        return time.perf_counter() - t

    block(False), block(True)  # compile and warm up, untimed
    times = {"bare": [], "watch": []}
    for _ in range(args.reps):
        times["bare"].append(block(False))
        times["watch"].append(block(True))
    bare, watched = (statistics.median(times[k]) for k in ("bare", "watch"))
    print(
        f"{args.model}: {args.steps} steps per block, watch every={args.every}, "
        f"{args.reps} alternating blocks each"
    )
    print(f"bare   {bare:8.2f} s\nwatch  {watched:8.2f} s\nratio  {watched / bare:8.3f}x")


if __name__ == "__main__":
    main()
