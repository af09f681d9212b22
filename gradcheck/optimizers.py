"""What the probe reads from a Jittor optimizer: its parameters, its settings, and the list
its ``backward`` hands to ``jt.grad`` (the list a ``grads[N]`` warning indexes)."""

from __future__ import annotations


def optimizer_params(optimizer) -> list:
    out = []
    for group in getattr(optimizer, "param_groups", []):
        out.extend(group.get("params", []))
    return out


def describe_optimizer(optimizer) -> dict:
    d = {"type": type(optimizer).__name__}
    for key in ("lr", "momentum", "weight_decay", "nesterov", "dampening"):
        if hasattr(optimizer, key):
            d[key] = getattr(optimizer, key)
    groups = getattr(optimizer, "param_groups", [])
    d["groups"] = [{"params": len(g.get("params", [])),
                    **{k: g[k] for k in ("lr", "momentum", "weight_decay", "nesterov") if k in g}}
                   for g in groups]
    return d


def backward_list(optimizer) -> list:
    """The list ``optimizer.backward`` passes to ``jt.grad`` (what its ``grads[N]`` indexes):
    the group parameters that take gradients, in order, then its input Vars."""
    out = [v for v in optimizer_params(optimizer) if not v.is_stop_grad()]
    extra = getattr(optimizer, "_Optimizer__input_params", None) or []
    return out + [v for v in extra if not v.is_stop_grad()]
