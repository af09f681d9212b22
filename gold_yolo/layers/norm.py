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
does: a two-pass variance, accumulated in float64, and an unbiased running variance.  Its
backward is explicit (``_TrainNorm``): elementwise in the input's dtype (float32 in training;
float64 when ``gradcheck align`` reruns the port in float64), the per-channel sums in float64.
Eval mode is Jittor's own (it already matches torch).

    x (B, C, H, W) -> (B, C, H, W)
"""

from __future__ import annotations

from .. import jt  # the package sets up the Jittor runtime first
from jittor import nn

__all__ = ["BatchNorm2d"]


class _TrainNorm(jt.Function):
    """Training-mode normalisation with the statistics in float64 and an explicit backward:
    elementwise work in the input's dtype, the two per-channel sums accumulated in float64 (torch's
    CPU kernel accumulates in double too).  Autodiff through the float64 statistics instead
    materialised float64 copies of every activation (28% of Gold-YOLO-N's op time)."""

    def execute(self, x, weight, bias, eps):
        dims = [0] + list(range(2, x.ndim))
        x64 = x.float64()
        mean = x64.mean(dims=dims)                                             # (C,)
        var = (x64 - mean.broadcast(x64, dims)).sqr().mean(dims=dims)          # (C,) biased
        std = jt.sqrt(var + eps).cast(x.dtype)                                  # (C,)
        inv = 1.0 / std
        w = weight / std                                                        # (C,)
        b = bias - mean.cast(x.dtype) * w
        self.saved = (x, mean.cast(x.dtype), inv, weight, dims)
        return x * w.broadcast(x, dims) + b.broadcast(x, dims), mean.stop_grad(), var.stop_grad()

    def grad(self, gy, gmean=None, gvar=None):
        x, mean, inv, weight, dims = self.saved
        n = x.numel() // x.shape[1]
        xhat = (x - mean.broadcast(x, dims)) * inv.broadcast(x, dims)          # x's dtype
        sum_g = gy.float64().sum(dims=dims)                                    # (C,) float64 sums
        sum_gx = (gy * xhat).float64().sum(dims=dims)
        mg, mgx = (sum_g / n).cast(x.dtype), (sum_gx / n).cast(x.dtype)
        gx = (gy - mg.broadcast(x, dims) - xhat * mgx.broadcast(x, dims)) * (weight * inv).broadcast(x, dims)
        return gx, sum_gx.cast(weight.dtype), sum_g.cast(weight.dtype), None


class BatchNorm2d(nn.BatchNorm):
    def execute(self, x):
        if not self.is_train:
            return super().execute(x)
        y, mean, var = _TrainNorm.apply(x, self.weight, self.bias, self.eps)
        n = x.numel() // x.shape[1]
        self.running_mean.update(self.running_mean
                                 + (mean.cast(self.running_mean.dtype) - self.running_mean)
                                 * self.momentum)
        unbiased = (var * (n / max(n - 1, 1))).cast(self.running_var.dtype)
        self.running_var.update(self.running_var + (unbiased - self.running_var) * self.momentum)
        return y
