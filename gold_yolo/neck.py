"""Gold-YOLO necks: the gather-and-distribute (GD) mechanism.

Wang et al., "Gold-YOLO: Efficient Object Detector via Gather-and-Distribute Mechanism",
NeurIPS 2023.  Upstream: ``Detection/Gold-YOLO/gold_yolo/reppan.py`` (``RepGDNeck`` for n/s,
``GDNeck`` for m, ``GDNeck2`` for l).

Input: backbone (c2, c3, c4, c5) at strides 4, 8, 16, 32.  With ch = channels_list:

    Low-GD   low_FAM   [c2..c5] -> (B, ch1+ch2+ch3+ch4 = fusion_in, H/16, W/16)
             low_IFM   -> (B, sum(trans_channels[0:2]), H/16, W/16), split in two
             p4 = Rep_p4(Inject_p4(LAF_p4[c3, c4, reduce(c5)], global0))   (B, ch5, H/16)
             p3 = Rep_p3(Inject_p3(LAF_p3[c2, c3, reduce(p4)], global1))   (B, ch6, H/8)
    High-GD  high_FAM  [p3, p4, c5] -> (B, ch6+ch5+ch4 = embed_dim_n, H/64, W/64)
             high_IFM  transformer, conv_1x1_n -> (B, sum(trans_channels[2:4]), H/64), split
             n4 = Rep_n4(Inject_n4(cat(pool(p3), p4_half), global2))        (B, ch8, H/16)
             n5 = Rep_n5(Inject_n5(cat(pool(n4), c5_half), global3))        (B, ch10, H/32)
                  (GDNeck2 pools p4 instead of n4 for n5)

Output [p3, n4, n5] at strides 8, 16, 32.
"""

from __future__ import annotations

import numpy as np

from . import jt  # the package sets up the Jittor runtime first

# Jittor's own modules only after the runtime set-up above:
# isort: split
from jittor import nn

from .layers.common import BepC3, BottleRep, Conv, RepBlock, RepVGGBlock, SimConv
from .layers.conv import Conv2d
from .layers.gd import AdvPoolFusion, InjectionMultiSum_Auto_pool, SimFusion_3in, SimFusion_4in
from .layers.transformer import PyramidPoolAgg, TopBasicLayer
from .registry import NECKS

__all__ = ["RepGDNeck", "GDNeck", "GDNeck2"]


def _get(cfg, key, default=None):
    if isinstance(cfg, dict):
        return cfg.get(key, default)
    return getattr(cfg, key, default)


class _GDNeckBase(nn.Module):
    """Shared construction; ``stage(cin, cout, n)`` builds the Rep_* stages."""

    def _build(self, channels_list, num_repeats, block, extra_cfg, stage):
        ch, n, e = channels_list, num_repeats, extra_cfg
        g = lambda k: _get(e, k)  # noqa: E731
        norm_cfg = g("norm_cfg")
        tc = list(g("trans_channels"))

        self.low_FAM = SimFusion_4in()
        self.low_IFM = nn.Sequential(
            Conv(g("fusion_in"), g("embed_dim_p"), kernel_size=1, stride=1, padding=0),
            *[block(g("embed_dim_p"), g("embed_dim_p")) for _ in range(g("fuse_block_num"))],
            Conv(g("embed_dim_p"), sum(tc[0:2]), kernel_size=1, stride=1, padding=0),
        )

        self.reduce_layer_c5 = SimConv(ch[4], ch[5], kernel_size=1, stride=1)
        self.LAF_p4 = SimFusion_3in(in_channel_list=[ch[3], ch[3]], out_channels=ch[5])
        self.Inject_p4 = InjectionMultiSum_Auto_pool(
            ch[5], ch[5], norm_cfg=norm_cfg, activations=nn.ReLU6
        )
        self.Rep_p4 = stage(ch[5], ch[5], n[5])

        self.reduce_layer_p4 = SimConv(ch[5], ch[6], kernel_size=1, stride=1)
        self.LAF_p3 = SimFusion_3in(in_channel_list=[ch[5], ch[5]], out_channels=ch[6])
        self.Inject_p3 = InjectionMultiSum_Auto_pool(
            ch[6], ch[6], norm_cfg=norm_cfg, activations=nn.ReLU6
        )
        self.Rep_p3 = stage(ch[6], ch[6], n[6])

        self.high_FAM = PyramidPoolAgg(stride=g("c2t_stride"), pool_mode=g("pool_mode"))
        dpr = [float(x) for x in np.linspace(0, g("drop_path_rate"), g("depths"))]
        self.high_IFM = TopBasicLayer(
            block_num=g("depths"),
            embedding_dim=g("embed_dim_n"),
            key_dim=g("key_dim"),
            num_heads=g("num_heads"),
            mlp_ratio=g("mlp_ratios"),
            attn_ratio=g("attn_ratios"),
            drop=0,
            attn_drop=0,
            drop_path=dpr,
            norm_cfg=norm_cfg,
        )
        self.conv_1x1_n = Conv2d(g("embed_dim_n"), sum(tc[2:4]), 1, stride=1, padding=0)

        self.LAF_n4 = AdvPoolFusion()
        self.Inject_n4 = InjectionMultiSum_Auto_pool(
            ch[8], ch[8], norm_cfg=norm_cfg, activations=nn.ReLU6
        )
        self.Rep_n4 = stage(ch[6] + ch[7], ch[8], n[7])

        self.LAF_n5 = AdvPoolFusion()
        self.Inject_n5 = InjectionMultiSum_Auto_pool(
            ch[10], ch[10], norm_cfg=norm_cfg, activations=nn.ReLU6
        )
        self.Rep_n5 = stage(ch[5] + ch[9], ch[10], n[8])

        self.trans_channels = tc

    def _n5_source(self, p4, n4):
        return n4

    def execute(self, input):
        c2, c3, c4, c5 = input

        # Low-GD: gather all four levels at stride 16, fuse with convs, distribute to p4/p3
        low_align_feat = self.low_FAM(input)
        low_fuse_feat = self.low_IFM(low_align_feat)
        low_global_info = jt.split(low_fuse_feat, self.trans_channels[0:2], dim=1)

        c5_half = self.reduce_layer_c5(c5)
        p4_adjacent_info = self.LAF_p4([c3, c4, c5_half])
        p4 = self.Inject_p4(p4_adjacent_info, low_global_info[0])
        p4 = self.Rep_p4(p4)

        p4_half = self.reduce_layer_p4(p4)
        p3_adjacent_info = self.LAF_p3([c2, c3, p4_half])
        p3 = self.Inject_p3(p3_adjacent_info, low_global_info[1])
        p3 = self.Rep_p3(p3)

        # High-GD: gather [p3, p4, c5] at stride 64, fuse with a transformer, distribute
        high_align_feat = self.high_FAM([p3, p4, c5])
        high_fuse_feat = self.high_IFM(high_align_feat)
        high_fuse_feat = self.conv_1x1_n(high_fuse_feat)
        high_global_info = jt.split(high_fuse_feat, self.trans_channels[2:4], dim=1)

        n4_adjacent_info = self.LAF_n4(p3, p4_half)
        n4 = self.Inject_n4(n4_adjacent_info, high_global_info[0])
        n4 = self.Rep_n4(n4)

        n5_adjacent_info = self.LAF_n5(self._n5_source(p4, n4), c5_half)
        n5 = self.Inject_n5(n5_adjacent_info, high_global_info[1])
        n5 = self.Rep_n5(n5)

        return [p3, n4, n5]


@NECKS.register()
class RepGDNeck(_GDNeckBase):
    """GD neck with RepBlock stages (Gold-YOLO-n/s)."""

    def __init__(self, channels_list=None, num_repeats=None, block=RepVGGBlock, extra_cfg=None):
        super().__init__()
        assert channels_list is not None and num_repeats is not None

        def stage(cin, cout, n):
            return RepBlock(in_channels=cin, out_channels=cout, n=n, block=block)

        self._build(channels_list, num_repeats, block, extra_cfg, stage)


@NECKS.register()
class GDNeck(_GDNeckBase):
    """GD neck with BepC3 (CSP) stages (Gold-YOLO-m)."""

    def __init__(
        self,
        channels_list=None,
        num_repeats=None,
        block=BottleRep,
        csp_e=float(1) / 2,
        extra_cfg=None,
    ):
        super().__init__()
        assert channels_list is not None and num_repeats is not None

        def stage(cin, cout, n):
            return BepC3(in_channels=cin, out_channels=cout, n=n, e=csp_e, block=block)

        self._build(channels_list, num_repeats, block, extra_cfg, stage)


@NECKS.register()
class GDNeck2(GDNeck):
    """GDNeck whose n5 fusion pools p4 (not n4) (Gold-YOLO-l)."""

    def _n5_source(self, p4, n4):
        return p4
