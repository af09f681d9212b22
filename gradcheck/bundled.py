"""The bundled workloads: Gold-YOLO n/s/m/l with their real loss, optimizer and data.

Each is the model in training mode, the official loss (VFL + IoU + DFL with the TAL
assigner), the official SGD parameter groups, and either the deterministic synthetic batch
(``gold_yolo.synthetic_batch``) or, with ``data=DIR``, a batch loaded from a YOLO-format
dataset.  Each registers by name (:mod:`gradcheck.registry`) with the settings it is meant
to be probed with, so ``gradcheck run --model gold_yolo_s`` gives the same answer from any
folder.  Importing this module imports neither Jittor nor the model code, and never imports the
port as `gold_yolo`: a user package of that name stays theirs (:mod:`gradcheck.vendored`).
"""

from __future__ import annotations

import functools
import re

from gradcheck.registry import Recommended, register_workload
from gradcheck.vendored import bundled, bundled_module
from gradcheck.workload import Workload, WorkloadError

RECOMMENDED = Recommended(
    # From the official initialisation the prediction convolutions (and the attention's
    # output BatchNorm weight) start at exactly zero: on step 1 only the prediction layers
    # get a gradient, and coverage spreads backwards one zero-initialised layer per step;
    # every trainable parameter is covered by step 3 (measured at 640, batch 2: n and s
    # 456/456, m 681/681, newly covered per step 12 / most / 20; l not measured).
    steps=3,
    # 640, not 320: at 320 no box aligns best with the stride-32 level at initialisation
    # (every anchor predicts a box 16 strides wide), so its regression branch stays at zero.
    img_size=640,
    batch_size=2,
    expected_frozen={
        "*.proj_conv.weight": "fixed DFL projection (integral over 0..reg_max), not trained, "
        "as upstream",
        "detect.proj": "fixed DFL projection values 0..reg_max, not trained, as upstream",
    },
)


def build(
    name: str,
    img_size: int | None = None,
    batch_size: int | None = None,
    seed: int | None = 0,
    data: str | None = None,
    num_classes: int = 80,
) -> Workload:
    gold_yolo = bundled("gold_yolo")  # ours, never a user's package named gold_yolo

    img_size = img_size or RECOMMENDED.img_size
    batch_size = batch_size or RECOMMENDED.batch_size
    assert img_size is not None and batch_size is not None  # RECOMMENDED names both
    if img_size % 32:
        raise WorkloadError(
            f"img_size {img_size} is not a multiple of 32 (Gold-YOLO's largest stride)"
        )
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
    model.train()  # handed over in train mode: the probe itself never switches modes
    loss_fn = gold_yolo.build_loss(name, num_classes=num_classes)
    optimizer = gold_yolo.build_optimizer(model, name, batch_size=batch_size)

    def loss(model, batch):
        imgs, tgts = batch
        out = loss_fn.compute(model(imgs), tgts, epoch_num=0, step_num=0)
        return out.total, out.terms, out.stats

    def batch(step, rank=None):
        """The whole batch; under MPI (``gradcheck run --nproc``) rank ``rank``'s images and
        their boxes (a box row's first column is its image's index in the batch)."""
        if rank is None:
            return images, targets
        from gradcheck import runtime

        jt = runtime.import_jittor()
        lo = batch_size * rank // jt.world_size
        hi = batch_size * (rank + 1) // jt.world_size
        mine = targets[(targets[:, 0] >= lo) & (targets[:, 0] < hi)].copy()
        mine[:, 0] -= lo
        return images[lo:hi], mine

    strides = list(gold_yolo.get_config(name).head.strides)
    return Workload(
        model=model,
        batch=batch,
        loss=loss,
        optimizer=optimizer,
        frozen=dict(RECOMMENDED.expected_frozen),
        name=name,
        zero_hint=level_hint(strides),
        info={
            "img_size": img_size,
            "batch_size": batch_size,
            "data": str(data) if data else "synthetic",
        },
    )


# the names' one home is the port's config registry (no Jittor, no public `gold_yolo` import)
GOLD_YOLO = bundled_module("gold_yolo", "configs").CONFIG_NAMES
for _name in GOLD_YOLO:
    register_workload(_name, recommended=RECOMMENDED)(functools.partial(build, _name))


_HEAD_BRANCH = re.compile(r"^detect\.(stems|cls_convs|reg_convs|cls_preds|reg_preds)\.(\d+)\.")


def level_hint(strides: list):
    """Explain an exactly-zero gradient in one detection level of the head from the loss's
    per-level statistics (positive anchors and the assigner's target scores)."""

    def hint(rec, report) -> str | None:
        m = _HEAD_BRANCH.match(rec.name)
        if not m or int(m.group(2)) >= len(strides):
            return None
        stride = str(strides[int(m.group(2))])
        for step in report.steps:
            stats = step.stats
            pos = (stats.get("num_pos_per_stride") or {}).get(stride)
            scores = stats.get("target_score_per_stride") or {}
            if pos == 0:
                return (
                    f"no positive anchors on stride {stride} (step {step.step}), so that "
                    "level's branch gets no gradient"
                )
            if scores and stride in scores:
                best = max(scores.values())
                if best > 0 and scores[stride] < 1e-6 * best:
                    return (
                        f"stride {stride} has {pos} positive anchors, but the assigner gives "
                        f"them a total target score of {scores[stride]:.2g} against "
                        f"{best:.3g} on the best level: at initialisation every anchor "
                        "predicts a box 16 strides wide, so no box of this image size aligns "
                        "best with this level and its regression branch learns ~nothing "
                        "(try a larger --img-size)"
                    )
        return None

    return hint
