"""Shared helpers of the TAL and ATSS assigners (Jittor).

Gold-YOLO: Wang et al., NeurIPS 2023.  Follows ``yolov6/assigners/assigner_utils.py`` of
huawei-noah/Efficient-Computing, Detection/Gold-YOLO.  Everything here runs on
non-differentiable inputs (the assigners call it under ``jt.no_grad``).

Jittor idioms used (checked numerically against numpy in the tests):
``jt.argmax(x, dim)`` returns ``(indices, values)`` (first index on ties, like torch);
``x.max(dim)`` returns ONLY the values (torch returns ``(values, indices)``).
"""

from __future__ import annotations

from .. import jt  # the package sets up the Jittor runtime first

__all__ = [
    "dist_calculator",
    "select_candidates_in_gts",
    "select_highest_overlaps",
    "iou_calculator",
]


def dist_calculator(gt_bboxes, anchor_bboxes):
    """Centre distances between every gt and every anchor box.

    gt_bboxes: (G, 4) xyxy;  anchor_bboxes: (A, 4) xyxy.
    Returns distances (G, A) and anchor centres ac_points (A, 2).
    """
    gt_points = (gt_bboxes[:, 0:2] + gt_bboxes[:, 2:4]) / 2.0  # (G, 2)
    ac_points = (anchor_bboxes[:, 0:2] + anchor_bboxes[:, 2:4]) / 2.0  # (A, 2)
    d = gt_points.unsqueeze(1) - ac_points.unsqueeze(0)  # (G, A, 2)
    distances = jt.sqrt((d * d).sum(-1))  # (G, A)
    return distances, ac_points


def select_candidates_in_gts(xy_centers, gt_bboxes, eps=1e-9):
    """Which anchor centres lie strictly inside which gt box.

    xy_centers: (A, 2);  gt_bboxes: (b, M, 4) xyxy.  Returns float (b, M, A) of 0/1.
    """
    c = xy_centers.unsqueeze(0).unsqueeze(0)  # (1, 1, A, 2)
    lt = c - gt_bboxes[:, :, 0:2].unsqueeze(2)  # (b, M, A, 2)
    rb = gt_bboxes[:, :, 2:4].unsqueeze(2) - c  # (b, M, A, 2)
    deltas_min = jt.minimum(lt.min(-1), rb.min(-1))  # (b, M, A)
    return (deltas_min > eps).float32()


def select_highest_overlaps(mask_pos, overlaps, n_max_boxes):
    """Resolve anchors claimed by several gts: keep the gt with the highest overlap.

    mask_pos, overlaps: (b, M, A).  Returns target_gt_idx (b, A) int, fg_mask (b, A)
    float (number of gts kept, 0 or 1), mask_pos (b, M, A).
    Upstream only runs the resolution branch when ``fg_mask.max() > 1``; applying it
    unconditionally is identical (it is a no-op for anchors with <= 1 gt) and avoids a sync.
    """
    fg_mask = mask_pos.sum(-2)  # (b, A)
    mask_multi_gts = fg_mask.unsqueeze(1) > 1  # (b, 1, A)
    max_overlaps_idx, _ = jt.argmax(overlaps, 1)  # (b, A)
    gt_range = jt.arange(n_max_boxes).reshape(1, n_max_boxes, 1)  # (1, M, 1)
    is_max_overlaps = (gt_range == max_overlaps_idx.unsqueeze(1)).float32()  # (b, M, A)
    mask_pos = jt.where(mask_multi_gts, is_max_overlaps, mask_pos)
    fg_mask = mask_pos.sum(-2)
    target_gt_idx, _ = jt.argmax(mask_pos, 1)  # (b, A); arg_reduce needs dim >= 0
    return target_gt_idx, fg_mask, mask_pos


def iou_calculator(box1, box2, eps=1e-9):
    """Batched pairwise IoU of xyxy boxes: (b, M, 4) x (b, A, 4) -> (b, M, A)."""
    b1 = box1.unsqueeze(2)  # (b, M, 1, 4)
    b2 = box2.unsqueeze(1)  # (b, 1, A, 4)
    p1, p2 = b1[..., 0:2], b1[..., 2:4]
    g1, g2 = b2[..., 0:2], b2[..., 2:4]
    wh = (jt.minimum(p2, g2) - jt.maximum(p1, g1)).clamp(min_v=0.0)
    overlap = wh[..., 0] * wh[..., 1]
    wh1 = (p2 - p1).clamp(min_v=0.0)
    wh2 = (g2 - g1).clamp(min_v=0.0)
    union = wh1[..., 0] * wh1[..., 1] + wh2[..., 0] * wh2[..., 1] - overlap + eps
    return overlap / union
