"""Task-aligned assigner (TAL, from TOOD / PP-YOLOE) of the Gold-YOLO loss (Jittor).

Gold-YOLO: Wang et al., NeurIPS 2023.  Follows ``yolov6/assigners/tal_assigner.py``
(``TaskAlignedAssigner``, topk=13, alpha=1.0, beta=6.0 as built by
``yolov6/models/losses/loss.py``) of huawei-noah/Efficient-Computing, Detection/Gold-YOLO.

Shapes: b images, A anchors (all levels), M = max gts per image (padded), C classes.
Differences from upstream, value-preserving: the top-k membership is built with a scatter
instead of ``one_hot(...).sum()`` (same result: padded gts get no candidates, valid gts
exactly their k indices), and the multi-gt resolution always runs (a no-op without
conflicts).  The top-k breaks ties as torch's CPU ``topk`` (``topk.py``): from the official
initialisation many anchors tie in the metric.  Upstream loops image by image when M > 100 to
save GPU memory; we do the same.
"""

from __future__ import annotations

from .. import jt  # the package sets up the Jittor runtime first
from .topk import torch_cpu_topk_indices
from .utils import iou_calculator, select_candidates_in_gts, select_highest_overlaps

__all__ = ["TaskAlignedAssigner"]


class TaskAlignedAssigner:
    """Assign gts to anchors by the alignment metric ``score**alpha * IoU**beta``."""

    def __init__(self, topk=13, num_classes=80, alpha=1.0, beta=6.0, eps=1e-9):
        self.topk = int(topk)
        self.num_classes = int(num_classes)
        self.bg_idx = self.num_classes
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.eps = float(eps)

    def __call__(self, pd_scores, pd_bboxes, anc_points, gt_labels, gt_bboxes, mask_gt):
        """
        pd_scores (b, A, C) post-sigmoid;  pd_bboxes (b, A, 4) xyxy pixels;
        anc_points (A, 2) pixels;  gt_labels (b, M, 1);  gt_bboxes (b, M, 4) xyxy pixels;
        mask_gt (b, M, 1) 1 for real gts, 0 for padding.
        Returns target_labels (b, A) int32 (the gt label, NOT bg, on background anchors as
        upstream), target_bboxes (b, A, 4), target_scores (b, A, C), fg_mask (b, A) bool.
        """
        with jt.no_grad():
            pd_scores, pd_bboxes = pd_scores.stop_grad(), pd_bboxes.stop_grad()
            bs, n_anchors, _ = pd_scores.shape
            n_max_boxes = gt_bboxes.shape[1]
            if n_max_boxes == 0:
                return (
                    jt.full((bs, n_anchors), self.bg_idx, "int32"),
                    jt.zeros((bs, n_anchors, 4)),
                    jt.zeros((bs, n_anchors, self.num_classes)),
                    jt.zeros((bs, n_anchors), "bool"),
                )
            if n_max_boxes <= 100:
                return self._assign(pd_scores, pd_bboxes, anc_points, gt_labels, gt_bboxes, mask_gt)
            parts = [
                self._assign(
                    pd_scores[i : i + 1],
                    pd_bboxes[i : i + 1],
                    anc_points,
                    gt_labels[i : i + 1],
                    gt_bboxes[i : i + 1],
                    mask_gt[i : i + 1],
                )
                for i in range(bs)
            ]
            return tuple(jt.concat([p[k] for p in parts], 0) for k in range(4))

    def _assign(self, pd_scores, pd_bboxes, anc_points, gt_labels, gt_bboxes, mask_gt):
        n_max_boxes = gt_bboxes.shape[1]
        mask_pos, align_metric, overlaps = self.get_pos_mask(
            pd_scores, pd_bboxes, gt_labels, gt_bboxes, anc_points, mask_gt
        )
        target_gt_idx, fg_mask, mask_pos = select_highest_overlaps(mask_pos, overlaps, n_max_boxes)
        target_labels, target_bboxes, target_scores = self.get_targets(
            gt_labels, gt_bboxes, target_gt_idx, fg_mask
        )

        # normalise: each gt's best positive anchor gets its best IoU as soft score
        align_metric = align_metric * mask_pos  # (b, M, A)
        pos_align_metrics = align_metric.max(-1, keepdims=True)  # (b, M, 1)
        pos_overlaps = (overlaps * mask_pos).max(-1, keepdims=True)  # (b, M, 1)
        norm_align_metric = (align_metric * pos_overlaps / (pos_align_metrics + self.eps)).max(
            -2
        )  # (b, A)
        target_scores = target_scores * norm_align_metric.unsqueeze(-1)  # (b, A, C)
        return target_labels, target_bboxes, target_scores, fg_mask > 0

    def get_pos_mask(self, pd_scores, pd_bboxes, gt_labels, gt_bboxes, anc_points, mask_gt):
        align_metric, overlaps = self.get_box_metrics(pd_scores, pd_bboxes, gt_labels, gt_bboxes)
        mask_in_gts = select_candidates_in_gts(anc_points, gt_bboxes)  # (b, M, A)
        mask_topk = self.select_topk_candidates(align_metric * mask_in_gts, mask_gt)
        mask_pos = mask_topk * mask_in_gts * mask_gt  # (b, M, A)
        return mask_pos, align_metric, overlaps

    def get_box_metrics(self, pd_scores, pd_bboxes, gt_labels, gt_bboxes):
        n_anchors = pd_scores.shape[1]
        scores_t = pd_scores.transpose(0, 2, 1)  # (b, C, A)
        # padded gts carry label -1 (upstream indexes class -1 = last class; their IoU is 0
        # so the metric is 0 either way); clamp to a valid index for the gather.
        labels = gt_labels.int32().squeeze(-1).clamp(min_v=0, max_v=self.num_classes - 1)  # (b, M)
        idx = labels.unsqueeze(-1).broadcast((labels.shape[0], labels.shape[1], n_anchors))
        bbox_scores = jt.gather(scores_t, 1, idx)  # (b, M, A)
        overlaps = iou_calculator(gt_bboxes, pd_bboxes)  # (b, M, A)
        align_metric = bbox_scores.pow(self.alpha) * overlaps.pow(self.beta)
        return align_metric, overlaps

    def select_topk_candidates(self, metrics, mask_gt):
        """metrics (b, M, A), mask_gt (b, M, 1) -> (b, M, A) 0/1: the top-k anchors per real gt."""
        topk_idxs = torch_cpu_topk_indices(metrics, self.topk, largest=True)  # (b, M, k)
        is_in_topk = jt.zeros(metrics.shape, "float32")
        src = mask_gt.float32().broadcast(topk_idxs.shape)  # 1 real gt, 0 padding
        return is_in_topk.scatter(2, topk_idxs, src)

    def get_targets(self, gt_labels, gt_bboxes, target_gt_idx, fg_mask):
        bs, n_max_boxes = gt_bboxes.shape[0], gt_bboxes.shape[1]
        batch_ind = jt.arange(bs).int32().unsqueeze(-1)  # (b, 1)
        flat_idx = target_gt_idx + batch_ind * n_max_boxes  # (b, A)
        target_labels = gt_labels.int32().flatten()[flat_idx]  # (b, A)
        target_bboxes = gt_bboxes.reshape(-1, 4)[flat_idx.flatten()].reshape(bs, -1, 4)  # (b, A, 4)
        target_labels = jt.maximum(target_labels, 0)  # upstream: [<0] = 0
        cls_range = jt.arange(self.num_classes).int32().reshape(1, 1, -1)
        target_scores = (target_labels.unsqueeze(-1) == cls_range).float32()  # one-hot (b, A, C)
        target_scores = target_scores * (fg_mask > 0).float32().unsqueeze(-1)
        return target_labels, target_bboxes, target_scores
