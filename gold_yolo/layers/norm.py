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

# Jittor's own modules only after the runtime set-up above:
# isort: split
from jittor import nn

__all__ = ["BatchNorm2d"]


# CPU kernels of _TrainNorm: the same float32 / float64 expressions as the Jittor graph in
# ``_TrainNorm._execute_graph`` / ``_grad_graph`` (which CUDA still runs), written as one loop
# nest per channel instead of 3-4 fused ops with broadcast index arithmetic.  x is (N, C, L).
# The channels are split over OpenMP's threads (the pool oneDNN's convolutions already keep
# warm), one channel per thread, so the float64 sums run in one order whatever the thread
# count: results do not depend on it.  Gold-YOLO-N at 640: BatchNorm op time 68 -> 37 ms a
# step, the step 830 -> 765 ms.  With the second core kept busy by another process the step
# is no slower than single-threaded (2.33 s against 2.48 s); an earlier try with a std::thread
# per call was (each of the ~300 calls waited for its slower half).
_NORM_HEADER = "#include <cmath>\n"
_FWD_SRC = r"""
// in0 x (N, C, L) float32, in1 weight (C), in2 bias (C)
// out0 y (N, C, L), out1 mean (C) float64, out2 var (C) float64 (biased), out3 mean (C) float32,
// out4 1/std (C) float32
const index_t N = in0_shape0, C = in0_shape1, L = in0_shape2;
const double rcount = C * 1.0 / (N * C * L);   // as Jittor: y->num * 1.0 / x->num
const double eps = (double)(float)data["eps"];  // run-time data: one kernel for any eps
#pragma omp parallel for schedule(static) if (N * C * L >= 65536)
for (index_t c = 0; c < C; c++) {
    double s = 0;
    for (index_t n = 0; n < N; n++) {
        const float* xp = in0_p + (n * C + c) * L;
        for (index_t i = 0; i < L; i++) s += (double)xp[i] * rcount;   // Jittor's mean
    }
    const double mean = s;
    double s2 = 0;
    for (index_t n = 0; n < N; n++) {
        const float* xp = in0_p + (n * C + c) * L;
        for (index_t i = 0; i < L; i++) { double d = (double)xp[i] - mean; s2 += d * d * rcount; }
    }
    const double var = s2;
    const float std = (float)std::sqrt(var + eps);
    const float mean32 = (float)mean;
    const float w = in1_p[c] / std;
    const float b = in2_p[c] - mean32 * w;
    for (index_t n = 0; n < N; n++) {
        const float* xp = in0_p + (n * C + c) * L;
        float* yp = out0_p + (n * C + c) * L;
        for (index_t i = 0; i < L; i++) yp[i] = xp[i] * w + b;
    }
    out1_p[c] = mean; out2_p[c] = var; out3_p[c] = mean32; out4_p[c] = 1.0f / std;
}
"""
_BWD_SRC = r"""
// in0 gy (N, C, L), in1 x (N, C, L), in2 mean (C) float32, in3 1/std (C), in4 weight (C)
// out0 gx (N, C, L), out1 grad weight (C), out2 grad bias (C)
const index_t N = in0_shape0, C = in0_shape1, L = in0_shape2;
const double cnt = (double)(N * L);
#pragma omp parallel for schedule(static) if (N * C * L >= 65536)
for (index_t c = 0; c < C; c++) {
    const float m = in2_p[c], inv = in3_p[c];
    double sg = 0, sgx = 0;
    for (index_t n = 0; n < N; n++) {
        const float* gp = in0_p + (n * C + c) * L;
        const float* xp = in1_p + (n * C + c) * L;
        for (index_t i = 0; i < L; i++) {
            const float xhat = (xp[i] - m) * inv;
            sg += (double)gp[i];
            sgx += (double)(gp[i] * xhat);
        }
    }
    const float mg = (float)(sg / cnt), mgx = (float)(sgx / cnt);
    const float scale = in4_p[c] * inv;
    for (index_t n = 0; n < N; n++) {
        const float* gp = in0_p + (n * C + c) * L;
        const float* xp = in1_p + (n * C + c) * L;
        float* op = out0_p + (n * C + c) * L;
        for (index_t i = 0; i < L; i++) {
            const float xhat = (xp[i] - m) * inv;
            op[i] = (gp[i] - mg - xhat * mgx) * scale;
        }
    }
    out1_p[c] = (float)sgx; out2_p[c] = (float)sg;
}
"""


def _cpu_kernels(x, weight, bias) -> bool:
    return (
        not jt.flags.use_cuda
        and x.ndim >= 2
        and x.numel() > 0
        and x.dtype == "float32"
        and weight.dtype == "float32"
        and bias.dtype == "float32"
    )


class _TrainNorm(jt.Function):
    """Training-mode normalisation with the statistics in float64 and an explicit backward:
    elementwise work in the input's dtype, the two per-channel sums accumulated in float64 (torch's
    CPU kernel accumulates in double too).  Autodiff through the float64 statistics instead
    materialised float64 copies of every activation (28% of Gold-YOLO-N's op time).
    float32 on CPU: each direction is one hand-written kernel (``_FWD_SRC``, ``_BWD_SRC``);
    otherwise (CUDA, float64 reruns) the same expressions as a Jittor graph."""

    def execute(self, x, weight, bias, eps):
        self.cpu = _cpu_kernels(x, weight, bias)
        if not self.cpu:
            return self._execute_graph(x, weight, bias, eps)
        shape = x.shape
        x3 = x.reshape(shape[0], shape[1], -1)
        c = shape[1]
        y, mean, var, mean32, inv = jt.code(
            [x3.shape, (c,), (c,), (c,), (c,)],
            ["float32", "float64", "float64", "float32", "float32"],
            [x3, weight, bias],
            cpu_header=_NORM_HEADER,
            cpu_src=_FWD_SRC,
            data={"eps": float(eps)},
        )
        self.saved = (x3, mean32, inv, weight, shape)
        return y.reshape(shape), mean.stop_grad(), var.stop_grad()

    def grad(self, gy, gmean=None, gvar=None):
        if not self.cpu:
            return self._grad_graph(gy)
        x3, mean32, inv, weight, shape = self.saved  # kept: a second backward may come
        gx, gw, gb = jt.code(
            [x3.shape, weight.shape, weight.shape],
            ["float32"] * 3,
            [gy.reshape(x3.shape), x3, mean32, inv, weight],
            cpu_header=_NORM_HEADER,
            cpu_src=_BWD_SRC,
        )
        return gx.reshape(shape), gw, gb, None

    def _execute_graph(self, x, weight, bias, eps):
        dims = [0] + list(range(2, x.ndim))
        x64 = x.float64()
        mean = x64.mean(dims=dims)  # (C,)
        var = (x64 - mean.broadcast(x64, dims)).sqr().mean(dims=dims)  # (C,) biased
        std = jt.sqrt(var + eps).cast(x.dtype)  # (C,)
        inv = 1.0 / std
        w = weight / std  # (C,)
        b = bias - mean.cast(x.dtype) * w
        self.saved = (x, mean.cast(x.dtype), inv, weight, dims)
        return x * w.broadcast(x, dims) + b.broadcast(x, dims), mean.stop_grad(), var.stop_grad()

    def _grad_graph(self, gy):
        x, mean, inv, weight, dims = self.saved
        n = x.numel() // x.shape[1]
        xhat = (x - mean.broadcast(x, dims)) * inv.broadcast(x, dims)  # x's dtype
        sum_g = gy.float64().sum(dims=dims)  # (C,) float64 sums
        sum_gx = (gy * xhat).float64().sum(dims=dims)
        mg, mgx = (sum_g / n).cast(x.dtype), (sum_gx / n).cast(x.dtype)
        gx = (gy - mg.broadcast(x, dims) - xhat * mgx.broadcast(x, dims)) * (
            weight * inv
        ).broadcast(x, dims)
        return gx, sum_gx.cast(weight.dtype), sum_g.cast(weight.dtype), None


class BatchNorm2d(nn.BatchNorm):
    def execute(self, x):
        if not self.is_train:
            return super().execute(x)
        y, mean, var = _TrainNorm.apply(x, self.weight, self.bias, self.eps)
        n = x.numel() // x.shape[1]
        self.running_mean.update(
            self.running_mean
            + (mean.cast(self.running_mean.dtype) - self.running_mean) * self.momentum
        )
        unbiased = (var * (n / max(n - 1, 1))).cast(self.running_var.dtype)
        self.running_var.update(self.running_var + (unbiased - self.running_var) * self.momentum)
        return y
