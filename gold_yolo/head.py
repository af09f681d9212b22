"""Efficient decoupled head (EffiDeHead) of YOLOv6, as used by Gold-YOLO.

Wang et al., "Gold-YOLO: Efficient Object Detector via Gather-and-Distribute Mechanism",
NeurIPS 2023.  Upstream: ``Detection/Gold-YOLO/yolov6/models/effidehead.py``
(``Detect``, ``build_effidehead_layer``), ``yolov6/assigners/anchor_generator.py``
(``generate_anchors``, eval branch) and ``yolov6/utils/general.py`` (``dist2bbox``).

Per level i (stride 8, 16, 32), on x_i (B, C_i, H_i, W_i):
    stem (1x1 Conv) -> cls_conv (3x3) -> cls_pred (1x1, nc)       -> sigmoid
                    -> reg_conv (3x3) -> reg_pred (1x1, 4*(R+1))    (R = reg_max of the head
                                                                     layers: 16, or 0 for n)
Training output (A = sum H_i*W_i anchors):
    (x (list of stem outputs), cls_scores (B, A, nc), reg_distri (B, A, 4*(R+1)))
Eval output: (B, A, 5 + nc) = [cx, cy, w, h (pixels), 1, class scores].

Note (faithful quirk): upstream builds ``Detect(...)`` without passing ``reg_max``, so the
``Detect`` module's own ``reg_max`` is always 16 and ``proj`` / ``proj_conv`` have 17 entries
even for Gold-YOLO-n, whose prediction layers use reg_max=0 (and use_dfl=False).
"""

from __future__ import annotations

import math

import numpy as np

from . import jt  # the package sets up the Jittor runtime first

# Jittor's own modules only after the runtime set-up above:
# isort: split
from jittor import nn

from .layers.common import Conv
from .layers.conv import Conv2d

__all__ = ["Detect", "EffiDeHead", "build_effidehead_layer", "generate_anchors_eval", "dist2bbox"]


def generate_anchors_eval(feats, fpn_strides, grid_cell_offset=0.5):
    """Anchor points (A, 2) in grid units and strides (A, 1), numpy, row-major per level."""
    points, strides = [], []
    for f, stride in zip(feats, fpn_strides):
        h, w = f.shape[2], f.shape[3]
        sy, sx = np.meshgrid(
            np.arange(h, dtype=np.float32) + grid_cell_offset,
            np.arange(w, dtype=np.float32) + grid_cell_offset,
            indexing="ij",
        )
        points.append(np.stack([sx, sy], -1).reshape(-1, 2))
        strides.append(np.full((h * w, 1), stride, dtype=np.float32))
    return np.concatenate(points), np.concatenate(strides)


def dist2bbox(distance, anchor_points, box_format="xyxy"):
    """ltrb distances (..., 4) around anchor points (..., 2) -> boxes (..., 4)."""
    lt, rb = distance[..., :2], distance[..., 2:]
    x1y1 = anchor_points - lt
    x2y2 = anchor_points + rb
    if box_format == "xyxy":
        return jt.concat([x1y1, x2y2], dim=-1)
    if box_format == "xywh":
        return jt.concat([(x1y1 + x2y2) / 2, x2y2 - x1y1], dim=-1)
    raise ValueError(box_format)


class Detect(nn.Module):
    """Efficient decoupled head.  Attributes mirror upstream (stems, cls_convs, reg_convs,
    cls_preds, reg_preds, proj_conv, proj); ``stride`` is a python list, not a Var."""

    def __init__(
        self, num_classes=80, num_layers=3, inplace=True, head_layers=None, use_dfl=True, reg_max=16
    ):
        super().__init__()
        assert head_layers is not None
        self.nc = num_classes
        self.no = num_classes + 5
        self.nl = num_layers
        self.prior_prob = 1e-2
        self.inplace = inplace
        self.stride = [8, 16, 32] if num_layers == 3 else [8, 16, 32, 64]
        self.use_dfl = use_dfl
        self.reg_max = reg_max
        self.proj_conv = Conv2d(self.reg_max + 1, 1, 1, bias=False)
        self.grid_cell_offset = 0.5
        self.grid_cell_size = 5.0

        self.stems = nn.ModuleList()
        self.cls_convs = nn.ModuleList()
        self.reg_convs = nn.ModuleList()
        self.cls_preds = nn.ModuleList()
        self.reg_preds = nn.ModuleList()
        layers = list(head_layers)
        for i in range(num_layers):
            idx = i * 5
            self.stems.append(layers[idx])
            self.cls_convs.append(layers[idx + 1])
            self.reg_convs.append(layers[idx + 2])
            self.cls_preds.append(layers[idx + 3])
            self.reg_preds.append(layers[idx + 4])
        # as upstream, ``initialize_biases`` is called by the model after the generic init

    def initialize_biases(self):
        """cls_pred: weight 0, bias -log((1-p)/p) (p=0.01); reg_pred: weight 0, bias 1;
        proj = [0..reg_max] and proj_conv.weight = proj (1, reg_max+1, 1, 1), both frozen."""
        cls_bias = -math.log((1 - self.prior_prob) / self.prior_prob)
        for conv in self.cls_preds:
            conv.bias.assign(jt.full_like(conv.bias, cls_bias))
            conv.weight.assign(jt.zeros_like(conv.weight))
        for conv in self.reg_preds:
            conv.bias.assign(jt.full_like(conv.bias, 1.0))
            conv.weight.assign(jt.zeros_like(conv.weight))
        proj = np.linspace(0, self.reg_max, self.reg_max + 1, dtype=np.float32)
        self.proj = jt.array(proj).stop_grad()
        self.proj_conv.weight = jt.array(proj.reshape(1, self.reg_max + 1, 1, 1)).stop_grad()

    def _level(self, i, x):
        x = self.stems[i](x)
        cls_output = self.cls_preds[i](self.cls_convs[i](x))  # (B, nc, H, W)
        reg_output = self.reg_preds[i](self.reg_convs[i](x))  # (B, 4*(R+1), H, W)
        return x, cls_output, reg_output

    def execute(self, x):
        x = list(x)
        if self.is_training():
            cls_score_list, reg_distri_list = [], []
            for i in range(self.nl):
                x[i], cls_output, reg_output = self._level(i, x[i])
                cls_output = cls_output.sigmoid()
                cls_score_list.append(cls_output.flatten(2).permute(0, 2, 1))  # (B, HW, nc)
                reg_distri_list.append(reg_output.flatten(2).permute(0, 2, 1))  # (B, HW, 4(R+1))
            return (x, jt.concat(cls_score_list, dim=1), jt.concat(reg_distri_list, dim=1))

        anchor_points, stride_tensor = generate_anchors_eval(x, self.stride, self.grid_cell_offset)
        cls_score_list, reg_dist_list = [], []
        for i in range(self.nl):
            b, _, h, w = x[i].shape
            hw = h * w
            x[i], cls_output, reg_output = self._level(i, x[i])
            if self.use_dfl:
                reg_output = reg_output.reshape(-1, 4, self.reg_max + 1, hw).permute(0, 2, 1, 3)
                reg_output = self.proj_conv(nn.softmax(reg_output, dim=1))  # (B, 1, 4, hw)
            cls_score_list.append(cls_output.sigmoid().reshape(b, self.nc, hw))
            reg_dist_list.append(reg_output.reshape(b, 4, hw))
        cls_scores = jt.concat(cls_score_list, dim=-1).permute(0, 2, 1)  # (B, A, nc)
        reg_dists = jt.concat(reg_dist_list, dim=-1).permute(0, 2, 1)  # (B, A, 4)
        pred_bboxes = dist2bbox(reg_dists, jt.array(anchor_points), box_format="xywh")
        pred_bboxes = pred_bboxes * jt.array(stride_tensor)
        ones = jt.ones((b, pred_bboxes.shape[1], 1), dtype=pred_bboxes.dtype)
        return jt.concat([pred_bboxes, ones, cls_scores], dim=-1)  # (B, A, 5+nc)


EffiDeHead = Detect


def build_effidehead_layer(channels_list, num_anchors, num_classes, reg_max=16, num_layers=3):
    """The 5*num_layers head modules: per level stem, cls_conv, reg_conv, cls_pred, reg_pred."""
    chx = [6, 8, 10] if num_layers == 3 else [8, 9, 10, 11]
    layers = []
    for c in (channels_list[k] for k in chx[:num_layers]):
        layers += [
            Conv(in_channels=c, out_channels=c, kernel_size=1, stride=1),  # stem
            Conv(in_channels=c, out_channels=c, kernel_size=3, stride=1),  # cls_conv
            Conv(in_channels=c, out_channels=c, kernel_size=3, stride=1),  # reg_conv
            Conv2d(c, num_classes * num_anchors, 1),  # cls_pred
            Conv2d(c, 4 * (reg_max + num_anchors), 1),  # reg_pred
        ]
    return nn.Sequential(*layers)
