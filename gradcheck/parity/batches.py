"""One batch for both frameworks in ``gradcheck align``.

The home of the batch conversions: the original's batch to numpy, from numpy to what the
port's loss wants (Jittor Vars or numpy, leaf by leaf), back to torch, and to float64 for
the reference run.
"""

from __future__ import annotations

import numpy as np

from gradcheck.workload import WorkloadError


def tree_leaves(obj) -> list:
    if isinstance(obj, dict):
        return [x for v in obj.values() for x in tree_leaves(v)]
    if isinstance(obj, (list, tuple)):
        return [x for v in obj for x in tree_leaves(v)]
    return [obj]


def map_leaves(obj, fn):
    """``obj`` with ``fn`` applied to every leaf; dicts, lists, tuples and named tuples
    rebuilt as they were."""
    if isinstance(obj, dict):
        return {k: map_leaves(v, fn) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        items = [map_leaves(v, fn) for v in obj]
        return type(obj)(*items) if hasattr(obj, "_fields") else type(obj)(items)
    return fn(obj)


def _to_numpy(obj):
    if isinstance(obj, np.ndarray):
        return obj.copy()
    if hasattr(obj, "detach"):  # torch
        return obj.detach().cpu().numpy().copy()
    if hasattr(obj, "numpy") and hasattr(obj, "shape"):  # jittor
        return obj.numpy().copy()
    return obj


def to_numpy_tree(obj):
    """The batch with every tensor/Var/array leaf as a numpy array (a copy)."""
    return map_leaves(obj, _to_numpy)


def batch_for_port(batch_np, template, jt):
    """The numpy batch shaped for the port: a leaf becomes a Jittor Var where the port's own
    batch has one (or where there is no template), and stays numpy where the port keeps
    numpy."""
    if isinstance(batch_np, dict):
        t = template if isinstance(template, dict) else {}
        return {k: batch_for_port(v, t.get(k), jt) for k, v in batch_np.items()}
    if isinstance(batch_np, (list, tuple)):
        ts = (
            template
            if isinstance(template, (list, tuple)) and len(template) == len(batch_np)
            else [None] * len(batch_np)
        )
        items = [batch_for_port(v, tt, jt) for v, tt in zip(batch_np, ts)]
        return type(batch_np)(*items) if hasattr(batch_np, "_fields") else type(batch_np)(items)
    if isinstance(batch_np, np.ndarray):
        if isinstance(template, np.ndarray):
            if template.shape != batch_np.shape:
                raise WorkloadError(
                    f"the port's batch has a leaf of shape {list(template.shape)} "
                    f"where the original's has {list(batch_np.shape)}"
                )
            return batch_np.copy()
        if (
            template is not None
            and hasattr(template, "shape")
            and tuple(template.shape) != batch_np.shape
        ):
            raise WorkloadError(
                f"the port's batch has a leaf of shape {list(template.shape)} "
                f"where the original's has {list(batch_np.shape)}"
            )
        return jt.array(batch_np)
    return batch_np


def batch_to_double(batch, torch=None):
    """Every floating leaf as float64: torch tensors (given ``torch``) and numpy arrays;
    ints, bools and the rest kept."""

    def leaf(x):
        if torch is not None and isinstance(x, torch.Tensor) and x.is_floating_point():
            return x.double()
        if isinstance(x, np.ndarray) and x.dtype.kind == "f":
            return x.astype(np.float64)
        return x

    return map_leaves(batch, leaf)


def to_torch_like(batch_np, batch_o, torch):
    """The original's own batch, as torch tensors where it has them (numpy kept as numpy)."""
    if isinstance(batch_o, dict):
        return {k: to_torch_like(batch_np[k], v, torch) for k, v in batch_o.items()}
    if isinstance(batch_o, (list, tuple)):
        items = [to_torch_like(a, b, torch) for a, b in zip(batch_np, batch_o)]
        return type(batch_o)(*items) if hasattr(batch_o, "_fields") else type(batch_o)(items)
    if isinstance(batch_o, torch.Tensor):
        return torch.from_numpy(np.ascontiguousarray(batch_np))
    return batch_o
