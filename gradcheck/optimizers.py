"""What the probe reads from a Jittor optimizer: its parameters, its settings, the list its
``backward`` hands to ``jt.grad`` (the list a ``grads[N]`` warning indexes), and whether its
step's float32 arithmetic rounds an update away (:func:`rounds_away`)."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np


def optimizer_params(optimizer) -> list:
    out = []
    for group in getattr(optimizer, "param_groups", []):
        out.extend(group.get("params", []))
    return out


def describe_optimizer(optimizer) -> dict:
    d: dict[str, Any] = {"type": type(optimizer).__name__}
    for key in ("lr", "momentum", "weight_decay", "nesterov", "dampening"):
        if hasattr(optimizer, key):
            d[key] = getattr(optimizer, key)
    groups = getattr(optimizer, "param_groups", [])
    d["groups"] = [
        {
            "params": len(g.get("params", [])),
            **{k: g[k] for k in ("lr", "momentum", "weight_decay", "nesterov") if k in g},
        }
        for g in groups
    ]
    return d


def backward_list(optimizer) -> list:
    """The list ``optimizer.backward`` passes to ``jt.grad`` (what its ``grads[N]`` indexes):
    the group parameters that take gradients, in order, then its input Vars."""
    out = [v for v in optimizer_params(optimizer) if not v.is_stop_grad()]
    extra = getattr(optimizer, "_Optimizer__input_params", None) or []
    return out + [v for v in extra if not v.is_stop_grad()]


# ------------------------------------------------------------- float32 arithmetic of a step
# A non-zero gradient can leave a parameter unchanged for two reasons: the update is smaller
# than the value's float32 precision (or underflows: Jittor's kernels flush results under the
# smallest normal float32 to zero, intermediate products included), or something masked it.
# Bounds on ``lr * |grad|`` cannot tell them apart for Adam, whose update is normalised and
# whose product ``m * step_size`` underflows long before the move would: so the probe replays
# the step of the built-in optimizers from their own state, as their ``step`` computes it.
_TINY = np.float32(np.finfo(np.float32).tiny)


def _ftz(x) -> np.ndarray:
    """float32, with results under the smallest normal float32 flushed to zero (Jittor's
    kernels run with flush-to-zero)."""
    x = np.asarray(x, dtype=np.float32)
    return np.where(np.abs(x) < _TINY, np.float32(0), x).astype(np.float32)


def _unchanged(p, news) -> bool:
    """Whether every element of ``p`` keeps its value under at least one of the orders of
    evaluation in ``news`` (the compiler may reassociate a fused kernel's products)."""
    stay = np.zeros(p.shape, dtype=bool)
    for new in news:
        stay |= _ftz(new) == p
    return bool(stay.all())


def _step_plain(opt, pg, k, p, lr):
    g = _ftz(pg["grads"][k].numpy())
    return [p - _ftz(g * np.float32(lr))]


def _step_sgd(opt, pg, k, p, lr):
    momentum = pg.get("momentum", opt.momentum)
    v = _ftz(pg["values"][k].numpy())  # the momentum buffer after the step
    if pg.get("nesterov", opt.nesterov):
        g = _ftz(pg["grads"][k].numpy())
        dp = _ftz(p * np.float32(pg.get("weight_decay", opt.weight_decay)) + g)
        return [p - _ftz(_ftz(dp + _ftz(np.float32(momentum) * v)) * np.float32(lr))]
    return [p - _ftz(v * np.float32(lr))]


def _step_rmsprop(opt, pg, k, p, lr):
    g = _ftz(pg["grads"][k].numpy())
    d = _ftz(np.sqrt(pg["values"][k].numpy()) + np.float32(pg.get("eps", opt.eps)))
    lr = np.float32(lr)
    return [p - _ftz(_ftz(lr * g) / d), p - _ftz(lr * _ftz(g / d))]


def _adam_moves(m, denom, step_size):
    return [_ftz(_ftz(m * step_size) / denom), _ftz(m * _ftz(step_size / denom))]


def _step_adam(opt, pg, k, p, lr):
    n = float(opt.n_step)
    b0, b1 = pg.get("betas", opt.betas)
    m, v = _ftz(pg["m"][k].numpy()), _ftz(pg["values"][k].numpy())
    step_size = np.float32(lr * np.sqrt(1 - b1**n) / (1 - b0**n))
    denom = _ftz(np.sqrt(v) + np.float32(pg.get("eps", opt.eps)))
    return [p - move for move in _adam_moves(m, denom, step_size)]


def _step_adamw(opt, pg, k, p, lr):
    n = float(opt.n_step)
    b0, b1 = pg.get("betas", opt.betas)
    decayed = _ftz(p * np.float32(1 - lr * pg.get("weight_decay", opt.weight_decay)))
    m, v = _ftz(pg["m"][k].numpy()), _ftz(pg["values"][k].numpy())
    denom = _ftz(
        _ftz(np.sqrt(v) / np.float32(np.sqrt(1 - b1**n))) + np.float32(pg.get("eps", opt.eps))
    )
    step_size = np.float32(lr / (1 - b0**n))
    return [decayed - move for move in _adam_moves(m, denom, step_size)]


def _replays() -> dict:
    from gradcheck import runtime

    optim = runtime.import_jittor().optim
    return {
        optim.Optimizer.step: _step_plain,
        optim.SGD.step: _step_sgd,
        optim.RMSprop.step: _step_rmsprop,
        optim.Adam.step: _step_adam,
        optim.AdamW.step: _step_adamw,
    }


def rounds_away(optimizer, var) -> bool | None:
    """After ``optimizer``'s step left ``var`` unchanged: True when the step's own float32
    arithmetic, replayed from the optimizer's state, leaves every element where it was (an
    update below precision); False when it would have moved some element (the update was
    masked or skipped); None when the optimizer's step is not one of Jittor's built-in ones
    (a subclass that only inherits its ``step`` counts as built-in) or ``var`` is not in it."""
    replay = _replays().get(inspect.unwrap(type(optimizer).step))
    if replay is None or str(var.dtype) != "float32":
        return None
    for pg in getattr(optimizer, "param_groups", []):
        for k, p in enumerate(pg.get("params", [])):
            if p is var:
                value = _ftz(var.numpy())
                try:
                    return _unchanged(
                        value, replay(optimizer, pg, k, value, float(pg.get("lr", optimizer.lr)))
                    )
                except (KeyError, IndexError, AttributeError, TypeError):
                    return None  # state laid out otherwise than Jittor's own
    return None
