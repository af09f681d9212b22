"""Deploy-time re-parameterisation of Gold-YOLO (RepVGG branch fusion).

Wang et al., "Gold-YOLO: Efficient Object Detector via Gather-and-Distribute Mechanism",
NeurIPS 2023.  Upstream: ``Detection/Gold-YOLO/gold_yolo/switch_tool.py``
(``switch_to_deploy``: SyncBN -> BatchNorm2d, gradient checkpointing off, every
``RepVGGBlock.switch_to_deploy()``) and ``yolov6/layers/common.py`` (the fusion itself).

Each RepVGGBlock's 3x3+BN, 1x1+BN and identity-BN branches fold (using the BN running
statistics, i.e. eval-mode behaviour) into one 3x3 conv with bias, ``rbr_reparam``.  The
eval-mode output is unchanged up to float rounding; training-mode output is not (batch
statistics are gone), so call it on a trained model you are about to evaluate/export.
Blocks of ``training_mode='conv_silu'`` (Gold-YOLO-l) have nothing to fuse: its deploy
parameter count equals the training one.  Calling it twice is a no-op.
"""

from __future__ import annotations

from . import jt  # noqa: F401 (imported to set up the Jittor runtime first)

# Jittor's own modules only after the runtime set-up above:
# isort: split
from jittor import nn

from .layers.common import RepVGGBlock, SyncBatchNorm
from .layers.norm import BatchNorm2d

__all__ = ["reparameterize", "switch_to_deploy", "convert_checkpoint_False", "count_parameters"]


def _children(module):
    """(container dict, key, child module) for every direct child: attributes and the
    ``layers`` dict of Sequential/ModuleList."""
    for key, value in list(vars(module).items()):
        if isinstance(value, nn.Module):
            yield vars(module), key, value
    layers = vars(module).get("layers")
    if isinstance(layers, dict):
        for key, value in list(layers.items()):
            if isinstance(value, nn.Module):
                yield layers, key, value


def _to_batchnorm(bn: SyncBatchNorm) -> BatchNorm2d:
    out = BatchNorm2d(bn.num_features, eps=bn.eps, momentum=bn.momentum, affine=bn.affine)
    # keep the very same Vars (values and requires_grad unchanged)
    out.weight, out.bias = bn.weight, bn.bias
    out.running_mean, out.running_var = bn.running_mean, bn.running_var
    out.is_train = bn.is_training()
    return out


def _convert_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every SyncBatchNorm by a plain BatchNorm2d (upstream ``_convert_batchnorm``)."""
    if isinstance(module, SyncBatchNorm):
        return _to_batchnorm(module)
    stack = [module]
    while stack:
        m = stack.pop()
        for container, key, child in _children(m):
            if isinstance(child, SyncBatchNorm):
                container[key] = _to_batchnorm(child)
            else:
                stack.append(child)
    return module


def convert_checkpoint_False(module: nn.Module) -> nn.Module:
    for layer in module.modules():
        if hasattr(layer, "use_checkpoint"):
            layer.use_checkpoint = False
        if hasattr(layer, "use_cpt"):
            layer.use_cpt = False
    return module


def switch_to_deploy(model: nn.Module) -> nn.Module:
    """Upstream ``switch_tool.switch_to_deploy``, in place; returns the model."""
    model = _convert_batchnorm(model)
    model = convert_checkpoint_False(model)
    for layer in list(model.modules()):
        if isinstance(layer, RepVGGBlock):
            layer.switch_to_deploy()
    return model


def reparameterize(model: nn.Module) -> nn.Module:
    """Fuse all RepVGG branches for deployment (in place, idempotent); returns the model."""
    return switch_to_deploy(model)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements, BatchNorm running statistics excluded."""
    total = 0
    for name, p in model.named_parameters():
        if name.endswith("running_mean") or name.endswith("running_var"):
            continue
        if trainable_only and p.is_stop_grad():
            continue
        n = 1
        for s in p.shape:
            n *= int(s)
        total += n
    return total
