"""The bundled workloads: Gold-YOLO n/s/m/l with their real loss, optimizer and data.

Each is the model in training mode, the official loss (VFL + IoU + DFL with the TAL
assigner), the official SGD parameter groups, and either the deterministic synthetic batch
(``gold_yolo.synthetic_batch``) or, with ``data=DIR``, a batch loaded from a YOLO-format
dataset.
"""

from __future__ import annotations

from typing import Optional

from gradcheck.workload import Workload, WorkloadError

NAMES = ("gold_yolo_n", "gold_yolo_s", "gold_yolo_m", "gold_yolo_l")
DEFAULTS = {"img_size": 320, "batch_size": 2}
FROZEN = {"detect.proj": "fixed DFL projection (0..reg_max), not trained, as upstream",
          "detect.proj_conv.weight": "fixed DFL projection, not trained, as upstream"}


def build(name: str, img_size: Optional[int] = None, batch_size: Optional[int] = None,
          seed: Optional[int] = 0, data: Optional[str] = None, num_classes: int = 80) -> Workload:
    import gold_yolo

    img_size = img_size or DEFAULTS["img_size"]
    batch_size = batch_size or DEFAULTS["batch_size"]
    if img_size % 32:
        raise WorkloadError(f"img_size {img_size} is not a multiple of 32 (Gold-YOLO's largest stride)")
    if batch_size < 1:
        raise WorkloadError(f"batch_size must be at least 1, got {batch_size}")
    if data is not None:
        try:
            images, targets = gold_yolo.load_batch(data, img_size, batch_size)
        except gold_yolo.DatasetError as exc:
            raise WorkloadError(str(exc)) from None
    else:
        images, targets = gold_yolo.synthetic_batch(img_size, batch_size, seed or 0)
    model = gold_yolo.build_model(name, num_classes=num_classes)
    loss_fn = gold_yolo.build_loss(name, num_classes=num_classes)
    optimizer = gold_yolo.build_optimizer(model, name, batch_size=batch_size)

    def loss(model, batch):
        imgs, tgts = batch
        out = loss_fn.compute(model(imgs), tgts, epoch_num=0, step_num=0)
        return out.total, out.terms, out.stats

    return Workload(model=model, batch=(images, targets), loss=loss, optimizer=optimizer,
                    frozen=dict(FROZEN), name=name,
                    info={"img_size": img_size, "batch_size": batch_size,
                          "data": str(data) if data else "synthetic"})
