"""Resampling ops with PyTorch semantics: adaptive average pooling and bilinear resize.

Wang et al., "Gold-YOLO: Efficient Object Detector via Gather-and-Distribute Mechanism",
NeurIPS 2023.  Upstream ``gold_yolo/common.py`` and ``gold_yolo/transformer.py`` call
``F.adaptive_avg_pool2d`` (``pool_mode='torch'``) and ``F.interpolate(mode='bilinear',
align_corners=False)``.  Jittor's ``AdaptiveAvgPool2d`` uses fixed windows (upstream's
``onnx_AdaptiveAvgPool2d``), which differs from torch when sizes do not divide, so both ops
are written here as separable linear maps:

    out (N, C, oh, ow) = Mh (oh, H) @ x (N, C, H, W) @ Mw^T (W, ow)

The small matrices are built in numpy from torch's exact index/weight rules and cached;
on CPU the two matmuls are far cheaper than a gather.  Divisible pooling (the common case)
is a reshape + mean.

``MaxPool2d`` lifts Jittor's refusal of maps no larger than the kernel (torch accepts them).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from .. import jt  # the package sets up the Jittor runtime first

# Jittor's own modules only after the runtime set-up above:
# isort: split
from jittor import nn

__all__ = [
    "adaptive_avg_pool2d",
    "interpolate_bilinear",
    "pool_matrix",
    "bilinear_matrix",
    "MaxPool2d",
]


@lru_cache(maxsize=256)
def pool_matrix(in_size: int, out_size: int, dtype: str = "float32") -> np.ndarray:
    """(out, in) averaging matrix of torch ``adaptive_avg_pool`` along one axis."""
    m = np.zeros((out_size, in_size), dtype=dtype)
    for i in range(out_size):
        start = (i * in_size) // out_size
        end = -((-(i + 1) * in_size) // out_size)  # ceil
        m[i, start:end] = 1.0 / (end - start)
    m.setflags(write=False)
    return m


@lru_cache(maxsize=256)
def bilinear_matrix(in_size: int, out_size: int, dtype: str = "float32") -> np.ndarray:
    """(out, in) interpolation matrix of torch ``interpolate(bilinear, align_corners=False,
    size=...)`` along one axis (scale = in/out, source index clamped at 0), built in the
    input's dtype (float64 in ``gradcheck align``'s float64 rerun)."""
    m = np.zeros((out_size, in_size), dtype=dtype)
    scale = in_size / out_size
    for i in range(out_size):
        src = max(scale * (i + 0.5) - 0.5, 0.0)
        i0 = int(src)  # floor (src >= 0)
        i1 = i0 + 1 if i0 < in_size - 1 else i0
        l1 = src - i0
        m[i, i0] += 1.0 - l1
        m[i, i1] += l1
    m.setflags(write=False)
    return m


def _apply_separable(x, mh: np.ndarray, mw: np.ndarray):
    # x: (N, C, H, W) -> (N, C, oh, ow)
    H, W = x.shape[2], x.shape[3]
    # a square matrix is the identity under both rules (out == in): skip it
    if mw.shape[0] != W:
        x = jt.matmul(x, jt.array(np.ascontiguousarray(mw.T)))  # (N, C, H, ow)
    if mh.shape[0] != H:
        x = jt.matmul(jt.array(mh), x)  # (N, C, oh, ow)
    return x


def _size2(output_size) -> tuple[int, int]:
    if isinstance(output_size, int):
        return output_size, output_size
    oh, ow = output_size
    return int(oh), int(ow)


def adaptive_avg_pool2d(x, output_size: Sequence[int] | int):
    """torch ``F.adaptive_avg_pool2d``: (N, C, H, W) -> (N, C, oh, ow)."""
    oh, ow = _size2(output_size)
    N, C, H, W = x.shape
    if (oh, ow) == (H, W):
        return x
    if H % oh == 0 and W % ow == 0:
        kh, kw = H // oh, W // ow
        return x.reshape(N, C, oh, kh, ow, kw).mean(dims=(3, 5))
    return _apply_separable(x, pool_matrix(H, oh, str(x.dtype)), pool_matrix(W, ow, str(x.dtype)))


def interpolate_bilinear(x, size: Sequence[int] | int):
    """torch ``F.interpolate(x, size, mode='bilinear', align_corners=False)``."""
    oh, ow = _size2(size)
    H, W = x.shape[2], x.shape[3]
    if (oh, ow) == (H, W):
        return x  # exact identity under torch's rule
    dt = str(x.dtype)
    return _apply_separable(x, bilinear_matrix(H, oh, dt), bilinear_matrix(W, ow, dt))


class MaxPool2d(nn.MaxPool2d):
    """``nn.MaxPool2d`` (stride 1, 'same' padding in Gold-YOLO's SPPF) that also accepts maps
    no larger than the kernel, as torch does.

    Jittor's pool refuses H <= kernel or W <= kernel (a guard, not a limit of the kernel).
    For such small maps we pad the bottom/right with -inf up to kernel+1, pool, and crop:
    -inf never wins a window that holds a real value, and Jittor's max-pool backward, like
    torch's, routes each gradient to the first maximum only.
    """

    def execute(self, x):
        kh, kw = self._layer.kernel_size
        N, C, H, W = x.shape
        ph, pw = max(0, kh + 1 - H), max(0, kw + 1 - W)
        if ph == 0 and pw == 0:
            return self._layer(x)
        if pw:
            x = jt.concat([x, jt.full((N, C, H, pw), float("-inf"), dtype=x.dtype)], dim=3)
        if ph:
            x = jt.concat([x, jt.full((N, C, ph, W + pw), float("-inf"), dtype=x.dtype)], dim=2)
        return self._layer(x)[:, :, :H, :W]
