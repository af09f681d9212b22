"""Box utilities and IoU losses for the Gold-YOLO training loss (Jittor).

Gold-YOLO: Wang et al., "Gold-YOLO: Efficient Object Detector via Gather-and-Distribute
Mechanism", NeurIPS 2023.  This module follows the upstream files
``yolov6/utils/general.py`` (``dist2bbox``, ``bbox2dist``, ``xywh2xyxy``) and
``yolov6/utils/figure_iou.py`` (``IOUloss`` with IoU / GIoU / DIoU / CIoU / SIoU) of
huawei-noah/Efficient-Computing, Detection/Gold-YOLO (built on meituan/YOLOv6).

Differences from upstream, all value-preserving:

* ``xywh2xyxy`` returns a new array/Var instead of writing into its argument.
* ``IOUloss`` only supports the element-wise (aligned) case ``box1.shape == box2.shape``,
  which is the only one the loss uses; upstream's transposing branch for mismatched shapes
  raises ``ValueError`` here instead of silently broadcasting.

Every function accepts Jittor Vars; ``xywh2xyxy``/``dist2bbox``/``bbox2dist`` also accept
numpy arrays (they then return numpy).
"""

from __future__ import annotations

import math

import numpy as np

from . import jt  # the package sets up the Jittor runtime first

__all__ = ["xywh2xyxy", "xyxy2xywh", "dist2bbox", "bbox2dist", "IOUloss", "IOU_TYPES"]

IOU_TYPES = ("iou", "giou", "diou", "ciou", "siou")


def _is_np(x) -> bool:
    return isinstance(x, np.ndarray)


def _cat(xs, dim):
    return np.concatenate(xs, axis=dim) if _is_np(xs[0]) else jt.concat(xs, dim=dim)


def xywh2xyxy(boxes):
    """(..., 4) centre-x, centre-y, w, h  ->  (..., 4) x1, y1, x2, y2 (new array/Var)."""
    xy, wh = boxes[..., 0:2], boxes[..., 2:4]
    return _cat([xy - wh * 0.5, xy + wh * 0.5], -1)


def xyxy2xywh(boxes):
    """(..., 4) x1, y1, x2, y2  ->  (..., 4) centre-x, centre-y, w, h (new array/Var)."""
    x1y1, x2y2 = boxes[..., 0:2], boxes[..., 2:4]
    return _cat([(x1y1 + x2y2) * 0.5, x2y2 - x1y1], -1)


def dist2bbox(distance, anchor_points, box_format="xyxy"):
    """Distances to the four sides (l, t, r, b) -> boxes.

    distance: (..., A, 4) ltrb;  anchor_points: (A, 2) or broadcastable (..., A, 2).
    Returns (..., A, 4) in ``xyxy`` or ``xywh``.
    """
    lt, rb = distance[..., 0:2], distance[..., 2:4]
    x1y1 = anchor_points - lt
    x2y2 = anchor_points + rb
    if box_format == "xyxy":
        return _cat([x1y1, x2y2], -1)
    if box_format == "xywh":
        return _cat([(x1y1 + x2y2) / 2, x2y2 - x1y1], -1)
    raise ValueError(f"box_format must be 'xyxy' or 'xywh', got {box_format!r}")


def bbox2dist(anchor_points, bbox, reg_max):
    """xyxy boxes -> ltrb distances from the anchor points, clipped to [0, reg_max - 0.01].

    anchor_points: (A, 2);  bbox: (..., A, 4).  Returns (..., A, 4).
    The clip keeps ``floor(d) + 1 <= reg_max`` so both DFL bins exist.
    """
    x1y1, x2y2 = bbox[..., 0:2], bbox[..., 2:4]
    dist = _cat([anchor_points - x1y1, x2y2 - anchor_points], -1)
    hi = reg_max - 0.01
    if _is_np(dist):
        return np.clip(dist, 0, hi)
    return dist.clamp(min_v=0.0, max_v=hi)


class IOUloss:
    """Element-wise IoU-family loss ``1 - IoU'`` for aligned box pairs.

    ``box1``, ``box2``: (N, 4) Vars in ``box_format`` (``xyxy`` or ``xywh``).
    Returns (N, 1) (``reduction='none'``), or a scalar for ``'sum'``/``'mean'``.
    ``iou_type``: 'iou', 'giou', 'diou', 'ciou' or 'siou' (SIoU: Gevorgyan 2022,
    arXiv:2205.12740), exactly as upstream ``figure_iou.IOUloss``; ``eps`` is added where
    upstream adds it (the loss uses ``eps=1e-10``).
    """

    def __init__(self, box_format="xywh", iou_type="ciou", reduction="none", eps=1e-7):
        if box_format not in ("xyxy", "xywh"):
            raise ValueError(f"box_format must be 'xyxy' or 'xywh', got {box_format!r}")
        iou_type = iou_type.lower()
        if iou_type not in IOU_TYPES:
            raise ValueError(f"iou_type must be one of {IOU_TYPES}, got {iou_type!r}")
        if reduction not in ("none", "sum", "mean"):
            raise ValueError(f"reduction must be 'none', 'sum' or 'mean', got {reduction!r}")
        self.box_format = box_format
        self.iou_type = iou_type
        self.reduction = reduction
        self.eps = eps

    def __call__(self, box1, box2):
        if tuple(box1.shape) != tuple(box2.shape):
            raise ValueError(
                f"IOUloss needs aligned boxes of equal shape, got {tuple(box1.shape)} "
                f"and {tuple(box2.shape)}"
            )
        eps = self.eps
        if self.box_format == "xyxy":
            b1_x1, b1_y1, b1_x2, b1_y2 = (box1[:, i : i + 1] for i in range(4))
            b2_x1, b2_y1, b2_x2, b2_y2 = (box2[:, i : i + 1] for i in range(4))
        else:
            b1_x1, b1_x2 = box1[:, 0:1] - box1[:, 2:3] / 2, box1[:, 0:1] + box1[:, 2:3] / 2
            b1_y1, b1_y2 = box1[:, 1:2] - box1[:, 3:4] / 2, box1[:, 1:2] + box1[:, 3:4] / 2
            b2_x1, b2_x2 = box2[:, 0:1] - box2[:, 2:3] / 2, box2[:, 0:1] + box2[:, 2:3] / 2
            b2_y1, b2_y2 = box2[:, 1:2] - box2[:, 3:4] / 2, box2[:, 1:2] + box2[:, 3:4] / 2

        # intersection and union, (N, 1)
        inter = (jt.minimum(b1_x2, b2_x2) - jt.maximum(b1_x1, b2_x1)).clamp(min_v=0.0) * (
            jt.minimum(b1_y2, b2_y2) - jt.maximum(b1_y1, b2_y1)
        ).clamp(min_v=0.0)
        w1, h1 = b1_x2 - b1_x1, b1_y2 - b1_y1 + eps
        w2, h2 = b2_x2 - b2_x1, b2_y2 - b2_y1 + eps
        union = w1 * h1 + w2 * h2 - inter + eps
        iou = inter / union

        cw = jt.maximum(b1_x2, b2_x2) - jt.minimum(b1_x1, b2_x1)  # convex (enclosing) width
        ch = jt.maximum(b1_y2, b2_y2) - jt.minimum(b1_y1, b2_y1)  # convex height
        if self.iou_type == "giou":
            c_area = cw * ch + eps
            iou = iou - (c_area - union) / c_area
        elif self.iou_type in ("diou", "ciou"):
            c2 = cw**2 + ch**2 + eps
            rho2 = ((b2_x1 + b2_x2 - b1_x1 - b1_x2) ** 2 + (b2_y1 + b2_y2 - b1_y1 - b1_y2) ** 2) / 4
            if self.iou_type == "diou":
                iou = iou - rho2 / c2
            else:
                v = (4 / math.pi**2) * (jt.atan(w2 / h2) - jt.atan(w1 / h1)) ** 2
                alpha = (v / (v - iou + (1 + eps))).stop_grad()  # upstream: torch.no_grad()
                iou = iou - (rho2 / c2 + v * alpha)
        elif self.iou_type == "siou":
            s_cw = (b2_x1 + b2_x2 - b1_x1 - b1_x2) * 0.5 + eps
            s_ch = (b2_y1 + b2_y2 - b1_y1 - b1_y2) * 0.5 + eps
            sigma = jt.sqrt(s_cw**2 + s_ch**2)
            sin_alpha_1 = jt.abs(s_cw) / sigma
            sin_alpha_2 = jt.abs(s_ch) / sigma
            threshold = math.sqrt(2) / 2
            sin_alpha = jt.where(sin_alpha_1 > threshold, sin_alpha_2, sin_alpha_1)
            angle_cost = jt.cos(jt.arcsin(sin_alpha) * 2 - math.pi / 2)
            rho_x = (s_cw / cw) ** 2
            rho_y = (s_ch / ch) ** 2
            gamma = angle_cost - 2
            distance_cost = 2 - jt.exp(gamma * rho_x) - jt.exp(gamma * rho_y)
            omega_w = jt.abs(w1 - w2) / jt.maximum(w1, w2)
            omega_h = jt.abs(h1 - h2) / jt.maximum(h1, h2)
            shape_cost = (1 - jt.exp(-1 * omega_w)) ** 4 + (1 - jt.exp(-1 * omega_h)) ** 4
            iou = iou - 0.5 * (distance_cost + shape_cost)
        loss = 1.0 - iou

        if self.reduction == "sum":
            return loss.sum()
        if self.reduction == "mean":
            return loss.mean()
        return loss
