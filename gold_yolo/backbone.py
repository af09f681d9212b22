"""Gold-YOLO backbones: EfficientRep (n, s) and CSPBepBackbone (m, l).

Wang et al., "Gold-YOLO: Efficient Object Detector via Gather-and-Distribute Mechanism",
NeurIPS 2023.  Upstream: ``Detection/Gold-YOLO/yolov6/models/efficientrep.py``.

Input (B, 3, H, W); output (with ``fuse_P2``) the tuple
    c2 (B, ch[1], H/4,  W/4)
    c3 (B, ch[2], H/8,  W/8)
    c4 (B, ch[3], H/16, W/16)
    c5 (B, ch[4], H/32, W/32)
where ch = the width-scaled ``channels_list``.
"""

from __future__ import annotations

from . import jt  # noqa: F401 (imported to set up the Jittor runtime first)

# Jittor's own modules only after the runtime set-up above:
# isort: split
from jittor import nn

from .layers.common import (
    CSPSPPF,
    SPPF,
    BepC3,
    ConvWrapper,
    RepBlock,
    RepVGGBlock,
    SimCSPSPPF,
    SimSPPF,
)
from .registry import BACKBONES

__all__ = ["EfficientRep", "CSPBepBackbone"]


def _merge_layer(block, cspsppf):
    if cspsppf:
        return CSPSPPF if block is ConvWrapper else SimCSPSPPF
    return SPPF if block is ConvWrapper else SimSPPF


class _Backbone(nn.Module):
    """stem + ERBlock_2..5, each (stride-2 block, ``stage_block``); an SPPF-style merge ends
    ERBlock_5.  Subclasses choose the stage block, as upstream's two backbone classes do."""

    def _build(self, in_channels, channels_list, num_repeats, block, fuse_P2, cspsppf, stage_block):
        assert channels_list is not None and num_repeats is not None
        ch, n = channels_list, num_repeats
        self.fuse_P2 = fuse_P2
        self.stem = block(in_channels=in_channels, out_channels=ch[0], kernel_size=3, stride=2)
        for i in range(1, 5):
            stage = [
                block(in_channels=ch[i - 1], out_channels=ch[i], kernel_size=3, stride=2),
                stage_block(ch[i], n[i]),
            ]
            if i == 4:
                stage.append(
                    _merge_layer(block, cspsppf)(
                        in_channels=ch[4], out_channels=ch[4], kernel_size=5
                    )
                )
            setattr(self, f"ERBlock_{i + 1}", nn.Sequential(*stage))

    def execute(self, x):
        outputs = []
        x = self.stem(x)
        x = self.ERBlock_2(x)
        if self.fuse_P2:
            outputs.append(x)
        x = self.ERBlock_3(x)
        outputs.append(x)
        x = self.ERBlock_4(x)
        outputs.append(x)
        x = self.ERBlock_5(x)
        outputs.append(x)
        return tuple(outputs)


@BACKBONES.register()
class EfficientRep(_Backbone):
    """stem + 4 ERBlocks, each (stride-2 block, RepBlock); SPPF-style merge at the end."""

    def __init__(
        self,
        in_channels=3,
        channels_list=None,
        num_repeats=None,
        block=RepVGGBlock,
        fuse_P2=False,
        cspsppf=False,
    ):
        super().__init__()
        self._build(
            in_channels,
            channels_list,
            num_repeats,
            block,
            fuse_P2,
            cspsppf,
            lambda c, n: RepBlock(in_channels=c, out_channels=c, n=n, block=block),
        )


@BACKBONES.register()
class CSPBepBackbone(_Backbone):
    """As EfficientRep with BepC3 (CSP, BottleRep pairs, expansion ``csp_e``) stages."""

    def __init__(
        self,
        in_channels=3,
        channels_list=None,
        num_repeats=None,
        block=RepVGGBlock,
        csp_e=float(1) / 2,
        fuse_P2=False,
        cspsppf=False,
    ):
        super().__init__()
        self._build(
            in_channels,
            channels_list,
            num_repeats,
            block,
            fuse_P2,
            cspsppf,
            lambda c, n: BepC3(in_channels=c, out_channels=c, n=n, e=csp_e, block=block),
        )
