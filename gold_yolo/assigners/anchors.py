"""Anchor points / anchor boxes for the anchor-free Gold-YOLO head (Jittor).

Gold-YOLO: Wang et al., NeurIPS 2023.  Follows ``yolov6/assigners/anchor_generator.py``
(``generate_anchors``, anchor-free mode) of huawei-noah/Efficient-Computing,
Detection/Gold-YOLO.  The grids only depend on the feature-map shapes, so they are built
in numpy (cached per shape) and handed out as fresh Jittor Vars.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .. import jt  # the package sets up the Jittor runtime first

__all__ = ["generate_anchors", "anchors_numpy"]


@lru_cache(maxsize=64)
def anchors_numpy(shapes, fpn_strides, grid_cell_size=5.0, grid_cell_offset=0.5):
    """numpy anchors for feature maps of ``shapes`` ((h, w) per level).

    Returns (anchors (A, 4) xyxy pixels, anchor_points (A, 2) pixels, n_anchors_list,
    stride_tensor (A, 1)), levels concatenated in order, row-major (y outer, x inner) as
    ``feat.flatten(2)`` lays them out.
    """
    anchors, points, strides, n_list = [], [], [], []
    for (h, w), stride in zip(shapes, fpn_strides):
        half = grid_cell_size * stride * 0.5
        sx = (np.arange(w, dtype=np.float32) + grid_cell_offset) * stride
        sy = (np.arange(h, dtype=np.float32) + grid_cell_offset) * stride
        yy, xx = np.meshgrid(sy, sx, indexing="ij")  # (h, w) each
        pt = np.stack([xx, yy], -1).reshape(-1, 2)  # (h*w, 2)
        anchors.append(np.concatenate([pt - half, pt + half], -1))  # (h*w, 4)
        points.append(pt)
        n_list.append(h * w)
        strides.append(np.full((h * w, 1), stride, np.float32))
    out = (
        np.concatenate(anchors).astype(np.float32),
        np.concatenate(points).astype(np.float32),
        tuple(n_list),
        np.concatenate(strides),
    )
    for a in (out[0], out[1], out[3]):
        a.setflags(write=False)
    return out


def generate_anchors(feats, fpn_strides, grid_cell_size=5.0, grid_cell_offset=0.5, is_eval=False):
    """Anchors for a list of feature maps (b, c, h_i, w_i) (or a list of (h, w) shapes).

    Training mode returns ``(anchors (A, 4), anchor_points (A, 2), n_anchors_list,
    stride_tensor (A, 1))`` in pixels, like upstream.  ``is_eval=True`` returns
    ``(anchor_points (A, 2), stride_tensor (A, 1))`` with points in grid units (upstream's
    eval branch).
    """
    shapes = tuple(
        (int(f[-2]), int(f[-1]))
        if isinstance(f, (tuple, list))
        else (int(f.shape[-2]), int(f.shape[-1]))
        for f in feats
    )
    strides = tuple(int(s) for s in fpn_strides)
    if len(shapes) != len(strides):
        raise ValueError(f"{len(shapes)} feature maps but {len(strides)} strides")
    anchors, points, n_list, stride_t = anchors_numpy(
        shapes, strides, float(grid_cell_size), float(grid_cell_offset)
    )
    if is_eval:
        return jt.array(points / stride_t), jt.array(stride_t)
    return jt.array(anchors), jt.array(points), list(n_list), jt.array(stride_t)
