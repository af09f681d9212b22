"""Gather-and-distribute pieces of Gold-YOLO: feature alignment (FAM) and injection.

Wang et al., "Gold-YOLO: Efficient Object Detector via Gather-and-Distribute Mechanism",
NeurIPS 2023.  Upstream: ``Detection/Gold-YOLO/gold_yolo/common.py`` (``AdvPoolFusion``,
``SimFusion_3in``, ``SimFusion_4in``) and ``gold_yolo/transformer.py``
(``InjectionMultiSum_Auto_pool``), plus mmcv's ``ConvModule`` (conv + norm, no activation).

* Low-GD:  ``SimFusion_4in`` aligns [c2, c3, c4, c5] to c4's size (avg-pool down,
  bilinear up) and concatenates; ``SimFusion_3in`` fuses three neighbours at the middle
  one's size (the "LAF" lightweight adjacent fusion).
* High-GD: ``AdvPoolFusion`` pools x1 to x2's size and concatenates.
* Inject:  ``local_embedding(x_l) * act(global_act(x_g)) + global_embedding(x_g)``, the
  global terms resized to x_l's size.
"""

from __future__ import annotations

import math

from .. import jt  # the package sets up the Jittor runtime first

# Jittor's own modules only after the runtime set-up above:
# isort: split
from jittor import nn

from .common import SimConv
from .conv import Conv2d
from .ops import adaptive_avg_pool2d, interpolate_bilinear
from .transformer import BN_CFG, build_norm_layer, h_sigmoid

__all__ = [
    "ConvModule",
    "AdvPoolFusion",
    "SimFusion_3in",
    "SimFusion_4in",
    "InjectionMultiSum_Auto_pool",
]


class ConvModule(nn.Module):
    """mmcv ``ConvModule(inp, oup, kernel_size, norm_cfg, act_cfg=None)`` as Gold-YOLO uses it.

    ``conv`` has no bias (bias='auto' with a norm); ``bn`` is the norm layer.  As in mmcv's
    ``init_weights``: conv weight ~ kaiming normal (fan_out, relu gain), norm weight 1, bias 0.
    """

    def __init__(
        self,
        in_channels,
        out_channels,
        kernel_size,
        stride=1,
        padding=0,
        norm_cfg=BN_CFG,
        act_cfg=None,
    ):
        super().__init__()
        assert act_cfg is None, "Gold-YOLO only builds ConvModule without activation"
        self.conv = Conv2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False
        )
        self.bn = build_norm_layer(norm_cfg, out_channels)
        fan_out = out_channels * kernel_size * kernel_size
        std = math.sqrt(2.0 / fan_out)
        self.conv.weight.assign(jt.init.gauss(self.conv.weight.shape, "float32", 0.0, std))
        self.bn.weight.assign(jt.ones_like(self.bn.weight))
        self.bn.bias.assign(jt.zeros_like(self.bn.bias))

    def execute(self, x):
        return self.bn(self.conv(x))


class AdvPoolFusion(nn.Module):
    """cat(adaptive_avg_pool(x1 -> size of x2), x2): (B, C1+C2, H2, W2)."""

    def execute(self, x1, x2):
        H, W = x2.shape[2], x2.shape[3]
        return jt.concat([adaptive_avg_pool2d(x1, (H, W)), x2], dim=1)


class SimFusion_3in(nn.Module):
    """LAF: cv_fuse(cat(pool(x0), cv1(x1), bilinear(x2))) at x1's size -> (B, out, H1, W1)."""

    def __init__(self, in_channel_list, out_channels):
        super().__init__()
        self.cv1 = SimConv(in_channel_list[0], out_channels, 1, 1)
        self.cv_fuse = SimConv(out_channels * 3, out_channels, 1, 1)

    def execute(self, x):
        H, W = x[1].shape[2], x[1].shape[3]
        x0 = adaptive_avg_pool2d(x[0], (H, W))
        x1 = self.cv1(x[1])
        x2 = interpolate_bilinear(x[2], (H, W))
        return self.cv_fuse(jt.concat([x0, x1, x2], dim=1))


class SimFusion_4in(nn.Module):
    """Low-FAM: [x_l, x_m, x_s, x_n] -> cat at x_s's size (B, sum C, H_s, W_s)."""

    def execute(self, x):
        x_l, x_m, x_s, x_n = x
        H, W = x_s.shape[2], x_s.shape[3]
        x_l = adaptive_avg_pool2d(x_l, (H, W))
        x_m = adaptive_avg_pool2d(x_m, (H, W))
        x_n = interpolate_bilinear(x_n, (H, W))
        return jt.concat([x_l, x_m, x_s, x_n], dim=1)


class InjectionMultiSum_Auto_pool(nn.Module):
    """Inject global info x_g (B, Cg, Hg, Wg) into local x_l (B, C, H, W) -> (B, oup, H, W).

    If H < Hg the global terms are average-pooled (and, as upstream, the gate then gets
    no h_sigmoid); otherwise they are bilinearly resized and the gate is h_sigmoid'ed.
    """

    def __init__(self, inp: int, oup: int, norm_cfg=BN_CFG, activations=None, global_inp=None):
        super().__init__()
        self.norm_cfg = norm_cfg
        if not global_inp:
            global_inp = inp
        self.local_embedding = ConvModule(inp, oup, kernel_size=1, norm_cfg=norm_cfg)
        self.global_embedding = ConvModule(global_inp, oup, kernel_size=1, norm_cfg=norm_cfg)
        self.global_act = ConvModule(global_inp, oup, kernel_size=1, norm_cfg=norm_cfg)
        self.act = h_sigmoid()

    def execute(self, x_l, x_g):
        H, W = x_l.shape[2], x_l.shape[3]
        use_pool = H < x_g.shape[2]
        local_feat = self.local_embedding(x_l)
        global_act = self.global_act(x_g)
        global_feat = self.global_embedding(x_g)
        if use_pool:
            sig_act = adaptive_avg_pool2d(global_act, (H, W))
            global_feat = adaptive_avg_pool2d(global_feat, (H, W))
        else:
            sig_act = interpolate_bilinear(self.act(global_act), (H, W))
            global_feat = interpolate_bilinear(global_feat, (H, W))
        return local_feat * sig_act + global_feat
