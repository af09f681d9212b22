"""Conv2d whose CPU forward calls oneDNN as PyTorch's CPU convolution does.

Upstream's layers are ``torch.nn.Conv2d`` (``yolov6/layers/common.py`` and friends); torch runs
a float32 CPU convolution through oneDNN as a *training* forward.  Jittor 1.3.11 swaps its
convolution pattern for oneDNN too (``mkl_conv``, chosen by its conv tuner), but always asks for
an *inference* forward with every layout left to oneDNN.  oneDNN 2.6 then picks its brgemm
kernels, which want channels-last data: every forward reorders its input NCHW -> NHWC and its
output back.  On Gold-YOLO-S at 640 those reorders alone took 121 ms of a 2.2 s step, and a
1x1 convolution at 64 channels and 160x160 took 11.7 ms where torch's path takes 3.7 ms.

This module's forward is one oneDNN call per convolution (``_FWD_SRC``):

* a 1x1 convolution with stride 1 and no padding keeps NCHW data (oneDNN runs it as a GEMM:
  no reorder of the activations at all);
* any other asks for a training forward with layouts left to oneDNN (blocked, as torch).

The backward is Jittor's own oneDNN backward ops (``mkl_conv_backward_x`` / ``_w``), the very
ops its conv tuner emits today.  Parameters, names and initialisation are Jittor's
``nn.Conv2d``; off this path (CUDA, a dtype other than float32, no oneDNN) it is Jittor's
convolution unchanged.

    x (N, C, H, W), weight (O, C/groups, KH, KW) -> (N, O, OH, OW)
"""

from __future__ import annotations

from .. import jt  # the package sets up the Jittor runtime first

# Jittor's own modules only after the runtime set-up above:
# isort: split
from jittor import nn

__all__ = ["Conv2d"]

_HEADER = "#include <oneapi/dnnl/dnnl.hpp>\n"
# The geometry comes in the op's ``data`` (float64 values, read at run time), so one compiled
# kernel serves every convolution: each one compiled per geometry cost a cold cache about 4 s
# of g++ over oneDNN's headers (five geometries in Gold-YOLO-S).
_FWD_SRC = r"""
using namespace dnnl;
using tag = memory::format_tag;
using dt = memory::data_type;
// in0 x (N, C, H, W), in1 w (O, C/G, KH, KW), out0 y (N, O, OH, OW); float32, plain layouts
auto at = [&](const char* key) { return (memory::dim)data[key]; };
const memory::dim G = at("groups");
const memory::dims xd = {in0_shape0, in0_shape1, in0_shape2, in0_shape3};
const memory::dims yd = {out0_shape0, out0_shape1, out0_shape2, out0_shape3};
const memory::dims wd = G > 1
    ? memory::dims{G, in1_shape0 / G, in1_shape1, in1_shape2, in1_shape3}
    : memory::dims{in1_shape0, in1_shape1, in1_shape2, in1_shape3};
static engine eng(engine::kind::cpu, 0);
stream s(eng);
memory ux({xd, dt::f32, tag::nchw}, eng, in0_p);
memory uw({wd, dt::f32, G > 1 ? tag::goihw : tag::oihw}, eng, in1_p);
memory uy({yd, dt::f32, tag::nchw}, eng, out0_p);
// a pointwise convolution keeps NCHW (a GEMM, no reorder); others take oneDNN's blocked layout
const bool plain = at("plain") != 0;
const tag act = plain ? tag::nchw : tag::any;
auto desc = convolution_forward::desc(
    prop_kind::forward_training, algorithm::convolution_direct,
    memory::desc(xd, dt::f32, act), memory::desc(wd, dt::f32, tag::any), memory::desc(yd, dt::f32, act),
    {at("stride_h"), at("stride_w")}, {at("dilation_h") - 1, at("dilation_w") - 1},
    {at("pad_h"), at("pad_w")}, {at("pad_h"), at("pad_w")});
convolution_forward::primitive_desc pd(desc, eng);
memory cx = ux, cw = uw, cy = uy;
if (pd.src_desc() != ux.get_desc()) { cx = memory(pd.src_desc(), eng); reorder(ux, cx).execute(s, ux, cx); }
if (pd.weights_desc() != uw.get_desc()) { cw = memory(pd.weights_desc(), eng); reorder(uw, cw).execute(s, uw, cw); }
if (pd.dst_desc() != uy.get_desc()) cy = memory(pd.dst_desc(), eng);
convolution_forward(pd).execute(s, {{DNNL_ARG_SRC, cx}, {DNNL_ARG_WEIGHTS, cw}, {DNNL_ARG_DST, cy}});
if (cy != uy) reorder(cy, uy).execute(s, cy, uy);
s.wait();
"""  # noqa: E501 - C++ kept byte for byte: Jittor keys its compiled op on this text


def _onednn_flags():
    """The compile flags that let a code op include oneDNN's headers, or None without oneDNN."""
    from jittor import compile_extern

    from gradcheck import runtime

    include = runtime.onednn_include_dir()
    if include is None or getattr(compile_extern, "mkl_ops", None) is None:
        return None
    return f'FLAGS: -I"{include}" '


_FLAGS = _onednn_flags()


def _geometry(stride, padding, dilation, groups, plain) -> dict:
    """The kernel's ``data``: one convolution's geometry."""
    return {
        "stride_h": stride[0],
        "stride_w": stride[1],
        "pad_h": padding[0],
        "pad_w": padding[1],
        "dilation_h": dilation[0],
        "dilation_w": dilation[1],
        "groups": groups,
        "plain": int(plain),
    }


class _OneDnnConv(jt.Function):
    """y = conv(x, w) on the CPU through oneDNN; dx and dw from Jittor's oneDNN backward ops."""

    def execute(self, x, w, stride, padding, dilation, groups):
        stride, padding, dilation = tuple(stride), tuple(padding), tuple(dilation)
        n, _, h, wi = x.shape
        o, _, kh, kw = w.shape
        oh = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
        ow = (wi + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
        plain = (kh, kw, stride, padding, groups) == (1, 1, (1, 1), (0, 0), 1)
        data = _geometry(stride, padding, dilation, groups, plain)
        y = jt.code(
            (n, o, oh, ow), "float32", [x, w], cpu_header=_HEADER, cpu_src=_FWD_SRC, data=data
        )
        y.compile_options = {_FLAGS: 1}
        self.saved = (x, w, stride, padding, dilation, groups)
        return y

    def grad(self, gy):
        x, w, stride, padding, dilation, groups = self.saved  # kept: a second backward may come
        from jittor.compile_extern import mkl_ops

        geometry = (*stride, *padding, *dilation, groups, "abcd", "oihw", "abcd")
        gx = mkl_ops.mkl_conv_backward_x(w, gy, x.shape[2], x.shape[3], *geometry)
        gw = mkl_ops.mkl_conv_backward_w(x, gy, w.shape[2], w.shape[3], *geometry)
        return gx, gw, None, None, None, None


def _onednn_path(x, w) -> bool:
    return (
        _FLAGS is not None
        and not jt.flags.use_cuda
        and x.ndim == 4
        and x.numel() > 0
        and x.dtype == "float32"
        and w.dtype == "float32"
    )


class Conv2d(nn.Conv2d):
    """``jittor.nn.Conv2d`` with :class:`_OneDnnConv` as its float32 CPU path."""

    def execute(self, x):
        if not _onednn_path(x, self.weight):
            return super().execute(x)
        y = _OneDnnConv.apply(x, self.weight, self.stride, self.padding, self.dilation, self.groups)
        if self.bias is not None:
            y = y + self.bias.broadcast(y.shape, [0, 2, 3])
        return y
