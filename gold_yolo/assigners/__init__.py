"""Label assigners of the Gold-YOLO training loss (Jittor): TAL and ATSS.

Gold-YOLO: Wang et al., NeurIPS 2023.  Follows ``yolov6/assigners/`` of
huawei-noah/Efficient-Computing, Detection/Gold-YOLO.
"""

from .anchors import generate_anchors
from .atss import ATSSAssigner
from .iou2d import bbox_overlaps, iou2d_calculator
from .tal import TaskAlignedAssigner
from .utils import (
    dist_calculator,
    iou_calculator,
    select_candidates_in_gts,
    select_highest_overlaps,
)

__all__ = [
    "generate_anchors",
    "ATSSAssigner",
    "TaskAlignedAssigner",
    "bbox_overlaps",
    "iou2d_calculator",
    "dist_calculator",
    "iou_calculator",
    "select_candidates_in_gts",
    "select_highest_overlaps",
]
