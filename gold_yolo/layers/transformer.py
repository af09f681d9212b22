"""The high-level IFM of Gold-YOLO: a TopFormer-style transformer over pooled tokens.

Wang et al., "Gold-YOLO: Efficient Object Detector via Gather-and-Distribute Mechanism",
NeurIPS 2023.  Upstream: ``Detection/Gold-YOLO/gold_yolo/transformer.py`` (itself from
hustvl/TopFormer) and ``gold_yolo/layers.py`` (``Conv2d_BN``, ``DropPath``, ``h_sigmoid``).

Everything stays in NCHW: "tokens" are the H*W positions of a (B, C, H, W) map, so the
q/k/v projections are 1x1 convs and attention is two batched matmuls per block.
"""

from __future__ import annotations

from types import MappingProxyType

from .. import jt  # the package sets up the Jittor runtime first

# Jittor's own modules only after the runtime set-up above:
# isort: split
from jittor import nn

from .common import SyncBatchNorm
from .conv import Conv2d
from .norm import BatchNorm2d
from .ops import adaptive_avg_pool2d

__all__ = [
    "Conv2d_BN",
    "drop_path",
    "DropPath",
    "h_sigmoid",
    "Mlp",
    "Attention",
    "top_Block",
    "TopBasicLayer",
    "PyramidPoolAgg",
    "onnx_adaptive_avg_pool2d",
    "build_norm_layer",
]

# The upstream signatures' norm_cfg defaults, read-only: build_norm_layer copies what it gets.
BN_CFG = MappingProxyType({"type": "BN", "requires_grad": True})
BN2D_CFG = MappingProxyType({"type": "BN2d", "requires_grad": True})


def build_norm_layer(norm_cfg, num_features):
    """mmcv ``build_norm_layer(norm_cfg, C)[1]`` for the BN types Gold-YOLO uses.

    ``SyncBN`` -> :class:`SyncBatchNorm` (torch defaults eps=1e-5, momentum=0.1, kept by
    ``initialize_weights``); ``BN``/``BN2d`` -> ``nn.BatchNorm2d``.  ``requires_grad=False``
    freezes weight and bias.
    """
    cfg = dict(norm_cfg or {"type": "BN"})
    kind = cfg.pop("type", "BN")
    requires_grad = cfg.pop("requires_grad", True)
    if kind == "SyncBN":
        layer = SyncBatchNorm(num_features, **cfg)
    elif kind in ("BN", "BN2d"):
        layer = BatchNorm2d(num_features, **cfg)
    else:
        raise NotImplementedError(f"norm type {kind!r}")
    if not requires_grad:
        layer.weight.stop_grad()
        layer.bias.stop_grad()
    return layer


class Conv2d_BN(nn.Sequential):
    """``Sequential(c=Conv2d(bias=False), bn=norm)``, BN weight initialised to bn_weight_init."""

    def __init__(
        self, a, b, ks=1, stride=1, pad=0, dilation=1, groups=1, bn_weight_init=1, norm_cfg=BN_CFG
    ):
        super().__init__()
        self.inp_channel = a
        self.out_channel = b
        self.ks = ks
        self.pad = pad
        self.stride = stride
        self.dilation = dilation
        self.groups = groups
        self.add_module(
            "c",
            Conv2d(
                a, b, ks, stride=stride, padding=pad, dilation=dilation, groups=groups, bias=False
            ),
        )
        bn = build_norm_layer(norm_cfg, b)
        bn.weight.assign(jt.full_like(bn.weight, float(bn_weight_init)))
        bn.bias.assign(jt.zeros_like(bn.bias))
        self.add_module("bn", bn)


def drop_path(x, drop_prob: float = 0.0, training: bool = False):
    """Stochastic depth per sample: zero whole samples with prob ``drop_prob``, rescale the
    rest by 1/keep.  Randomness from Jittor's RNG (``jt.set_global_seed``)."""
    if drop_prob == 0.0 or not training:
        return x
    keep_prob = 1 - drop_prob
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    random_tensor = (keep_prob + jt.rand(shape, dtype=x.dtype)).floor()  # 0/1 per sample
    return x / keep_prob * random_tensor


class DropPath(nn.Module):
    """Stochastic depth; set ``drop_prob = 0`` to turn it off."""

    def __init__(self, drop_prob=None):
        super().__init__()
        self.drop_prob = drop_prob

    def execute(self, x):
        return drop_path(x, self.drop_prob or 0.0, self.is_training())

    def extra_repr(self):
        return f"drop_prob={self.drop_prob}"


class h_sigmoid(nn.Module):
    """Hard sigmoid: ReLU6(x + 3) / 6."""

    def __init__(self, inplace=True):
        super().__init__()
        self.relu = nn.ReLU6()

    def execute(self, x):
        return self.relu(x + 3) / 6


class Mlp(nn.Module):
    """fc1 (1x1 conv+BN) -> depthwise 3x3 (bias) -> act -> fc2 (1x1 conv+BN); NCHW."""

    def __init__(
        self,
        in_features,
        hidden_features=None,
        out_features=None,
        act_layer=nn.ReLU,
        drop=0.0,
        norm_cfg=BN_CFG,
    ):
        super().__init__()
        out_features = out_features or in_features
        hidden_features = hidden_features or in_features
        self.fc1 = Conv2d_BN(in_features, hidden_features, norm_cfg=norm_cfg)
        self.dwconv = Conv2d(
            hidden_features,
            hidden_features,
            3,
            stride=1,
            padding=1,
            bias=True,
            groups=hidden_features,
        )
        self.act = act_layer()
        self.fc2 = Conv2d_BN(hidden_features, out_features, norm_cfg=norm_cfg)
        self.drop = nn.Dropout(drop) if drop > 0 else nn.Identity()

    def execute(self, x):
        x = self.drop(self.act(self.dwconv(self.fc1(x))))
        return self.drop(self.fc2(x))


class Attention(nn.Module):
    """Multi-head self-attention over the H*W positions of a (B, C, H, W) map.

    q, k: ``num_heads`` x ``key_dim``; v: ``num_heads`` x d with d = attn_ratio*key_dim.
    As upstream, the logits are NOT scaled by key_dim**-0.5 (``scale`` is kept, unused).
    """

    def __init__(self, dim, key_dim, num_heads, attn_ratio=4, activation=None, norm_cfg=BN_CFG):
        super().__init__()
        self.num_heads = num_heads
        self.scale = key_dim**-0.5
        self.key_dim = key_dim
        self.nh_kd = nh_kd = key_dim * num_heads
        self.d = int(attn_ratio * key_dim)
        self.dh = int(attn_ratio * key_dim) * num_heads
        self.attn_ratio = attn_ratio
        self.to_q = Conv2d_BN(dim, nh_kd, 1, norm_cfg=norm_cfg)
        self.to_k = Conv2d_BN(dim, nh_kd, 1, norm_cfg=norm_cfg)
        self.to_v = Conv2d_BN(dim, self.dh, 1, norm_cfg=norm_cfg)
        self.proj = nn.Sequential(
            activation(), Conv2d_BN(self.dh, dim, bn_weight_init=0, norm_cfg=norm_cfg)
        )

    def execute(self, x):
        B, C, H, W = x.shape
        N = H * W
        h = self.num_heads
        qq = self.to_q(x).reshape(B, h, self.key_dim, N).permute(0, 1, 3, 2)  # (B, h, N, kd)
        kk = self.to_k(x).reshape(B, h, self.key_dim, N)  # (B, h, kd, N)
        vv = self.to_v(x).reshape(B, h, self.d, N).permute(0, 1, 3, 2)  # (B, h, N, d)
        attn = nn.softmax(jt.matmul(qq, kk), dim=-1)  # (B, h, N, N)
        xx = jt.matmul(attn, vv)  # (B, h, N, d)
        xx = xx.permute(0, 1, 3, 2).reshape(B, self.dh, H, W)
        return self.proj(xx)  # (B, C, H, W)


class top_Block(nn.Module):
    """x + DropPath(Attention(x)); x + DropPath(Mlp(x)).  One DropPath module for both."""

    def __init__(
        self,
        dim,
        key_dim,
        num_heads,
        mlp_ratio=4.0,
        attn_ratio=2.0,
        drop=0.0,
        drop_path=0.0,
        act_layer=nn.ReLU,
        norm_cfg=BN2D_CFG,
    ):
        super().__init__()
        self.dim = dim
        self.num_heads = num_heads
        self.mlp_ratio = mlp_ratio
        self.attn = Attention(
            dim,
            key_dim=key_dim,
            num_heads=num_heads,
            attn_ratio=attn_ratio,
            activation=act_layer,
            norm_cfg=norm_cfg,
        )
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.mlp = Mlp(
            in_features=dim,
            hidden_features=int(dim * mlp_ratio),
            act_layer=act_layer,
            drop=drop,
            norm_cfg=norm_cfg,
        )

    def execute(self, x1):
        x1 = x1 + self.drop_path(self.attn(x1))
        x1 = x1 + self.drop_path(self.mlp(x1))
        return x1


class TopBasicLayer(nn.Module):
    """``block_num`` top_Blocks (ReLU6 activations); (B, C, H, W) -> (B, C, H, W)."""

    def __init__(
        self,
        block_num,
        embedding_dim,
        key_dim,
        num_heads,
        mlp_ratio=4.0,
        attn_ratio=2.0,
        drop=0.0,
        attn_drop=0.0,
        drop_path=0.0,
        norm_cfg=BN2D_CFG,
        act_layer=nn.ReLU6,
    ):
        super().__init__()
        self.block_num = block_num
        self.transformer_blocks = nn.ModuleList()
        for i in range(block_num):
            self.transformer_blocks.append(
                top_Block(
                    embedding_dim,
                    key_dim=key_dim,
                    num_heads=num_heads,
                    mlp_ratio=mlp_ratio,
                    attn_ratio=attn_ratio,
                    drop=drop,
                    drop_path=drop_path[i] if isinstance(drop_path, (list, tuple)) else drop_path,
                    norm_cfg=norm_cfg,
                    act_layer=act_layer,
                )
            )

    def execute(self, x):
        for blk in self.transformer_blocks:
            x = blk(x)
        return x


def onnx_adaptive_avg_pool2d(x, output_size):
    """Upstream ``onnx_AdaptiveAvgPool2d``: fixed-window average pool (= Jittor's own
    ``AdaptiveAvgPool2d``); used only with ``pool_mode='onnx'``."""
    return nn.AdaptiveAvgPool2d(tuple(int(s) for s in output_size))(x)


class PyramidPoolAgg(nn.Module):
    """Pool every input to the size of the last one divided by ``stride`` (ceil), concat.

    [(B, C_i, H_i, W_i)] -> (B, sum C_i, (H_last-1)//stride+1, (W_last-1)//stride+1)
    """

    def __init__(self, stride, pool_mode="onnx"):
        super().__init__()
        self.stride = stride
        self.pool_mode = pool_mode

    def execute(self, inputs):
        H, W = inputs[-1].shape[2], inputs[-1].shape[3]
        H = (H - 1) // self.stride + 1
        W = (W - 1) // self.stride + 1
        pool = adaptive_avg_pool2d if self.pool_mode == "torch" else onnx_adaptive_avg_pool2d
        return jt.concat([pool(inp, (H, W)) for inp in inputs], dim=1)
