"""Pairwise / aligned 2-D box overlaps (IoU, IoF, GIoU) for the ATSS assigner (Jittor).

Gold-YOLO: Wang et al., NeurIPS 2023.  Follows ``yolov6/assigners/iou2d_calculator.py``
(itself from mmdetection / TOOD ``bbox_overlaps``) of huawei-noah/Efficient-Computing,
Detection/Gold-YOLO.  The fp16 path of upstream is not ported (we always compute in fp32).
"""

from __future__ import annotations

from .. import jt  # the package sets up the Jittor runtime first

__all__ = ["iou2d_calculator", "bbox_overlaps"]


def iou2d_calculator(bboxes1, bboxes2, mode="iou", is_aligned=False):
    """IoU between (m, 4|5) and (n, 4|5) xyxy boxes -> (m, n) (or (m,) when aligned)."""
    if bboxes1.shape[-1] == 5:
        bboxes1 = bboxes1[..., :4]
    if bboxes2.shape[-1] == 5:
        bboxes2 = bboxes2[..., :4]
    return bbox_overlaps(bboxes1, bboxes2, mode, is_aligned)


def bbox_overlaps(bboxes1, bboxes2, mode="iou", is_aligned=False, eps=1e-6):
    """Overlaps of xyxy boxes (..., m, 4) x (..., n, 4) -> (..., m, n), or (..., m) aligned.

    ``mode``: 'iou', 'iof' (intersection over the area of ``bboxes1``) or 'giou'.
    The union (and the enclosing area for GIoU) is floored at ``eps`` as upstream.
    """
    if mode not in ("iou", "iof", "giou"):
        raise ValueError(f"Unsupported mode {mode!r}")
    rows, cols = bboxes1.shape[-2], bboxes2.shape[-2]
    if is_aligned and rows != cols:
        raise ValueError(f"aligned overlaps need equal counts, got {rows} and {cols}")
    batch_shape = tuple(bboxes1.shape[:-2])
    if rows * cols == 0:
        return jt.zeros(batch_shape + ((rows,) if is_aligned else (rows, cols)), "float32")

    area1 = (bboxes1[..., 2] - bboxes1[..., 0]) * (bboxes1[..., 3] - bboxes1[..., 1])  # (..., m)
    area2 = (bboxes2[..., 2] - bboxes2[..., 0]) * (bboxes2[..., 3] - bboxes2[..., 1])  # (..., n)
    if is_aligned:
        b1, b2 = bboxes1, bboxes2  # (..., m, 4)
        a1, a2 = area1, area2
    else:
        b1 = bboxes1.unsqueeze(-2)  # (..., m, 1, 4)
        b2 = bboxes2.unsqueeze(-3)  # (..., 1, n, 4)
        a1, a2 = area1.unsqueeze(-1), area2.unsqueeze(-2)  # (..., m, 1), (..., 1, n)
    lt = jt.maximum(b1[..., :2], b2[..., :2])
    rb = jt.minimum(b1[..., 2:], b2[..., 2:])
    wh = (rb - lt).clamp(min_v=0.0)
    overlap = wh[..., 0] * wh[..., 1]
    union = a1 + a2 - overlap if mode in ("iou", "giou") else a1 + overlap * 0
    union = jt.maximum(union, eps)
    ious = overlap / union
    if mode in ("iou", "iof"):
        return ious
    enclosed_lt = jt.minimum(b1[..., :2], b2[..., :2])
    enclosed_rb = jt.maximum(b1[..., 2:], b2[..., 2:])
    enclose_wh = (enclosed_rb - enclosed_lt).clamp(min_v=0.0)
    enclose_area = jt.maximum(enclose_wh[..., 0] * enclose_wh[..., 1], eps)
    return ious - (enclose_area - union) / enclose_area
