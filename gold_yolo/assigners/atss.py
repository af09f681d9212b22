"""Adaptive Training Sample Selection (ATSS) assigner of the Gold-YOLO loss (Jittor).

Gold-YOLO: Wang et al., NeurIPS 2023.  Follows ``yolov6/assigners/atss_assigner.py``
(``ATSSAssigner``, topk=9, used for the first ``atss_warmup_epoch`` epochs) of
huawei-noah/Efficient-Computing, Detection/Gold-YOLO.

Shapes: b images, A anchors (all levels), M = max gts per image (padded), C classes.
Per level, the k anchors whose centres are nearest each gt centre are candidates; a
candidate is positive when its anchor-box IoU exceeds mean + std (unbiased, as torch's
``std``) of the candidates' IoUs and its centre lies inside the gt.
Difference from upstream, value-preserving: candidate membership is built with a scatter
instead of ``one_hot(...).sum()`` (padded gts get none, real gts exactly their k).  The
per-level top-k breaks ties (grid-symmetric anchors) as torch's CPU ``topk`` (``topk.py``).
"""

from __future__ import annotations

from .. import jt  # the package sets up the Jittor runtime first
from .iou2d import iou2d_calculator
from .topk import torch_cpu_topk_indices
from .utils import (
    dist_calculator,
    iou_calculator,
    select_candidates_in_gts,
    select_highest_overlaps,
)

__all__ = ["ATSSAssigner"]


class ATSSAssigner:
    """ATSS label assignment on fixed anchor boxes (5 x stride squares)."""

    def __init__(self, topk=9, num_classes=80):
        self.topk = int(topk)
        self.num_classes = int(num_classes)
        self.bg_idx = self.num_classes

    def __call__(self, anc_bboxes, n_level_bboxes, gt_labels, gt_bboxes, mask_gt, pd_bboxes):
        """
        anc_bboxes (A, 4) xyxy pixels;  n_level_bboxes: anchors per level (sums to A);
        gt_labels (b, M, 1);  gt_bboxes (b, M, 4) xyxy pixels;  mask_gt (b, M, 1);
        pd_bboxes (b, A, 4) xyxy pixels or None (then scores are hard one-hot).
        Returns target_labels (b, A) int32 (bg_idx on background), target_bboxes (b, A, 4),
        target_scores (b, A, C) (one-hot x IoU(gt, prediction)), fg_mask (b, A) bool.
        """
        with jt.no_grad():
            n_anchors = anc_bboxes.shape[0]
            bs, n_max_boxes = gt_bboxes.shape[0], gt_bboxes.shape[1]
            if n_max_boxes == 0:
                return (
                    jt.full((bs, n_anchors), self.bg_idx, "int32"),
                    jt.zeros((bs, n_anchors, 4)),
                    jt.zeros((bs, n_anchors, self.num_classes)),
                    jt.zeros((bs, n_anchors), "bool"),
                )
            if pd_bboxes is not None:
                pd_bboxes = pd_bboxes.stop_grad()
            flat_gt = gt_bboxes.reshape(-1, 4)  # (b*M, 4)
            overlaps = iou2d_calculator(flat_gt, anc_bboxes).reshape(bs, -1, n_anchors)  # (b, M, A)
            distances, ac_points = dist_calculator(flat_gt, anc_bboxes)
            distances = distances.reshape(bs, -1, n_anchors)  # (b, M, A)

            is_in_candidate, candidate_idxs = self.select_topk_candidates(
                distances, n_level_bboxes, mask_gt
            )
            overlaps_thr_per_gt, iou_candidates = self.thres_calculator(
                is_in_candidate, candidate_idxs, overlaps
            )

            is_pos = jt.where(
                iou_candidates > overlaps_thr_per_gt,
                is_in_candidate,
                jt.zeros_like(is_in_candidate),
            )  # (b, M, A)
            is_in_gts = select_candidates_in_gts(ac_points, gt_bboxes)
            mask_pos = is_pos * is_in_gts * mask_gt

            target_gt_idx, fg_mask, mask_pos = select_highest_overlaps(
                mask_pos, overlaps, n_max_boxes
            )
            target_labels, target_bboxes, target_scores = self.get_targets(
                gt_labels, gt_bboxes, target_gt_idx, fg_mask
            )

            if pd_bboxes is not None:  # soft label: IoU of the prediction with its gt
                ious = iou_calculator(gt_bboxes, pd_bboxes) * mask_pos  # (b, M, A)
                target_scores = target_scores * ious.max(-2).unsqueeze(-1)
            return target_labels, target_bboxes, target_scores, fg_mask > 0

    def select_topk_candidates(self, distances, n_level_bboxes, mask_gt):
        """distances (b, M, A) -> is_in_candidate (b, M, A) 0/1, candidate_idxs (b, M, sum k_l)."""
        is_in_candidate_list, candidate_idxs = [], []
        start = 0
        for n_level in n_level_bboxes:
            level_d = distances[:, :, start : start + n_level]  # (b, M, n_l)
            k = min(self.topk, n_level)
            idxs = torch_cpu_topk_indices(level_d, k, largest=False)  # (b, M, k)
            candidate_idxs.append(idxs + start)
            member = jt.zeros(level_d.shape, "float32")
            src = mask_gt.float32().broadcast(idxs.shape)  # 0 for padded gts
            is_in_candidate_list.append(member.scatter(2, idxs, src))
            start += n_level
        return jt.concat(is_in_candidate_list, -1), jt.concat(candidate_idxs, -1)

    def thres_calculator(self, is_in_candidate, candidate_idxs, overlaps):
        """Per-gt IoU threshold mean + std over its candidates -> (b, M, 1), and masked IoUs."""
        cand_overlaps_full = jt.where(
            is_in_candidate > 0, overlaps, jt.zeros_like(overlaps)
        )  # (b, M, A)
        cand = jt.gather(cand_overlaps_full, 2, candidate_idxs)  # (b, M, K)
        n = cand.shape[-1]
        mean = cand.mean(-1, keepdims=True)
        var = ((cand - mean) ** 2).sum(-1, keepdims=True) / max(n - 1, 1)  # unbiased
        return mean + jt.sqrt(var), cand_overlaps_full

    def get_targets(self, gt_labels, gt_bboxes, target_gt_idx, fg_mask):
        bs, n_max_boxes = gt_bboxes.shape[0], gt_bboxes.shape[1]
        batch_ind = jt.arange(bs).int32().unsqueeze(-1)
        flat_idx = target_gt_idx + batch_ind * n_max_boxes  # (b, A)
        target_labels = gt_labels.int32().flatten()[flat_idx]  # (b, A)
        target_labels = jt.where(
            fg_mask > 0, target_labels, jt.full_like(target_labels, self.bg_idx)
        )
        target_bboxes = gt_bboxes.reshape(-1, 4)[flat_idx.flatten()].reshape(bs, -1, 4)
        cls_range = jt.arange(self.num_classes).int32().reshape(1, 1, -1)
        target_scores = (target_labels.unsqueeze(-1) == cls_range).float32()  # one-hot minus bg
        return target_labels, target_bboxes, target_scores
