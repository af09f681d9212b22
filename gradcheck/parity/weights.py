"""The original's state into the port, by name, in ``gradcheck align``.

The home of :func:`copy_weights` (parameters and buffers copied through the rename rules,
shapes checked) and :func:`bn_settings` (every BatchNorm's ``eps`` and ``momentum`` compared).
"""

from __future__ import annotations

import math

import numpy as np

from gradcheck.parity.across import TORCH_ONLY_BUFFERS, NameMap, transposed
from gradcheck.parity.records import BNMismatch, ShapeMismatch, WeightKeys


def copy_weights(
    port_entries: dict, original, name_map: NameMap, jt
) -> tuple[WeightKeys, dict[str, str]]:
    """Original parameters and buffers -> the port, by mapped name; returns what happened
    and the pairs it made (original name -> port name)."""
    keys = WeightKeys()
    pairs: dict[str, str] = {}  # original name -> port name
    targeted = set()
    state = list(original.named_parameters()) + list(original.named_buffers())
    for name, t in state:
        if name.rpartition(".")[2] in TORCH_ONLY_BUFFERS:
            keys.known_torch_only += 1
            continue
        target = name_map(name)
        entry = port_entries.get(target)
        if entry is None:
            keys.original_only.append(name)
            continue
        targeted.add(target)
        pairs[name] = target
        value = t.detach().cpu().numpy()
        if tuple(entry.var.shape) != tuple(value.shape):
            keys.shape_mismatch.append(
                ShapeMismatch(
                    target,
                    name,
                    list(entry.var.shape),
                    list(value.shape),
                    transposed(list(entry.var.shape), list(value.shape)),
                )
            )
            continue
        dtype = str(entry.var.dtype)  # the port keeps its own dtype (float32, int64...)
        entry.var.update(jt.array(value.astype(dtype if dtype in np.sctypeDict else value.dtype)))
        keys.copied += 1
    keys.port_only = [n for n in port_entries if n not in targeted]
    return keys, pairs


def bn_settings(port_model, original, name_map: NameMap, torch) -> list[BNMismatch]:
    """Every BatchNorm's ``eps`` and ``momentum`` that differ between the two sides."""
    port_mods = dict(port_model.named_modules())
    bad: list[BNMismatch] = []
    for name, m in original.named_modules():
        if not isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            continue
        mine = port_mods.get(name_map(name))
        if mine is None or not hasattr(mine, "eps"):
            continue
        for attr in ("eps", "momentum"):
            a, b = getattr(mine, attr, None), getattr(m, attr)
            if a is None or b is None:
                if a != b:
                    bad.append(BNMismatch(name_map(name), name, attr, a, b))
                continue
            if not math.isclose(float(a), float(b), rel_tol=1e-6):
                bad.append(BNMismatch(name_map(name), name, attr, float(a), float(b)))
    return bad
