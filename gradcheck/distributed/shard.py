"""Sharding: each MPI rank's part of the batch.

The home of how a workload's batch is divided over the ranks: ``batch(step, rank)`` when the
workload's callable takes a rank, otherwise the batch split along its leading dimension.
"""

from __future__ import annotations

import inspect

from gradcheck.workload import WorkloadError


def takes_rank(fn) -> bool:
    """Does the batch callable take ``(step, rank)``?"""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params)


def _leading(obj) -> int | None:
    if isinstance(obj, (list, tuple)):
        for v in obj:
            n = _leading(v)
            if n is not None:
                return n
        return None
    if isinstance(obj, dict):
        return _leading(list(obj.values()))
    shape = getattr(obj, "shape", None)
    if shape is not None and len(shape) >= 1:
        return int(shape[0])
    return None


def split_batch(batch, rank: int, world: int):
    """This rank's shard of ``batch``: every array (Var or numpy) whose leading dimension is
    the batch size (the leading dimension of the first array found) is cut into ``world``
    contiguous parts, as ``numpy.array_split`` does; everything else is passed whole."""
    size = _leading(batch)
    if size is None:
        raise WorkloadError(
            "the batch has no array to split over the ranks: give the "
            "workload a batch(step, rank) callable"
        )
    if size < world:
        raise WorkloadError(f"a batch of {size} cannot be split over {world} ranks")
    bounds = [size * i // world for i in range(world + 1)]
    lo, hi = bounds[rank], bounds[rank + 1]

    def cut(obj):
        if isinstance(obj, tuple):
            return tuple(cut(v) for v in obj)
        if isinstance(obj, list):
            return [cut(v) for v in obj]
        if isinstance(obj, dict):
            return {k: cut(v) for k, v in obj.items()}
        shape = getattr(obj, "shape", None)
        if shape is not None and len(shape) >= 1 and int(shape[0]) == size:
            return obj[lo:hi]
        return obj

    return cut(batch)


def shard(workload, rank: int, world: int) -> None:
    """Make ``workload.batch`` yield this rank's shard (in place)."""
    batch = workload.batch
    if callable(batch) and takes_rank(batch):
        workload.batch = lambda step: batch(step, rank)
    elif callable(batch):
        workload.batch = lambda step: split_batch(batch(step), rank, world)
    else:
        workload.batch = lambda step: split_batch(batch, rank, world)
