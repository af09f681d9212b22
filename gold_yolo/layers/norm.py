"""BatchNorm with torch's training-mode statistics, for a faithful Gold-YOLO.

Wang et al., "Gold-YOLO", NeurIPS 2023 trains with ``torch.nn.BatchNorm2d`` (upstream
``yolov6/layers/common.py`` and friends).  Jittor 1.3.11's ``nn.BatchNorm`` differs from it
in training mode in two ways that matter for "same weights, same gradients":

* it computes the batch variance as ``mean(x*x) - mean(x)**2`` with float32 reductions,
  which loses about 1% of the variance on a real activation map (measured by
  ``bench/parity_official.py``: output error 4e-3 after the first BN, median gradient error
  ~0.5 through the whole network);
* its running variance takes the biased batch variance; torch takes the unbiased one.

This subclass keeps Jittor's parameters and buffers (``weight``, ``bias``, ``running_mean``,
``running_var``: same names, same optimizer groups) and computes the statistics as torch
does: a two-pass variance, accumulated in float64, and an unbiased running variance.  Eval
mode is Jittor's own (it already matches torch).

    x (B, C, H, W) -> (B, C, H, W)
"""

from __future__ import annotations

from .. import jt  # the package sets up the Jittor runtime first
from jittor import nn

__all__ = ["BatchNorm2d"]


class BatchNorm2d(nn.BatchNorm):
    def execute(self, x):
        if not self.is_train:
            return super().execute(x)
        dims = [0] + list(range(2, x.ndim))
        x64 = x.float64()
        mean = x64.mean(dims=dims)                                             # (C,)
        var = (x64 - mean.broadcast(x64, dims)).sqr().mean(dims=dims)          # (C,) biased
        w = (self.weight / jt.sqrt(var + self.eps).float32())                  # (C,)
        b = self.bias - mean.float32() * w
        n = x.numel() // x.shape[1]
        self.running_mean.update(self.running_mean
                                 + (mean.float32() - self.running_mean) * self.momentum)
        unbiased = (var * (n / max(n - 1, 1))).float32()
        self.running_var.update(self.running_var + (unbiased - self.running_var) * self.momentum)
        return x * w.broadcast(x, dims) + b.broadcast(x, dims)
