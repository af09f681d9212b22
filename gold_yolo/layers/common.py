"""Conv/BN/activation cells and RepVGG-style blocks of YOLOv6, as used by Gold-YOLO.

Wang et al., "Gold-YOLO: Efficient Object Detector via Gather-and-Distribute Mechanism",
NeurIPS 2023.  Upstream: ``Detection/Gold-YOLO/yolov6/layers/common.py`` (and the identical
``Conv`` of ``gold_yolo/layers.py``).  Module and attribute names follow upstream exactly so
parameter names match the official ones (``rbr_dense.conv.weight``, ``cv1.bn.bias``, ...).

Shapes: every block maps (N, C_in, H, W) -> (N, C_out, H/stride, W/stride).
"""

from __future__ import annotations

import numpy as np

from .. import jt  # the package sets up the Jittor runtime first

# Jittor's own modules only after the runtime set-up above:
# isort: split
from jittor import nn

from ..registry import BLOCKS
from .conv import Conv2d
from .norm import BatchNorm2d
from .ops import MaxPool2d

__all__ = [
    "SyncBatchNorm",
    "Conv",
    "SimConv",
    "ConvWrapper",
    "SimConvWrapper",
    "conv_bn",
    "RepVGGBlock",
    "RepBlock",
    "BottleRep",
    "Conv_C3",
    "BepC3",
    "SimSPPF",
    "SPPF",
    "SimCSPSPPF",
    "CSPSPPF",
    "get_block",
]


class SyncBatchNorm(BatchNorm2d):
    """Stands for upstream ``norm_cfg=dict(type='SyncBN')`` (mmcv ``build_norm_layer``).

    On one process it is a plain BatchNorm; it exists as its own type because upstream
    ``initialize_weights`` only retunes modules whose type *is* ``nn.BatchNorm2d``
    (eps=1e-3, momentum=0.03): SyncBN layers keep torch's defaults (eps=1e-5,
    momentum=0.1).  ``reparameterize`` turns them into plain ``nn.BatchNorm2d`` as
    upstream ``switch_tool._convert_batchnorm`` does.
    """


def _pair(v):
    return v if isinstance(v, (tuple, list)) else (v, v)


class _ConvBNAct(nn.Module):
    """Conv2d -> BatchNorm2d -> ``ACT``: the shared body of upstream's Conv and SimConv."""

    ACT = nn.Identity

    def __init__(
        self, in_channels, out_channels, kernel_size, stride, groups=1, bias=False, padding=None
    ):
        super().__init__()
        if padding is None:
            padding = kernel_size // 2
        self.conv = Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            groups=groups,
            bias=bias,
        )
        self.bn = BatchNorm2d(out_channels)
        self.act = self.ACT()

    def execute(self, x):
        return self.act(self.bn(self.conv(x)))


class Conv(_ConvBNAct):
    """Conv2d -> BatchNorm2d -> SiLU."""

    ACT = nn.SiLU


class SimConv(_ConvBNAct):
    """Conv2d -> BatchNorm2d -> ReLU."""

    ACT = nn.ReLU


@BLOCKS.register("conv_silu")
class ConvWrapper(nn.Module):
    """``Conv`` (3x3, conv bias=True) behind a ``block`` attribute (training_mode='conv_silu')."""

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, groups=1, bias=True):
        super().__init__()
        self.block = Conv(in_channels, out_channels, kernel_size, stride, groups, bias)

    def execute(self, x):
        return self.block(x)


@BLOCKS.register("conv_relu")
class SimConvWrapper(nn.Module):
    """``SimConv`` behind a ``block`` attribute (training_mode='conv_relu')."""

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, groups=1, bias=True):
        super().__init__()
        self.block = SimConv(in_channels, out_channels, kernel_size, stride, groups, bias)

    def execute(self, x):
        return self.block(x)


def conv_bn(in_channels, out_channels, kernel_size, stride, padding, groups=1, bias=False):
    """``Sequential(conv=Conv2d, bn=BatchNorm2d)``: one RepVGG branch."""
    result = nn.Sequential()
    result.add_module(
        "conv",
        Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            groups=groups,
            bias=bias,
        ),
    )
    result.add_module("bn", BatchNorm2d(out_channels))
    return result


def _fuse_bn(kernel: np.ndarray, bn) -> tuple:
    """Fold an (eval-mode) BatchNorm into a preceding bias-free conv kernel (numpy)."""
    std = np.sqrt(bn.running_var.numpy() + bn.eps)
    gamma, beta = bn.weight.numpy(), bn.bias.numpy()
    t = (gamma / std).reshape(-1, 1, 1, 1)
    return kernel * t, beta - bn.running_mean.numpy() * gamma / std


@BLOCKS.register("repvgg")
class RepVGGBlock(nn.Module):
    """RepVGG block: ReLU(BN(conv3x3) + BN(conv1x1) + BN(x)); one 3x3 conv after
    :meth:`switch_to_deploy`.  (N, C_in, H, W) -> (N, C_out, H/stride, W/stride).

    The identity branch (a bare BatchNorm) exists only when C_in == C_out and stride == 1.
    """

    def __init__(
        self,
        in_channels,
        out_channels,
        kernel_size=3,
        stride=1,
        padding=1,
        dilation=1,
        groups=1,
        padding_mode="zeros",
        deploy=False,
        use_se=False,
    ):
        super().__init__()
        assert kernel_size == 3 and padding == 1
        if use_se:
            raise NotImplementedError("se block not supported yet")
        self.deploy = deploy
        self.groups = groups
        self.in_channels = in_channels
        self.out_channels = out_channels
        padding_11 = padding - kernel_size // 2
        self.nonlinearity = nn.ReLU()
        self.se = nn.Identity()
        if deploy:
            self.rbr_reparam = Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride=stride,
                padding=padding,
                dilation=dilation,
                groups=groups,
                bias=True,
            )
        else:
            self.rbr_identity = (
                BatchNorm2d(in_channels) if out_channels == in_channels and stride == 1 else None
            )
            self.rbr_dense = conv_bn(
                in_channels, out_channels, kernel_size, stride, padding, groups
            )
            self.rbr_1x1 = conv_bn(in_channels, out_channels, 1, stride, padding_11, groups)

    def execute(self, inputs):
        if hasattr(self, "rbr_reparam"):
            return self.nonlinearity(self.se(self.rbr_reparam(inputs)))
        out = self.rbr_dense(inputs) + self.rbr_1x1(inputs)
        if self.rbr_identity is not None:
            out = out + self.rbr_identity(inputs)
        return self.nonlinearity(self.se(out))

    def get_equivalent_kernel_bias(self):
        """(kernel (C_out, C_in/g, 3, 3), bias (C_out,)) as numpy, from the running stats."""
        k3, b3 = _fuse_bn(self.rbr_dense.conv.weight.numpy(), self.rbr_dense.bn)
        k1, b1 = _fuse_bn(self.rbr_1x1.conv.weight.numpy(), self.rbr_1x1.bn)
        kernel = k3 + np.pad(k1, ((0, 0), (0, 0), (1, 1), (1, 1)))
        bias = b3 + b1
        if self.rbr_identity is not None:
            input_dim = self.in_channels // self.groups
            kid = np.zeros((self.in_channels, input_dim, 3, 3), dtype=np.float32)
            for i in range(self.in_channels):
                kid[i, i % input_dim, 1, 1] = 1.0
            ki, bi = _fuse_bn(kid, self.rbr_identity)
            kernel, bias = kernel + ki, bias + bi
        return kernel.astype(np.float32), bias.astype(np.float32)

    def switch_to_deploy(self):
        """Fuse the three branches into ``rbr_reparam`` (a 3x3 conv with bias). Idempotent."""
        if hasattr(self, "rbr_reparam"):
            return
        kernel, bias = self.get_equivalent_kernel_bias()
        dense = self.rbr_dense.conv
        conv = Conv2d(
            dense.in_channels,
            dense.out_channels,
            dense.kernel_size,
            stride=dense.stride,
            padding=dense.padding,
            dilation=dense.dilation,
            groups=dense.groups,
            bias=True,
        )
        conv.weight.assign(jt.array(kernel))
        conv.bias.assign(jt.array(bias))
        self.rbr_reparam = conv
        for name in ("rbr_dense", "rbr_1x1", "rbr_identity"):
            if name in self.__dict__:
                delattr(self, name)
        self.deploy = True


class BottleRep(nn.Module):
    """Two basic blocks with an (optionally learnable-scale ``alpha``) residual."""

    def __init__(self, in_channels, out_channels, basic_block=RepVGGBlock, weight=False):
        super().__init__()
        self.conv1 = basic_block(in_channels, out_channels)
        self.conv2 = basic_block(out_channels, out_channels)
        self.shortcut = in_channels == out_channels
        # alpha: a (1,) parameter when weight=True, else the python float 1.0 (no Var)
        self.alpha = jt.ones(1) if weight else 1.0

    def execute(self, x):
        outputs = self.conv2(self.conv1(x))
        return outputs + self.alpha * x if self.shortcut else outputs


class RepBlock(nn.Module):
    """A stage of ``n`` blocks: ``conv1`` then ``block`` (Sequential of n-1, or None).

    With ``block=BottleRep`` it holds n//2 BottleReps (each of two ``basic_block``).
    """

    def __init__(self, in_channels, out_channels, n=1, block=RepVGGBlock, basic_block=RepVGGBlock):
        super().__init__()
        if block is BottleRep:
            self.conv1 = BottleRep(in_channels, out_channels, basic_block=basic_block, weight=True)
            n = n // 2
            self.block = (
                nn.Sequential(
                    *[
                        BottleRep(out_channels, out_channels, basic_block=basic_block, weight=True)
                        for _ in range(n - 1)
                    ]
                )
                if n > 1
                else None
            )
        else:
            self.conv1 = block(in_channels, out_channels)
            self.block = (
                nn.Sequential(*[block(out_channels, out_channels) for _ in range(n - 1)])
                if n > 1
                else None
            )

    def execute(self, x):
        x = self.conv1(x)
        if self.block is not None:
            x = self.block(x)
        return x


class Conv_C3(nn.Module):
    """Conv2d(bias=False) -> BN -> act (ReLU by default; SiLU for conv_silu)."""

    def __init__(self, c1, c2, k=1, s=1, p=None, g=1, act=True):
        super().__init__()
        if p is None:
            p = k // 2
        self.conv = Conv2d(c1, c2, k, stride=s, padding=p, groups=g, bias=False)
        self.bn = BatchNorm2d(c2)
        self.act = (
            nn.ReLU() if act is True else (act if isinstance(act, nn.Module) else nn.Identity())
        )

    def execute(self, x):
        return self.act(self.bn(self.conv(x)))


class BepC3(nn.Module):
    """Beer-mug RepC3: cv3(cat(m(cv1(x)), cv2(x))), hidden width int(out * e)."""

    def __init__(self, in_channels, out_channels, n=1, e=0.5, concat=True, block=RepVGGBlock):
        super().__init__()
        c_ = int(out_channels * e)
        silu = block is ConvWrapper  # conv_silu mode: SiLU cells instead of ReLU

        def act():
            return nn.SiLU() if silu else True

        self.cv1 = Conv_C3(in_channels, c_, 1, 1, act=act())
        self.cv2 = Conv_C3(in_channels, c_, 1, 1, act=act())
        self.cv3 = Conv_C3(2 * c_, out_channels, 1, 1, act=act())
        self.m = RepBlock(c_, c_, n=n, block=BottleRep, basic_block=block)
        self.concat = concat
        if not concat:
            self.cv3 = Conv_C3(c_, out_channels, 1, 1)

    def execute(self, x):
        if self.concat:
            return self.cv3(jt.concat([self.m(self.cv1(x)), self.cv2(x)], dim=1))
        return self.cv3(self.m(self.cv1(x)))


class _SPPFBase(nn.Module):
    def _pool3(self, x):
        y1 = self.m(x)
        y2 = self.m(y1)
        return y1, y2, self.m(y2)


class SimSPPF(_SPPFBase):
    """Simplified SPPF with ReLU: cv2(cat(x, m(x), m(m(x)), m(m(m(x)))))."""

    def __init__(self, in_channels, out_channels, kernel_size=5):
        super().__init__()
        c_ = in_channels // 2
        self.cv1 = SimConv(in_channels, c_, 1, 1)
        self.cv2 = SimConv(c_ * 4, out_channels, 1, 1)
        self.m = MaxPool2d(kernel_size, stride=1, padding=kernel_size // 2)

    def execute(self, x):
        x = self.cv1(x)
        return self.cv2(jt.concat([x, *self._pool3(x)], dim=1))


class SPPF(SimSPPF):
    """SPPF with SiLU (``Conv``) cells."""

    def __init__(self, in_channels, out_channels, kernel_size=5):
        _SPPFBase.__init__(self)
        c_ = in_channels // 2
        self.cv1 = Conv(in_channels, c_, 1, 1)
        self.cv2 = Conv(c_ * 4, out_channels, 1, 1)
        self.m = MaxPool2d(kernel_size, stride=1, padding=kernel_size // 2)


class SimCSPSPPF(_SPPFBase):
    """CSP-SPPF with ReLU cells; hidden width int(out * e)."""

    cell = SimConv

    def __init__(self, in_channels, out_channels, kernel_size=5, e=0.5):
        super().__init__()
        c_ = int(out_channels * e)
        C = self.cell
        self.cv1 = C(in_channels, c_, 1, 1)
        self.cv2 = C(in_channels, c_, 1, 1)
        self.cv3 = C(c_, c_, 3, 1)
        self.cv4 = C(c_, c_, 1, 1)
        self.m = MaxPool2d(kernel_size, stride=1, padding=kernel_size // 2)
        self.cv5 = C(4 * c_, c_, 1, 1)
        self.cv6 = C(c_, c_, 3, 1)
        self.cv7 = C(2 * c_, out_channels, 1, 1)

    def execute(self, x):
        x1 = self.cv4(self.cv3(self.cv1(x)))
        y0 = self.cv2(x)
        y3 = self.cv6(self.cv5(jt.concat([x1, *self._pool3(x1)], dim=1)))
        return self.cv7(jt.concat([y0, y3], dim=1))


class CSPSPPF(SimCSPSPPF):
    """CSP-SPPF with SiLU (``Conv``) cells."""

    cell = Conv


def get_block(mode: str):
    """The basic block class of a ``training_mode`` (upstream ``get_block``)."""
    try:
        return BLOCKS.get(mode)
    except KeyError:
        raise NotImplementedError(f"Undefined Repblock choice for mode {mode}") from None
