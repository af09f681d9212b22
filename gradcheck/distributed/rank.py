"""One rank of an MPI run: shard, observe, probe, gather (:func:`check`, :func:`run_rank`).

The home of what every rank does under ``mpirun``, and of the one collective it needs
(:func:`allgather_json`, on Jittor's MPI ops: no mpi4py).  Rank 0 returns the merged report.
"""

from __future__ import annotations

import json

import numpy as np

from gradcheck.distributed.launch import PACKAGES, mpi_world
from gradcheck.distributed.merge import merge
from gradcheck.distributed.observer import RankObserver
from gradcheck.distributed.shard import shard
from gradcheck.workload import WorkloadError


def allgather_json(obj, jt) -> list:
    """Every rank's ``obj`` (JSON-able), in rank order, on every rank: two integer
    ``mpi_all_reduce`` sums, each rank filling its own row."""
    rank, world = jt.rank, jt.world_size
    data = np.frombuffer(json.dumps(obj, allow_nan=True).encode("utf-8"), dtype=np.uint8)
    sizes = np.zeros(world, np.int32)
    sizes[rank] = len(data)
    sizes = jt.array(sizes).mpi_all_reduce("add").numpy()
    rows = np.zeros((world, int(sizes.max())), np.int32)
    rows[rank, : len(data)] = data
    rows = jt.array(rows).mpi_all_reduce("add").numpy()
    return [
        json.loads(rows[r, : sizes[r]].astype(np.uint8).tobytes().decode("utf-8"))
        for r in range(world)
    ]


def check(workload, steps: int = 1, seed: int | None = 0, policy=None, on_step=None):
    """:func:`gradcheck.check` for one rank of an MPI run (every rank calls it, with its own
    copy of the same workload): shard the batch, check that the ranks agree on the model and
    the optimizer, probe with Jittor's data parallelism, gather.  Rank 0 returns the merged
    :class:`~gradcheck.report.Report`; the other ranks return None."""
    from gradcheck import api, runtime
    from gradcheck.graph import inventory
    from gradcheck.optimizers import optimizer_params
    from gradcheck.policy import Policy
    from gradcheck.workload import default_optimizer

    jt = runtime.import_jittor()
    if not jt.in_mpi:
        raise runtime.RuntimeSetupError(
            "not running under mpirun with Jittor's MPI support (Jittor needs mpicc from "
            f"{PACKAGES.split()[-1]} when it is first imported)"
        )
    rank, size = jt.rank, jt.world_size
    policy = policy or Policy()
    params, _ = inventory(workload.model, workload.buffers)
    if workload.optimizer is None:
        workload.optimizer = default_optimizer(
            [e.var for e in params if e.tracked and not e.var.is_stop_grad()]
        )
    shard(workload, rank, size)
    # before any step: do the ranks agree on the model and on the optimizer's members?
    opt_list = optimizer_params(workload.optimizer)
    opt_ids = {id(v) for v in opt_list}
    mine = {
        "params": [e.name for e in params],
        "in_optimizer": [e.name for e in params if id(e.var) in opt_ids],
        "optimizer_size": len(opt_list),
    }
    everyone = allgather_json(mine, jt)
    if any(o["params"] != everyone[0]["params"] for o in everyone):
        raise WorkloadError(
            "the ranks build different models (parameter names differ), "
            "so their gradients cannot be compared"
        )
    sync = all(
        o["in_optimizer"] == everyone[0]["in_optimizer"]
        and o["optimizer_size"] == everyone[0]["optimizer_size"]
        for o in everyone
    )
    observer = RankObserver(
        jt, workload.model, workload.optimizer, sync=sync, buffer_globs=workload.buffers
    )
    report = api.check(workload, steps=steps, seed=seed, policy=policy, on_step=on_step)
    blobs = allgather_json(observer.to_dict(rank, report), jt)
    if rank != 0:
        return None
    return merge(report, blobs, policy, zero_hint=workload.zero_hint)


def run_rank(
    settings, policy=None, quiet: bool = True, nproc: int | None = None, train_mode: bool = False
):
    """What ``gradcheck run`` does on one rank under mpirun: set up Jittor, build the
    workload, :func:`check` it.  Rank 0 returns the merged report, the others None."""
    from gradcheck import runtime
    from gradcheck.progress import compile_progress
    from gradcheck.resolve import check_spec, load_workload

    world = mpi_world()
    if world is None:
        raise RuntimeError("run_rank() outside mpirun")
    rank, size = world
    if nproc is not None and nproc != size:
        raise WorkloadError(f"--nproc {nproc}, but this mpirun started {size} ranks")
    check_spec(settings.model)
    runtime.setup(device=settings.device)
    quiet = quiet or rank != 0
    with compile_progress(quiet=quiet, status=f"gradcheck: running on {size} MPI ranks"):
        runtime.seed_everything(settings.seed)  # the same seed everywhere: the same replicas
        workload = load_workload(
            settings.model,
            img_size=settings.img_size,
            batch_size=settings.batch_size,
            seed=settings.seed,
            data=settings.data,
        )
        workload.train_mode = workload.train_mode or train_mode  # --train-mode
        report = check(workload, steps=settings.steps, seed=settings.seed, policy=policy)
    if report is not None:
        report.config["settings_source"] = settings.record()
    return report
