"""The real Gold-YOLO training loss, in Jittor.

Gold-YOLO: Wang et al., "Gold-YOLO: Efficient Object Detector via Gather-and-Distribute
Mechanism", NeurIPS 2023.  Follows ``yolov6/models/losses/loss.py`` (``ComputeLoss``,
``VarifocalLoss``, ``BboxLoss``) of huawei-noah/Efficient-Computing, Detection/Gold-YOLO,
and ``yolov6/core/engine.py`` for how it is built and called:

* classification: varifocal loss (alpha 0.75, gamma 2.0) on the post-sigmoid scores,
  divided by the sum of target scores when that sum is > 0;
* box: IoU loss (``giou`` for s/m/l, ``siou`` for n) weighted by the target scores, plus
  DFL (s/m/l, ``reg_max`` 16; n has ``use_dfl=False`` and its DFL term is
  ``pred_distri.sum() * 0`` exactly as upstream);
* weights: class 1.0, iou 2.5, dfl 0.5;
* assignment: ATSS (topk 9) while ``epoch_num < warmup_epoch`` (every Gold-YOLO config
  sets ``atss_warmup_epoch=0``), TAL (topk 13, alpha 1.0, beta 6.0) afterwards.

Model output contract (training mode): ``(feats, pred_scores, pred_distri)`` with
``feats`` the 3 maps (b, c_i, H/s, W/s) for strides 8/16/32, ``pred_scores`` (b, A, nc)
post-sigmoid and ``pred_distri`` (b, A, 4*(reg_max+1)).  Targets: (n, 6)
``[image_index, class, xc, yc, w, h]`` normalised to 0..1 (numpy or Var).

Deviations from upstream (values identical where upstream is well defined):

* ``ori_img_size=None`` (default) takes the image size from the feature maps
  (``H0 * stride0``, ``W0 * stride0``) and scales x by W, y by H; upstream always scales by
  the fixed training ``img_size``, which is the same number for its square batches.
  Pass ``ori_img_size`` to force upstream's behaviour.
* The BCE log is floored at ``log(1e-38)`` on a clamped input instead of torch's -100
  floor on the log: identical unless a score is exactly 0 or 1, and never NaN gradients.
* No CUDA-OOM CPU fallback and no ``try/except`` around the loss: errors propagate.
* Positives are gathered with integer indices (computed on the host from ``fg_mask``)
  instead of ``masked_select``; same elements, same order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import jt  # the package sets up the Jittor runtime first
from .assigners import ATSSAssigner, TaskAlignedAssigner, generate_anchors
from .box_ops import IOUloss, bbox2dist, dist2bbox, xywh2xyxy

__all__ = [
    "ComputeLoss",
    "LossOutput",
    "VarifocalLoss",
    "BboxLoss",
    "build_loss",
    "preprocess_targets",
    "DEFAULT_LOSS_WEIGHT",
]

DEFAULT_LOSS_WEIGHT = {"class": 1.0, "iou": 2.5, "dfl": 0.5}
_LOG_CLAMP = 1e-38  # smallest normal-ish float32 > 0: log() stays finite, gradients too


@dataclass
class LossOutput:
    """Result of :meth:`ComputeLoss.compute`.

    total: the scalar loss Var (sum of ``terms``).
    terms: the WEIGHTED terms ``{"iou", "dfl", "cls"}``, still attached to the graph.
    stats: plain Python numbers: ``num_pos_per_stride`` ({stride: int}),
      ``target_score_per_stride`` ({stride: float}, the assigner's weight per level), ``num_pos``,
      ``num_targets``, ``num_targets_per_image``, ``target_scores_sum``, ``assigner``.
    """

    total: Any
    terms: dict[str, Any]
    stats: dict[str, Any] = field(default_factory=dict)

    def items(self):
        """Detached weighted ``[iou, dfl, cls]`` (upstream's ``loss_items``)."""
        terms = [self.terms[k].reshape(1) for k in ("iou", "dfl", "cls")]
        return jt.concat(terms).detach().stop_grad()


def _bce(pred, target):
    """Element-wise binary cross-entropy on probabilities (torch ``F.binary_cross_entropy``)."""
    p = pred.clamp(min_v=_LOG_CLAMP)
    q = (1.0 - pred).clamp(min_v=_LOG_CLAMP)
    return -(target * jt.log(p) + (1.0 - target) * jt.log(q))


class VarifocalLoss:
    """Varifocal loss (Zhang et al., VarifocalNet, CVPR 2021), summed over all elements.

    pred_score, gt_score (b, A, C); label (b, A, C) one-hot of the assigned class (0 on
    background).  ``weight = alpha * p**gamma * (1 - label) + q * label``.
    """

    def __init__(self, alpha=0.75, gamma=2.0):
        self.alpha = alpha
        self.gamma = gamma

    def __call__(self, pred_score, gt_score, label):
        weight = self.alpha * pred_score.pow(self.gamma) * (1 - label) + gt_score * label
        # summed in float64: a float32 sum over b*A*C (~336k at 320px) loses ~1e-3 of the value
        dtype = pred_score.dtype  # float32 in training, float64 in align's float64 rerun
        return (_bce(pred_score, gt_score.cast(dtype)) * weight).float64().sum().cast(dtype)


class BboxLoss:
    """IoU loss + distribution focal loss (DFL, Li et al., GFL, NeurIPS 2020) on positives."""

    def __init__(self, num_classes, reg_max, use_dfl=False, iou_type="giou"):
        self.num_classes = num_classes
        self.iou_loss = IOUloss(box_format="xyxy", iou_type=iou_type, eps=1e-10)
        self.reg_max = reg_max
        self.use_dfl = use_dfl

    def __call__(
        self,
        pred_dist,
        pred_bboxes,
        anchor_points,
        target_bboxes,
        target_scores,
        target_scores_sum,
        fg_mask,
    ):
        """
        pred_dist (b, A, 4*(reg_max+1)) raw;  pred_bboxes (b, A, 4) xyxy grid units;
        anchor_points (A, 2) grid units;  target_bboxes (b, A, 4) grid units;
        target_scores (b, A, C);  target_scores_sum: float;  fg_mask: numpy bool (b, A).
        Returns (loss_iou, loss_dfl), scalar Vars attached to the graph.
        """
        pos = np.flatnonzero(np.asarray(fg_mask).reshape(-1))  # row-major = masked_select order
        if pos.size == 0:
            zero = pred_dist.sum() * 0.0
            return zero, pred_dist.sum() * 0.0
        b, n_anchors = pred_bboxes.shape[0], pred_bboxes.shape[1]
        idx = jt.array(pos.astype(np.int32))
        pred_bboxes_pos = pred_bboxes.reshape(-1, 4)[idx]  # (P, 4)
        target_bboxes_pos = target_bboxes.reshape(-1, 4)[idx]  # (P, 4)
        bbox_weight = target_scores.sum(-1).reshape(-1)[idx].unsqueeze(-1)  # (P, 1)
        divisor = target_scores_sum if target_scores_sum != 0 else 1.0

        loss_iou = (self.iou_loss(pred_bboxes_pos, target_bboxes_pos) * bbox_weight).sum() / divisor

        if not self.use_dfl:
            return loss_iou, pred_dist.sum() * 0.0
        n_bins = self.reg_max + 1
        pred_dist_pos = pred_dist.reshape(b * n_anchors, 4, n_bins)[idx]  # (P, 4, R+1)
        anchor_idx = jt.array((pos % n_anchors).astype(np.int32))
        target_ltrb_pos = bbox2dist(
            anchor_points[anchor_idx], target_bboxes_pos, self.reg_max
        )  # (P, 4)
        loss_dfl = (self._df_loss(pred_dist_pos, target_ltrb_pos) * bbox_weight).sum() / divisor
        return loss_iou, loss_dfl

    def _df_loss(self, pred_dist, target):
        """pred_dist (P, 4, R+1) logits, target (P, 4) in [0, R) -> (P, 1)."""
        target_left = target.int32()  # floor (target >= 0)
        target_right = target_left + 1
        weight_left = target_right.float32() - target
        weight_right = 1 - weight_left
        logp = jt.nn.log_softmax(pred_dist, dim=-1)  # (P, 4, R+1)
        nll_left = -jt.gather(logp, 2, target_left.unsqueeze(-1)).squeeze(-1)  # (P, 4)
        nll_right = -jt.gather(logp, 2, target_right.unsqueeze(-1)).squeeze(-1)
        return (nll_left * weight_left + nll_right * weight_right).mean(-1, keepdims=True)


def preprocess_targets(targets, batch_size, img_hw):
    """(n, 6) ``[img, cls, xc, yc, w, h]`` normalised -> padded (b, M, 5) ``[cls, x1, y1, x2, y2]``.

    Boxes are scaled to pixels (x by W, y by H) and converted to xyxy; padding rows are
    ``[-1, 0, 0, 0, 0]``; per-image order is preserved; M = max boxes per image (0 when
    there are no targets at all).  Vectorised (no per-box Python loop).
    """
    t = targets.numpy() if isinstance(targets, jt.Var) else np.asarray(targets)
    # float32, as Jittor turns float64 input into float32; float64 targets stay float64 only
    # where Jittor keeps float64 too (auto_convert_64_to_32 off: align's float64 rerun)
    keep64 = np.asarray(t).dtype == np.float64 and not jt.flags.auto_convert_64_to_32
    dtype = np.float64 if keep64 else np.float32
    t = np.asarray(t, dtype=dtype).reshape(-1, 6)
    img = t[:, 0].astype(np.int64)
    if t.size and (img.min() < 0 or img.max() >= batch_size or not np.all(t[:, 0] == img)):
        raise ValueError(
            f"target image indices must be integers in [0, {batch_size}), got "
            f"{sorted(set(t[:, 0].tolist()))[:10]}"
        )
    counts = np.bincount(img, minlength=batch_size)
    max_len = int(counts.max()) if batch_size else 0
    out = np.zeros((batch_size, max_len, 5), dtype)
    out[:, :, 0] = -1
    if t.size:
        order = np.argsort(img, kind="stable")
        img_sorted = img[order]
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        slot = np.arange(len(order)) - starts[img_sorted]
        h, w = img_hw
        scale = np.array([w, h, w, h], dtype)
        rows = t[order]
        out[img_sorted, slot, 0] = rows[:, 1]
        out[img_sorted, slot, 1:] = xywh2xyxy(rows[:, 2:6] * scale)
    return out, counts


class ComputeLoss:
    """Gold-YOLO training loss (upstream ``ComputeLoss``); not a Module, holds no Vars."""

    def __init__(
        self,
        num_classes=80,
        iou_type="giou",
        use_dfl=True,
        reg_max=16,
        warmup_epoch=4,
        fpn_strides=(8, 16, 32),
        grid_cell_size=5.0,
        grid_cell_offset=0.5,
        ori_img_size: int | None = None,
        loss_weight: dict[str, float] | None = None,
    ):
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if use_dfl and reg_max < 1:
            raise ValueError(f"use_dfl=True needs reg_max >= 1, got {reg_max}")
        self.fpn_strides = [int(s) for s in fpn_strides]
        self.grid_cell_size = grid_cell_size
        self.grid_cell_offset = grid_cell_offset
        self.num_classes = int(num_classes)
        self.ori_img_size = ori_img_size
        self.warmup_epoch = warmup_epoch
        self.warmup_assigner = ATSSAssigner(9, num_classes=self.num_classes)
        self.formal_assigner = TaskAlignedAssigner(
            topk=13, num_classes=self.num_classes, alpha=1.0, beta=6.0
        )
        self.use_dfl = bool(use_dfl)
        self.reg_max = int(reg_max)
        self._proj = np.linspace(0, self.reg_max, self.reg_max + 1).astype(np.float32)  # (R+1,)
        self.iou_type = iou_type
        self.varifocal_loss = VarifocalLoss()
        self.bbox_loss = BboxLoss(self.num_classes, self.reg_max, self.use_dfl, iou_type)
        self.loss_weight = dict(DEFAULT_LOSS_WEIGHT if loss_weight is None else loss_weight)

    @classmethod
    def from_config(cls, cfg, num_classes=80, **overrides):
        """Build from a Gold-YOLO config
        (``cfg.head.{iou_type,use_dfl,reg_max,atss_warmup_epoch,strides}``)."""
        head = cfg.head if hasattr(cfg, "head") else cfg.model.head
        get = (lambda k: head[k]) if isinstance(head, dict) else (lambda k: getattr(head, k))
        kw = dict(
            num_classes=num_classes,
            iou_type=get("iou_type"),
            use_dfl=get("use_dfl"),
            reg_max=get("reg_max"),
            warmup_epoch=get("atss_warmup_epoch"),
            fpn_strides=get("strides"),
        )
        kw.update(overrides)
        return cls(**kw)

    # ------------------------------------------------------------------ public API
    def __call__(self, outputs, targets, epoch_num, step_num):
        """Upstream signature: ``(loss, loss_items)``, items = detached weighted [iou, dfl, cls]."""
        out = self.compute(outputs, targets, epoch_num, step_num)
        return out.total, out.items()

    def compute(self, outputs, targets, epoch_num=0, step_num=0) -> LossOutput:
        feats, pred_scores, pred_distri = outputs
        if len(feats) != len(self.fpn_strides):
            raise ValueError(f"{len(feats)} feature maps but fpn_strides={self.fpn_strides}")
        batch_size, n_anchors, n_cls = pred_scores.shape
        expected_reg = 4 * (self.reg_max + 1) if self.use_dfl else 4
        if (
            n_cls != self.num_classes
            or pred_distri.shape[-1] != expected_reg
            or pred_distri.shape[:2] != pred_scores.shape[:2]
        ):
            raise ValueError(
                f"outputs do not match the loss: pred_scores "
                f"{tuple(pred_scores.shape)} (num_classes={self.num_classes}), "
                f"pred_distri {tuple(pred_distri.shape)} "
                f"(expected last dim {expected_reg})"
            )
        anchors, anchor_points, n_anchors_list, stride_tensor = generate_anchors(
            feats, self.fpn_strides, self.grid_cell_size, self.grid_cell_offset
        )
        if sum(n_anchors_list) != n_anchors:
            raise ValueError(
                f"feature maps give {sum(n_anchors_list)} anchors, predictions have {n_anchors}"
            )

        if self.ori_img_size is None:
            img_hw = (
                feats[0].shape[-2] * self.fpn_strides[0],
                feats[0].shape[-1] * self.fpn_strides[0],
            )
        else:
            img_hw = (self.ori_img_size, self.ori_img_size)
        gt_np, counts = preprocess_targets(targets, batch_size, img_hw)
        gt = jt.array(gt_np)  # (b, M, 5)
        gt_labels = gt[:, :, :1]  # (b, M, 1)
        gt_bboxes = gt[:, :, 1:]  # (b, M, 4) xyxy pixels
        mask_gt = jt.array((gt_np[:, :, 1:].sum(-1, keepdims=True) > 0).astype(np.float32))

        anchor_points_s = anchor_points / stride_tensor  # (A, 2) grid units
        pred_bboxes = self.bbox_decode(anchor_points_s, pred_distri)  # (b, A, 4) grid units

        use_atss = epoch_num < self.warmup_epoch
        if use_atss:
            target_labels, target_bboxes, target_scores, fg_mask = self.warmup_assigner(
                anchors,
                n_anchors_list,
                gt_labels,
                gt_bboxes,
                mask_gt,
                pred_bboxes.detach() * stride_tensor,
            )
        else:
            target_labels, target_bboxes, target_scores, fg_mask = self.formal_assigner(
                pred_scores.detach(),
                pred_bboxes.detach() * stride_tensor,
                anchor_points,
                gt_labels,
                gt_bboxes,
                mask_gt,
            )
        target_bboxes = (target_bboxes / stride_tensor).stop_grad()  # grid units
        target_scores = target_scores.stop_grad()
        fg_np = fg_mask.numpy().astype(bool)  # (b, A)

        # classification (varifocal)
        fg_f = fg_mask.float32().unsqueeze(-1)
        labels = jt.where(
            fg_mask, target_labels.int32(), jt.full_like(target_labels.int32(), self.num_classes)
        )
        cls_range = jt.arange(self.num_classes).int32().reshape(1, 1, -1)
        # one_hot(C+1)[..., :-1]
        one_hot_label = (labels.unsqueeze(-1) == cls_range).float32() * fg_f
        loss_cls = self.varifocal_loss(pred_scores, target_scores, one_hot_label.stop_grad())
        target_scores_sum = float(target_scores.sum().item())
        if not np.isfinite(target_scores_sum):
            raise FloatingPointError(
                f"target scores sum is {target_scores_sum}: non-finite predictions?"
            )
        if target_scores_sum > 0:
            loss_cls = loss_cls / target_scores_sum

        # boxes
        loss_iou, loss_dfl = self.bbox_loss(
            pred_distri,
            pred_bboxes,
            anchor_points_s,
            target_bboxes,
            target_scores,
            target_scores_sum,
            fg_np,
        )

        w = self.loss_weight
        terms = {
            "iou": (w["iou"] * loss_iou).reshape(1),
            "dfl": (w["dfl"] * loss_dfl).reshape(1),
            "cls": (w["class"] * loss_cls).reshape(1),
        }
        total = terms["cls"] + terms["iou"] + terms["dfl"]
        splits = np.cumsum(n_anchors_list)[:-1]
        per_level = np.split(fg_np, splits, axis=1)
        score_levels = np.split(target_scores.sum(-1).numpy(), splits, axis=1)  # (b, A_l) each
        stats = {
            "num_pos_per_stride": {s: int(m.sum()) for s, m in zip(self.fpn_strides, per_level)},
            # the weight TAL gives each level's positives: near 0 means its box branch learns
            # ~nothing
            "target_score_per_stride": {
                s: float(v.sum()) for s, v in zip(self.fpn_strides, score_levels)
            },
            "num_pos": int(fg_np.sum()),
            "num_pos_per_image": [int(x) for x in fg_np.sum(1)],
            "num_targets": int(counts.sum()),
            "num_targets_per_image": [int(c) for c in counts],
            "target_scores_sum": target_scores_sum,
            "assigner": "atss" if use_atss else "tal",
            "img_hw": tuple(int(v) for v in img_hw),
        }
        return LossOutput(total=total, terms=terms, stats=stats)

    def bbox_decode(self, anchor_points, pred_dist):
        """(b, A, 4*(R+1)) -> (b, A, 4) xyxy: softmax expectation over bins when DFL is used."""
        if self.use_dfl:
            b, a, _ = pred_dist.shape
            prob = jt.nn.softmax(pred_dist.reshape(b, a, 4, self.reg_max + 1), dim=-1)
            pred_dist = (prob * jt.array(self._proj)).sum(-1)  # (b, A, 4)
        return dist2bbox(pred_dist, anchor_points)


def build_loss(name_or_cfg, num_classes=80, **overrides) -> ComputeLoss:
    """ComputeLoss for a Gold-YOLO variant name (``"gold_yolo_n"`` ...) or config object."""
    cfg = name_or_cfg
    if isinstance(name_or_cfg, str):
        from .configs import get_config  # the model engineer's module

        cfg = get_config(name_or_cfg)
    return ComputeLoss.from_config(cfg, num_classes=num_classes, **overrides)
