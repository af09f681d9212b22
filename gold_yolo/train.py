"""Train Gold-YOLO: a ``tools/train.py``-style script over the port.

    python -m gold_yolo.train --variant s --img-size 640 --batch-size 2            # synthetic
    python -m gold_yolo.train --variant n --data path/to/yolo_dataset --epochs 10

The loop follows upstream's trainer (huawei-noah/Efficient-Computing, Detection/Gold-YOLO,
``yolov6/core/engine.py``: ``train_in_loop`` / ``train_in_steps`` / ``update_optimizer``):

* the model in training mode, the official loss (:func:`gold_yolo.build_loss`, called as
  upstream ``compute_loss(preds, targets, epoch_num, step_num)``), the official SGD parameter
  groups and batch-size scaling (:func:`gold_yolo.build_optimizer`);
* the per-iteration warm-up over ``max(round(warmup_epochs * iters_per_epoch), 1000)``
  iterations: ``accumulate`` from 1 up to ``64 / batch_size``, each group's ``lr`` from 0 (the
  biases, group 2: from ``warmup_bias_lr``) up to ``initial_lr * lf(epoch)``, ``momentum`` from
  ``warmup_momentum`` up to the solver's; the cosine ``lf`` per epoch
  (``((1 - cos(epoch * pi / epochs)) / 2) * (lrf - 1) + 1``);
* ``optimizer.backward(loss)`` per batch, ``optimizer.step()`` every ``accumulate`` batches.

Data: the deterministic synthetic batch of the bundled workload (:func:`gold_yolo.synthetic_batch`,
the same batch every iteration), or ``--data DIR`` (YOLO format: images/, labels/).
``--no-warmup --accumulate 1`` trains as the bundled workload ``gradcheck run --model
gold_yolo_X`` probes (initial lr and momentum, one batch per step), so that
``gradcheck run -- python -m gold_yolo.train --no-warmup --accumulate 1 ...`` and
``gradcheck run --model gold_yolo_X`` give the same per-step statuses.
"""

from __future__ import annotations

import argparse
import math

import numpy as np


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m gold_yolo.train", description=__doc__.split("\n")[0]
    )
    p.add_argument("--variant", default="s", choices=["n", "s", "m", "l"])
    p.add_argument("--img-size", type=int, default=640)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--iters", type=int, default=10, help="iterations per epoch (synthetic data)")
    p.add_argument("--data", default=None, help="a YOLO-format dataset folder")
    p.add_argument("--num-classes", type=int, default=80)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-warmup", action="store_true", help="initial lr/momentum from step 1")
    p.add_argument(
        "--accumulate",
        type=int,
        default=None,
        help="batches per optimizer step (default: upstream's schedule)",
    )
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    import gold_yolo
    from gradcheck import runtime

    name = f"gold_yolo_{args.variant}"
    cfg = gold_yolo.get_config(name)
    runtime.seed_everything(args.seed)
    if args.data:
        n_images = len(gold_yolo.YoloDataset(args.data, args.img_size))
        iters = max(1, n_images // args.batch_size)

        def batch(i):
            return gold_yolo.load_batch(
                args.data, args.img_size, args.batch_size, start=i * args.batch_size
            )
    else:
        iters = args.iters
        fixed = gold_yolo.synthetic_batch(
            args.img_size, args.batch_size, args.seed, args.num_classes
        )

        def batch(i):
            return fixed

    model = gold_yolo.build_model(name, num_classes=args.num_classes)
    model.train()
    compute_loss = gold_yolo.build_loss(name, num_classes=args.num_classes)
    optimizer = gold_yolo.build_optimizer(model, name, batch_size=args.batch_size)
    solver = cfg.solver
    lf = lambda x: ((1 - math.cos(x * math.pi / args.epochs)) / 2) * (solver.lrf - 1) + 1  # noqa: E731
    warmup_steps = 0 if args.no_warmup else max(round(solver.warmup_epochs * iters), 1000)
    full_accumulate = args.accumulate or max(1, round(64 / args.batch_size))
    last_opt_step = -1
    for epoch in range(args.epochs):
        for g in optimizer.param_groups:  # the per-epoch LambdaLR step
            g["lr"] = g["initial_lr"] * lf(epoch)
        for step in range(iters):
            curr_step = step + iters * epoch
            accumulate = full_accumulate
            if curr_step <= warmup_steps and not args.no_warmup:
                accumulate = args.accumulate or max(
                    1, round(np.interp(curr_step, [0, warmup_steps], [1, 64 / args.batch_size]))
                )
                for k, g in enumerate(optimizer.param_groups):
                    bias_lr = solver.warmup_bias_lr if k == 2 else 0.0
                    g["lr"] = float(
                        np.interp(
                            curr_step, [0, warmup_steps], [bias_lr, g["initial_lr"] * lf(epoch)]
                        )
                    )
                    g["momentum"] = float(
                        np.interp(
                            curr_step, [0, warmup_steps], [solver.warmup_momentum, solver.momentum]
                        )
                    )
            images, targets = batch(curr_step)
            loss, _ = compute_loss(model(images), targets, epoch, step)
            optimizer.backward(loss)
            if curr_step - last_opt_step >= accumulate:
                optimizer.step()
                last_opt_step = curr_step
            print(f"epoch {epoch} iter {step} loss {float(loss.item()):.4f}")


if __name__ == "__main__":
    main()
