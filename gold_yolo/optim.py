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

import numpy as np

from . import jt  # the package sets up the Jittor runtime first

__all__ = ["build_optimizer", "param_groups", "ParamGroups", "solver_hparams", "SGD"]

GROUP_NAMES = ("bn_weights", "weights", "biases")


@dataclass
class ParamGroups:
    """The three upstream groups, as (name, Var) lists, plus the parameters left out."""

    bn_weights: list = field(default_factory=list)
    weights: list = field(default_factory=list)
    biases: list = field(default_factory=list)
    # (name, Var) in model.named_parameters(), no group, BN running statistics excluded
    # (buffers in torch)
    ungrouped: list = field(default_factory=list)


def param_groups(model) -> ParamGroups:
    """Split ``model``'s parameters into upstream's groups (see the module docstring)."""
    groups = ParamGroups()
    seen = set()
    names = {id(p): n for n, p in model.named_parameters()}
    bn_types = (jt.nn.BatchNorm,)
    buffers = set()
    for mod in model.modules():
        if isinstance(mod, bn_types):
            buffers.update(
                id(getattr(mod, k)) for k in ("running_mean", "running_var") if hasattr(mod, k)
            )
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


def solver_hparams(
    cfg,
    batch_size: int = 32,
    accumulate: int | None = None,
    world_size: int = 1,
    bs_per_gpu: int = 32,
) -> dict:
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


# One CPU kernel updates a whole chunk of parameters: the same float32 expressions, in the same
# order, as ``jittor.optim.SGD.step`` (``dp = p*wd + g``; ``v = momentum*v + dp*(1 - dampening)``;
# ``p = p - (dp + momentum*v)*lr`` with Nesterov, else ``p = p - v*lr``), the hyper-parameters
# handed over as float32 as Jittor's constants are.  Inputs: ``hp`` (n, 5) then (p, g, v) per
# parameter; outputs: (p', v') per parameter.  The parameters are spread over OpenMP's threads
# as the BatchNorm kernels' channels are (``layers/norm.py``); every element is computed alone,
# so the values do not depend on the thread count.
_SGD_HEADER = ""
_SGD_SRC = """
const int n_par = (int)(_inputs.size() - 1) / 3;
const float* hp = in0_p;
int64_t total = 0;
for (int k = 0; k < n_par; k++) total += _inputs[1 + 3 * k]->num;
#pragma omp parallel for schedule(dynamic) if (total >= 65536)
for (int k = 0; k < n_par; k++) {
    const float* p = _inputs[1 + 3 * k]->ptr<float>();
    const float* g = _inputs[2 + 3 * k]->ptr<float>();
    const float* v = _inputs[3 + 3 * k]->ptr<float>();
    float* po = _outputs[2 * k]->ptr<float>();
    float* vo = _outputs[2 * k + 1]->ptr<float>();
    const float lr = hp[5 * k], mom = hp[5 * k + 1], wd = hp[5 * k + 2], damp1 = hp[5 * k + 3];
    const index_t n = _inputs[1 + 3 * k]->num;
    if (hp[5 * k + 4] != 0) {
        for (index_t i = 0; i < n; i++) {
            float dp = p[i] * wd + g[i];
            float vn = mom * v[i] + dp * damp1;
            vo[i] = vn;
            po[i] = p[i] - (dp + mom * vn) * lr;
        }
    } else {
        for (index_t i = 0; i < n; i++) {
            float dp = p[i] * wd + g[i];
            float vn = mom * v[i] + dp * damp1;
            vo[i] = vn;
            po[i] = p[i] - vn * lr;
        }
    }
}
"""
# the core op, without jt.reshape's argument parsing
_reshape = getattr(jt, "origin_reshape", jt.reshape)
# Parameters per kernel; every chunk is padded to this size and flattened, so one compiled
# kernel serves every model.  Jittor prepares a code op's source once per process at a cost
# quadratic in its Vars, even with the library cached.  On Gold-YOLO-N (bench/bench_code_inputs.py)
# the first update took 1.2 s with 128 parameters per kernel, 41 ms with 16; later updates take
# about 10 ms at any size.
_SGD_CHUNK = 16


class SGD(jt.optim.SGD):
    """``jittor.optim.SGD`` whose update runs as one fused CPU kernel per chunk of parameters
    instead of a few fused ops per parameter (on Gold-YOLO-N: 457 parameters, the update phase
    was mostly per-op overhead).  Same expressions, same float32 constants: the same values.
    Falls back to Jittor's own update on CUDA or for non-float32 parameters."""

    def step(self, loss=None, retain_graph=False):
        if jt.flags.use_cuda:
            return super().step(loss, retain_graph)
        self.pre_step(loss, retain_graph=retain_graph)
        jt.flags.node_order = 1
        items, hps = [], []
        for pg in self.param_groups:
            lr = pg.get("lr", self.lr)
            momentum = pg.get("momentum", self.momentum)
            weight_decay = pg.get("weight_decay", self.weight_decay)
            dampening = pg.get("dampening", self.dampening)
            nesterov = pg.get("nesterov", self.nesterov)
            hp = (lr, momentum, weight_decay, 1 - dampening, 1.0 if nesterov else 0.0)
            for p, g, v in zip(pg["params"], pg["grads"], pg["values"]):
                if p.is_stop_grad():
                    continue
                if p.dtype != "float32" or g.dtype != "float32" or v.dtype != "float32":
                    dp = p * weight_decay + g
                    v.update(momentum * v + dp * (1 - dampening))
                    p.update(p - (dp + momentum * v) * lr if nesterov else p - v * lr)
                    continue
                items.append((p, g, v))
                hps.append(hp)
        pad = (jt.zeros(1), jt.zeros(1), jt.zeros(1)) if len(items) % _SGD_CHUNK else ()
        for s in range(0, len(items), _SGD_CHUNK):
            chunk = items[s : s + _SGD_CHUNK]
            hp = np.zeros((_SGD_CHUNK, 5), np.float32)
            hp[: len(chunk)] = hps[s : s + _SGD_CHUNK]
            flat = [tuple(_reshape(x, (-1,)) for x in t) for t in chunk] + [pad] * (
                _SGD_CHUNK - len(chunk)
            )
            ins = [jt.array(hp)] + [x for t in flat for x in t]
            shapes = [t[k].shape for t in flat for k in (0, 2)]
            outs = jt.code(
                shapes, ["float32"] * len(shapes), ins, cpu_header=_SGD_HEADER, cpu_src=_SGD_SRC
            )
            for (p, _, v), po, vo in zip(chunk, outs[0::2], outs[1::2]):
                v.update(_reshape(vo, v.shape))
                p.update(_reshape(po, p.shape))
        self.post_step()


def build_optimizer(
    model,
    name_or_cfg="gold_yolo_s",
    batch_size: int = 32,
    accumulate: int | None = None,
    world_size: int = 1,
    bs_per_gpu: int = 32,
):
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
        raise NotImplementedError(
            f"optimizer {hp['optim']!r}: only SGD (every Gold-YOLO config) is ported"
        )
    groups = param_groups(model)
    lr, mom = hp["lr0"], hp["momentum"]
    pgs = []
    for name, decay in zip(GROUP_NAMES, (0.0, hp["weight_decay"], 0.0)):
        params = [p for _, p in getattr(groups, name)]
        pgs.append(
            {
                "params": params,
                "name": name,
                "lr": lr,
                "initial_lr": lr,
                "momentum": mom,
                "weight_decay": decay,
                "nesterov": True,
            }
        )
    if not any(pg["params"] for pg in pgs):
        raise ValueError("model has no weight/bias parameters to optimise")
    opt = SGD(pgs, lr=lr, momentum=mom, weight_decay=0.0, nesterov=True)
    opt.accumulate = hp["accumulate"]
    return opt
