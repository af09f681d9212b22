"""Typed configs of the four Gold-YOLO variants (n, s, m, l), as dataclasses.

Wang et al., "Gold-YOLO: Efficient Object Detector via Gather-and-Distribute Mechanism",
NeurIPS 2023.  Upstream: huawei-noah/Efficient-Computing, ``Detection/Gold-YOLO/configs/
gold_yolo-{n,s,m,l}.py`` (python files of nested dicts, loaded with ``exec``).  The values
below are copied from those files; the structure is timm style (a registry of factories
returning dataclasses), so nothing is ever ``eval``-ed.

    cfg = get_config("gold_yolo_s")
    cfg.head.reg_max, cfg.head.use_dfl, cfg.head.iou_type, cfg.solver.lr0
    cfg.model.head.reg_max          # the upstream spelling works too (``cfg.model is cfg``)

``training_mode`` defaults to ``'repvgg'`` as in upstream ``tools/train.py`` (only the l
config sets it, to ``'conv_silu'``).
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field

from .registry import CONFIGS

__all__ = [
    "BackboneConfig",
    "NeckExtraConfig",
    "NeckConfig",
    "HeadConfig",
    "SolverConfig",
    "DataAugConfig",
    "GoldYOLOConfig",
    "get_config",
    "CONFIG_NAMES",
    "make_divisible",
]


def make_divisible(x: float, divisor: int) -> int:
    """Round ``x`` up to a multiple of ``divisor`` (upstream ``yolo.make_divisible``)."""
    return math.ceil(x / divisor) * divisor


@dataclass
class BackboneConfig:
    type: str = "EfficientRep"  # 'EfficientRep' | 'CSPBepBackbone'
    num_repeats: list[int] = field(default_factory=lambda: [1, 6, 12, 18, 6])
    out_channels: list[int] = field(default_factory=lambda: [64, 128, 256, 512, 1024])
    fuse_P2: bool = True
    cspsppf: bool = False  # n/s: True (CSPSPPF); m/l: unset -> SPPF
    csp_e: float | None = None  # CSPBepBackbone only


@dataclass
class NeckExtraConfig:
    """``model.neck.extra_cfg`` of upstream (the gather-distribute hyper-parameters)."""

    norm_cfg: dict = field(default_factory=lambda: dict(type="SyncBN", requires_grad=True))
    depths: int = 2  # transformer blocks in the high-level IFM
    fusion_in: int = 480  # channels of the concatenated low-level IFM
    ppa_in: int | None = None  # only in the s config (unused by the model)
    fusion_act: dict = field(default_factory=lambda: dict(type="ReLU"))
    fuse_block_num: int = 3
    embed_dim_p: int = 96  # low-GD embedding (split into trans_channels[0:2])
    embed_dim_n: int = 352  # high-GD embedding (split into trans_channels[2:4])
    key_dim: int = 8
    num_heads: int = 4
    mlp_ratios: float = 1
    attn_ratios: float = 2
    c2t_stride: int = 2
    drop_path_rate: float = 0.1
    trans_channels: list[int] = field(default_factory=lambda: [64, 32, 64, 128])
    pool_mode: str = "torch"


@dataclass
class NeckConfig:
    type: str = "RepGDNeck"  # 'RepGDNeck' | 'GDNeck' | 'GDNeck2'
    num_repeats: list[int] = field(default_factory=lambda: [12, 12, 12, 12])
    out_channels: list[int] = field(default_factory=lambda: [256, 128, 128, 256, 256, 512])
    csp_e: float | None = None  # GDNeck / GDNeck2 only
    extra_cfg: NeckExtraConfig = field(default_factory=NeckExtraConfig)


@dataclass
class HeadConfig:
    type: str = "EffiDeHead"
    in_channels: list[int] = field(default_factory=lambda: [128, 256, 512])
    num_layers: int = 3
    begin_indices: int = 24
    anchors: int = 3
    anchors_init: list[list[int]] = field(
        default_factory=lambda: [
            [10, 13, 19, 19, 33, 23],
            [30, 61, 59, 59, 59, 119],
            [116, 90, 185, 185, 373, 326],
        ]
    )
    out_indices: list[int] = field(default_factory=lambda: [17, 20, 23])
    strides: list[int] = field(default_factory=lambda: [8, 16, 32])
    atss_warmup_epoch: int = 0
    iou_type: str = "giou"
    use_dfl: bool = True
    reg_max: int = 16
    distill_weight: dict[str, float] = field(default_factory=lambda: {"class": 1.0, "dfl": 1.0})


@dataclass
class SolverConfig:
    optim: str = "SGD"
    lr_scheduler: str = "Cosine"
    lr0: float = 0.01
    lrf: float = 0.01
    momentum: float = 0.937
    weight_decay: float = 0.0005
    warmup_epochs: float = 3.0
    warmup_momentum: float = 0.8
    warmup_bias_lr: float = 0.1


@dataclass
class DataAugConfig:
    hsv_h: float = 0.015
    hsv_s: float = 0.7
    hsv_v: float = 0.4
    degrees: float = 0.0
    translate: float = 0.1
    scale: float = 0.5
    shear: float = 0.0
    flipud: float = 0.0
    fliplr: float = 0.5
    mosaic: float = 1.0
    mixup: float = 0.0


@dataclass
class GoldYOLOConfig:
    name: str = "gold_yolo_n"
    type: str = "GoldYOLO-n"
    pretrained: str | None = None
    depth_multiple: float = 0.33
    width_multiple: float = 0.25
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    neck: NeckConfig = field(default_factory=NeckConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    solver: SolverConfig = field(default_factory=SolverConfig)
    data_aug: DataAugConfig = field(default_factory=DataAugConfig)
    training_mode: str = "repvgg"  # 'repvgg' (n/s/m) | 'conv_silu' (l)
    use_checkpoint: bool = False

    # -- upstream spellings ---------------------------------------------------------------
    @property
    def model(self) -> GoldYOLOConfig:
        """Upstream nests everything under ``cfg.model``; ``cfg.model.head`` works here too."""
        return self

    @property
    def drop_path_rate(self) -> float:
        """Stochastic-depth rate of the neck transformer (``neck.extra_cfg.drop_path_rate``)."""
        return self.neck.extra_cfg.drop_path_rate

    @drop_path_rate.setter
    def drop_path_rate(self, value: float) -> None:
        self.neck.extra_cfg.drop_path_rate = float(value)

    # -- derived values (upstream ``build_network``) --------------------------------------
    @property
    def num_repeats(self) -> list[int]:
        """Backbone + neck repeats scaled by ``depth_multiple`` (9 numbers)."""
        d = self.depth_multiple
        return [
            (max(round(i * d), 1) if i > 1 else i)
            for i in (self.backbone.num_repeats + self.neck.num_repeats)
        ]

    @property
    def channels_list(self) -> list[int]:
        """Backbone + neck channels scaled by ``width_multiple`` (11 numbers)."""
        w = self.width_multiple
        return [
            make_divisible(i * w, 8) for i in (self.backbone.out_channels + self.neck.out_channels)
        ]

    def to_dict(self) -> dict:
        return asdict(self)

    def copy(self) -> GoldYOLOConfig:
        return copy.deepcopy(self)


@CONFIGS.register("gold_yolo_n")
def gold_yolo_n() -> GoldYOLOConfig:
    return GoldYOLOConfig(
        name="gold_yolo_n",
        type="GoldYOLO-n",
        depth_multiple=0.33,
        width_multiple=0.25,
        backbone=BackboneConfig(type="EfficientRep", fuse_P2=True, cspsppf=True),
        neck=NeckConfig(
            type="RepGDNeck",
            extra_cfg=NeckExtraConfig(
                depths=2,
                fusion_in=480,
                fusion_act=dict(type="ReLU"),
                fuse_block_num=3,
                embed_dim_p=96,
                embed_dim_n=352,
                key_dim=8,
                num_heads=4,
                mlp_ratios=1,
                attn_ratios=2,
                c2t_stride=2,
                drop_path_rate=0.1,
                trans_channels=[64, 32, 64, 128],
            ),
        ),
        head=HeadConfig(
            iou_type="siou", use_dfl=False, reg_max=0, distill_weight={"class": 1.0, "dfl": 1.0}
        ),
        solver=SolverConfig(lr0=0.02),
        data_aug=DataAugConfig(scale=0.5, mixup=0.0),
        training_mode="repvgg",
    )


@CONFIGS.register("gold_yolo_s")
def gold_yolo_s() -> GoldYOLOConfig:
    return GoldYOLOConfig(
        name="gold_yolo_s",
        type="GoldYOLO-s",
        depth_multiple=0.33,
        width_multiple=0.50,
        backbone=BackboneConfig(type="EfficientRep", fuse_P2=True, cspsppf=True),
        neck=NeckConfig(
            type="RepGDNeck",
            extra_cfg=NeckExtraConfig(
                depths=2,
                fusion_in=960,
                ppa_in=704,
                fusion_act=dict(type="ReLU6"),
                fuse_block_num=3,
                embed_dim_p=128,
                embed_dim_n=704,
                key_dim=8,
                num_heads=4,
                mlp_ratios=1,
                attn_ratios=2,
                c2t_stride=2,
                drop_path_rate=0.1,
                trans_channels=[128, 64, 128, 256],
            ),
        ),
        head=HeadConfig(
            iou_type="giou", use_dfl=True, reg_max=16, distill_weight={"class": 1.0, "dfl": 1.0}
        ),
        solver=SolverConfig(lr0=0.01),
        data_aug=DataAugConfig(scale=0.5, mixup=0.0),
        training_mode="repvgg",
    )


@CONFIGS.register("gold_yolo_m")
def gold_yolo_m() -> GoldYOLOConfig:
    return GoldYOLOConfig(
        name="gold_yolo_m",
        type="GoldYOLO-m",
        depth_multiple=0.60,
        width_multiple=0.75,
        backbone=BackboneConfig(
            type="CSPBepBackbone", fuse_P2=True, cspsppf=False, csp_e=float(2) / 3
        ),
        neck=NeckConfig(
            type="GDNeck",
            csp_e=float(2) / 3,
            extra_cfg=NeckExtraConfig(
                depths=2,
                fusion_in=1440,
                fusion_act=dict(type="ReLU"),
                fuse_block_num=3,
                embed_dim_p=192,
                embed_dim_n=1056,
                key_dim=8,
                num_heads=4,
                mlp_ratios=1,
                attn_ratios=2,
                c2t_stride=2,
                drop_path_rate=0.1,
                trans_channels=[192, 96, 192, 384],
            ),
        ),
        head=HeadConfig(
            iou_type="giou", use_dfl=True, reg_max=16, distill_weight={"class": 0.8, "dfl": 1.0}
        ),
        solver=SolverConfig(lr0=0.01),
        data_aug=DataAugConfig(scale=0.9, mixup=0.1),
        training_mode="repvgg",
    )


@CONFIGS.register("gold_yolo_l")
def gold_yolo_l() -> GoldYOLOConfig:
    return GoldYOLOConfig(
        name="gold_yolo_l",
        type="GoldYOLO-l",
        depth_multiple=1.0,
        width_multiple=1.0,
        backbone=BackboneConfig(
            type="CSPBepBackbone", fuse_P2=True, cspsppf=False, csp_e=float(1) / 2
        ),
        neck=NeckConfig(
            type="GDNeck2",
            csp_e=float(1) / 2,
            extra_cfg=NeckExtraConfig(
                depths=3,
                fusion_in=1920,
                fusion_act=dict(type="ReLU"),
                fuse_block_num=3,
                embed_dim_p=192,
                embed_dim_n=1408,
                key_dim=8,
                num_heads=8,
                mlp_ratios=1,
                attn_ratios=2,
                c2t_stride=2,
                drop_path_rate=0.1,
                trans_channels=[256, 128, 256, 512],
            ),
        ),
        head=HeadConfig(
            iou_type="giou", use_dfl=True, reg_max=16, distill_weight={"class": 2.0, "dfl": 1.0}
        ),
        solver=SolverConfig(lr0=0.01),
        data_aug=DataAugConfig(scale=0.9, mixup=0.1),
        training_mode="conv_silu",
    )


CONFIG_NAMES = ("gold_yolo_n", "gold_yolo_s", "gold_yolo_m", "gold_yolo_l")


def get_config(name: str) -> GoldYOLOConfig:
    """A fresh config for ``gold_yolo_n|s|m|l`` (also accepts ``n``, ``gold-yolo-s``, ...)."""
    key = name.strip().lower().replace("-", "_")
    if key in ("n", "s", "m", "l"):
        key = "gold_yolo_" + key
    return CONFIGS.get(key)()
