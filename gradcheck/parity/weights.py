"""The original's state into the port, by name, in ``gradcheck align``.

The home of :func:`copy_weights` (parameters and buffers copied through the rename rules,
shapes checked) and :func:`bn_settings` (every BatchNorm's ``eps`` and ``momentum`` compared).
"""

from __future__ import annotations

import math

import numpy as np

from gradcheck.parity.across import TORCH_ONLY_BUFFERS, NameMap, transposed


def copy_weights(port_entries: dict, original, name_map: NameMap, jt) -> dict:
    """Original parameters and buffers -> the port, by mapped name; returns what happened."""
    copied = known_torch_only = 0
    original_only: list[str] = []
    shape_mismatch: list[dict] = []
    pairs: dict[str, str] = {}   # original name -> port name
    targeted = set()
    state = list(original.named_parameters()) + list(original.named_buffers())
    for name, t in state:
        if name.rpartition(".")[2] in TORCH_ONLY_BUFFERS:
            known_torch_only += 1
            continue
        target = name_map(name)
        entry = port_entries.get(target)
        if entry is None:
            original_only.append(name)
            continue
        targeted.add(target)
        pairs[name] = target
        value = t.detach().cpu().numpy()
        if tuple(entry.var.shape) != tuple(value.shape):
            shape_mismatch.append({
                "name": target, "original_name": name, "port": list(entry.var.shape),
                "original": list(value.shape),
                "transposed": transposed(list(entry.var.shape), list(value.shape))})
            continue
        dtype = str(entry.var.dtype)      # the port keeps its own dtype (float32, int64...)
        entry.var.update(jt.array(value.astype(dtype if dtype in np.sctypeDict else value.dtype)))
        copied += 1
    return {"copied": copied, "original_only": original_only,
            "port_only": [n for n in port_entries if n not in targeted],
            "shape_mismatch": shape_mismatch, "known_torch_only": known_torch_only,
            "pairs": pairs}


def bn_settings(port_model, original, name_map: NameMap, torch) -> list:
    port_mods = dict(port_model.named_modules())
    bad = []
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
                    bad.append({"module": name_map(name), "original_module": name, "setting": attr,
                                "port": a, "original": b})
                continue
            if not math.isclose(float(a), float(b), rel_tol=1e-6):
                bad.append({"module": name_map(name), "original_module": name, "setting": attr,
                            "port": float(a), "original": float(b)})
    return bad
