"""The Gold-YOLO detector: backbone + GD neck + efficient decoupled head.

Wang et al., "Gold-YOLO: Efficient Object Detector via Gather-and-Distribute Mechanism",
NeurIPS 2023.  Upstream: ``Detection/Gold-YOLO/yolov6/models/yolo.py`` (``Model``,
``build_network``, ``build_model``) and ``yolov6/utils/torch_utils.py``
(``initialize_weights``).

    model = build_model("gold_yolo_s")          # train mode, official initialisation
    feats, cls_scores, reg_distri = model(x)     # x (B, 3, H, W), H and W multiples of 32
    #   feats: [(B, ch6, H/8, W/8), (B, ch8, H/16, W/16), (B, ch10, H/32, W/32)]
    #   cls_scores (B, A, nc) after sigmoid, reg_distri (B, A, 4*(reg_max+1)),
    #   A = (H/8*W/8 + H/16*W/16 + H/32*W/32)
    model.eval(); y = model(x)                  # (B, A, 5 + nc): cx, cy, w, h, 1, scores

Upstream ``Model.forward`` returns ``[detect_output, featmaps]`` (the neck outputs, used only
for distillation); here ``model(x)`` returns ``detect_output`` and
``model(x, return_featmaps=True)`` the upstream pair.
"""

from __future__ import annotations

import numpy as np

from . import jt  # noqa: F401 (imported to set up the Jittor runtime first)

# Jittor's own modules only after the runtime set-up above:
# isort: split
from jittor import nn

from .backbone import CSPBepBackbone, EfficientRep  # noqa: F401  (registers them)
from .configs import GoldYOLOConfig, get_config
from .head import Detect, build_effidehead_layer
from .layers.common import get_block
from .layers.norm import BatchNorm2d
from .layers.transformer import DropPath
from .neck import GDNeck, GDNeck2, RepGDNeck  # noqa: F401  (registers them)
from .registry import BACKBONES, NECKS

__all__ = ["GoldYOLO", "build_network", "build_model", "initialize_weights"]


def initialize_weights(model: nn.Module) -> None:
    """Upstream ``initialize_weights``: every module whose type *is* BatchNorm2d gets
    eps=1e-3, momentum=0.03 (SyncBN layers keep 1e-5 / 0.1).  Conv weights keep their
    default init, which in Jittor is torch's (uniform +-1/sqrt(fan_in)); activations'
    ``inplace`` has no Jittor meaning."""
    for m in model.modules():
        if type(m) is BatchNorm2d:  # ours: torch's statistics (layers/norm.py)
            m.eps = 1e-3
            m.momentum = 0.03


def build_network(cfg: GoldYOLOConfig, channels: int = 3, num_classes: int = 80):
    """(backbone, neck, detect) exactly as upstream ``build_network`` (no distill/fuse_ab)."""
    num_layers = cfg.head.num_layers
    num_repeat = cfg.num_repeats
    channels_list = cfg.channels_list
    block = get_block(cfg.training_mode)
    BACKBONE = BACKBONES.get(cfg.backbone.type)
    NECK = NECKS.get(cfg.neck.type)
    extra_cfg = cfg.neck.extra_cfg

    if "CSP" in cfg.backbone.type:
        backbone = BACKBONE(
            in_channels=channels,
            channels_list=channels_list,
            num_repeats=num_repeat,
            block=block,
            csp_e=cfg.backbone.csp_e,
            fuse_P2=cfg.backbone.fuse_P2,
            cspsppf=cfg.backbone.cspsppf,
        )
        neck = NECK(
            channels_list=channels_list,
            num_repeats=num_repeat,
            block=block,
            csp_e=cfg.neck.csp_e,
            extra_cfg=extra_cfg,
        )
    else:
        backbone = BACKBONE(
            in_channels=channels,
            channels_list=channels_list,
            num_repeats=num_repeat,
            block=block,
            fuse_P2=cfg.backbone.fuse_P2,
            cspsppf=cfg.backbone.cspsppf,
        )
        neck = NECK(
            channels_list=channels_list, num_repeats=num_repeat, block=block, extra_cfg=extra_cfg
        )

    head_layers = build_effidehead_layer(
        channels_list, 1, num_classes, reg_max=cfg.head.reg_max, num_layers=num_layers
    )
    # upstream passes no reg_max here: Detect.reg_max stays 16 (proj has 17 entries for n too)
    head = Detect(num_classes, num_layers, head_layers=head_layers, use_dfl=cfg.head.use_dfl)
    return backbone, neck, head


class GoldYOLO(nn.Module):
    """Gold-YOLO: ``backbone`` (EfficientRep / CSPBepBackbone), ``neck`` (RepGDNeck /
    GDNeck / GDNeck2), ``detect`` (EffiDeHead)."""

    def __init__(self, cfg: GoldYOLOConfig, channels: int = 3, num_classes: int = 80):
        super().__init__()
        self.backbone, self.neck, self.detect = build_network(cfg, channels, num_classes)
        self.stride = list(self.detect.stride)  # python ints, not a Var
        self.nc = num_classes
        # upstream order: detect.initialize_biases() then initialize_weights(); the generic
        # init here never touches weights, but run the head priors last anyway
        initialize_weights(self)
        self.detect.initialize_biases()
        self._cfg = cfg

    @property
    def cfg(self) -> GoldYOLOConfig:
        return self._cfg

    def execute(self, x, return_featmaps: bool = False):
        """x (B, 3, H, W) -> train: (feats, cls_scores, reg_distri); eval: (B, A, 5+nc)."""
        x = self.backbone(x)  # (c2, c3, c4, c5)
        x = self.neck(x)  # [p3, n4, n5] at strides 8, 16, 32
        featmaps = list(x)
        out = self.detect(x)
        return [out, featmaps] if return_featmaps else out

    def set_drop_path(self, rate: float | None = None) -> None:
        """Set every neck DropPath's ``drop_prob``: None -> the config's linspace schedule,
        0 -> off.  (Blocks whose scheduled rate is 0 have no DropPath, as upstream.)"""
        blocks = list(self.neck.high_IFM.transformer_blocks)
        sched = np.linspace(0, self.cfg.drop_path_rate if rate is None else rate, len(blocks))
        for blk, p in zip(blocks, sched):
            if isinstance(blk.drop_path, DropPath):
                blk.drop_path.drop_prob = float(p)


def build_model(
    name: str | GoldYOLOConfig = "gold_yolo_s", num_classes: int = 80, channels: int = 3
) -> GoldYOLO:
    """A Gold-YOLO in train mode with the official initialisation."""
    cfg = get_config(name) if isinstance(name, str) else name
    model = GoldYOLO(cfg, channels=channels, num_classes=num_classes)
    model.train()
    return model
