"""The Gold-YOLO training optimizer (SGD, Nesterov) with the official parameter groups.

Gold-YOLO: Wang et al., NeurIPS 2023.  Follows ``yolov6/solver/build.py``
(``build_optimizer``) and ``yolov6/core/engine.py`` (``Trainer.get_optimizer``) of
huawei-noah/Efficient-Computing, Detection/Gold-YOLO.

Groups, built by walking ``model.modules()`` exactly like upstream:

0. ``bn_weights``: the ``weight`` of every BatchNorm (upstream: ``nn.BatchNorm2d`` /
   ``nn.SyncBatchNorm``; Jittor has one BatchNorm class for 1d/2d/3d, and our
   ``SyncBatchNorm`` subclasses it): no weight decay;
1. ``weights``: the ``weight`` of every other module that has one (conv, linear): weight
   decay ``cfg.solver.weight_decay`` scaled as the engine does;
2. ``biases``: every module's ``bias`` (BN biases included): no weight decay.

Parameters that are neither a ``weight`` nor a ``bias`` attribute of a module (Gold-YOLO:
only the head's frozen ``detect.proj``) are in no group, as upstream.  Frozen parameters
that ARE module weights (``detect.proj_conv.weight``) are kept in group 1 as upstream
(torch then skips them for having no gradient); Jittor's SGD skips every ``stop_grad``
Var in ``step`` the same way, so they never move and get no momentum/decay update.

Engine scaling (``get_optimizer``): ``accumulate = max(1, round(64 / batch_size))``,
``weight_decay *= batch_size * accumulate / 64`` and
``lr0 *= batch_size / (world_size * bs_per_gpu)`` (``bs_per_gpu`` defaults to 32 as in
``tools/train.py``, so the default ``batch_size=32`` leaves lr0 unchanged).  The config
is never mutated (upstream scales ``cfg.solver`` in place).  Upstream's per-step warm-up
of lr/momentum lives in the training loop, not here; each group carries ``initial_lr``
for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from . import jt  # the package sets up the Jittor runtime first


__all__ = ["build_optimizer", "param_groups", "ParamGroups", "solver_hparams"]

GROUP_NAMES = ("bn_weights", "weights", "biases")


@dataclass
class ParamGroups:
    """The three upstream groups, as (name, Var) lists, plus the parameters left out."""
    bn_weights: List = field(default_factory=list)
    weights: List = field(default_factory=list)
    biases: List = field(default_factory=list)
    ungrouped: List = field(default_factory=list)   # (name, Var) in model.named_parameters(), no group,
    #                                                 BN running statistics excluded (buffers in torch)


def param_groups(model) -> ParamGroups:
    """Split ``model``'s parameters into upstream's groups (see the module docstring)."""
    groups = ParamGroups()
    seen = set()
    names = {id(p): n for n, p in model.named_parameters()}
    bn_types = (jt.nn.BatchNorm,)
    buffers = set()
    for mod in model.modules():
        if isinstance(mod, bn_types):
            buffers.update(id(getattr(mod, k)) for k in ("running_mean", "running_var") if hasattr(mod, k))
        bias = getattr(mod, "bias", None)
        if isinstance(bias, jt.Var):
            groups.biases.append((names.get(id(bias), "?"), bias))
            seen.add(id(bias))
        weight = getattr(mod, "weight", None)
        if isinstance(weight, jt.Var):
            target = groups.bn_weights if isinstance(mod, bn_types) else groups.weights
            target.append((names.get(id(weight), "?"), weight))
            seen.add(id(weight))
    for n, p in model.named_parameters():
        if id(p) not in seen and id(p) not in buffers:
            groups.ungrouped.append((n, p))
    return groups


def solver_hparams(cfg, batch_size: int = 32, accumulate: Optional[int] = None, world_size: int = 1,
                   bs_per_gpu: int = 32) -> dict:
    """lr0 / momentum / weight_decay after the engine's batch-size scaling."""
    solver = cfg.solver
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if accumulate is None:
        accumulate = max(1, round(64 / batch_size))
    return {
        "optim": solver.optim,
        "lr0": solver.lr0 * batch_size / (world_size * bs_per_gpu),
        "momentum": solver.momentum,
        "weight_decay": solver.weight_decay * batch_size * accumulate / 64,
        "accumulate": accumulate,
    }


def build_optimizer(model, name_or_cfg="gold_yolo_s", batch_size: int = 32, accumulate: Optional[int] = None,
                    world_size: int = 1, bs_per_gpu: int = 32):
    """``jittor.optim.SGD`` (Nesterov) with upstream's 3 groups; ``name_or_cfg`` is a variant
    name (``"gold_yolo_n"``...) or a config with ``.solver``.  Groups are, in order,
    BN weights (no decay), other weights (decay), biases (no decay); each group dict has
    ``name``, ``lr``, ``initial_lr``, ``momentum``, ``weight_decay`` and ``nesterov``.
    All three groups always exist (possibly empty) so index 2 is the biases, as the
    upstream warm-up (``warmup_bias_lr`` for ``k == 2``) expects."""
    cfg = name_or_cfg
    if isinstance(cfg, str):
        from .configs import get_config
        cfg = get_config(cfg)
    hp = solver_hparams(cfg, batch_size, accumulate, world_size, bs_per_gpu)
    if hp["optim"] != "SGD":
        # upstream also has Adam; no Gold-YOLO config uses it
        raise NotImplementedError(f"optimizer {hp['optim']!r}: only SGD (every Gold-YOLO config) is ported")
    groups = param_groups(model)
    lr, mom = hp["lr0"], hp["momentum"]
    pgs = []
    for name, decay in zip(GROUP_NAMES, (0.0, hp["weight_decay"], 0.0)):
        params = [p for _, p in getattr(groups, name)]
        pgs.append({"params": params, "name": name, "lr": lr, "initial_lr": lr, "momentum": mom,
                    "weight_decay": decay, "nesterov": True})
    if not any(pg["params"] for pg in pgs):
        raise ValueError("model has no weight/bias parameters to optimise")
    opt = jt.optim.SGD(pgs, lr=lr, momentum=mom, weight_decay=0.0, nesterov=True)
    opt.accumulate = hp["accumulate"]
    return opt
