"""Coverage across ranks: gradcheck under Jittor's MPI data parallelism.

``gradcheck run --nproc N`` starts OpenMPI's ``mpirun -np N`` on ``python -m gradcheck.cli
run ...`` itself (:func:`launch`); a ``gradcheck run`` that is already under ``mpirun``
(``OMPI_COMM_WORLD_SIZE`` in the environment, what ``jittor.in_mpi`` reads) runs as one rank
(:func:`run_rank`).  Every rank builds the same workload, gets its shard of the batch
(``batch(step, rank)`` if the workload's batch callable takes a rank, otherwise ``batch(step)``
or the fixed batch split along its leading dimension) and runs the ordinary probe on it, with
Jittor's own data parallelism doing the work: ``optimizer.backward`` all-reduces every
gradient with ``Var.mpi_all_reduce("mean")`` and broadcasts rank 0's parameters on its first
call.

What each rank records, per step and parameter (:class:`RankObserver`, which wraps the
optimizer's ``backward`` and ``step`` on that one instance):

* its **local reach** (the probe's graph walk, on its own loss) and its **local gradient**:
  the input of each ``mpi_all_reduce`` call Jittor makes in ``optimizer.backward``, kept with
  a ``clone()`` because Jittor then ``assign``\\ s the reduced value to the same Var;
* the **reduced gradient** Jittor hands the optimizer (``param.opt_grad(optimizer)``);
* a digest of its value after the step.

Rank 0 gathers them (with Jittor's MPI ops: no mpi4py), merges them into one
:class:`~gradcheck.report.Report` (:func:`merge`) and judges it.  Per parameter, the step
status becomes what the update used: ``missing`` if no rank reaches it, else the status of
the reduced gradient.  Findings (policy words, set as parameter flags):

* ``rank_divergent``: on some step it is locally covered (non-zero) on some ranks only: data-
  dependent control flow, what PyTorch DDP's ``find_unused_parameters`` is about;
* ``replicas_diverged``: its value differs across ranks after a step;
* ``optimizer_mismatch``: it is in the optimizer on some ranks only.  Jittor's all-reduce
  pairs gradients by position, so this run would hang or mix parameters: gradcheck then runs
  the steps with Jittor's synchronisation off (each rank local) and reports local statuses only.

Nothing here imports MPI, or Jittor, at import time: importing gradcheck never needs MPI.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np

from gradcheck.status import run_status, step_status
from gradcheck.workload import WorkloadError

FINDINGS = ("rank_divergent", "replicas_diverged", "optimizer_mismatch")
PACKAGES = "openmpi-bin libopenmpi-dev"
EXIT_FILE_ENV = "GRADCHECK_MPI_EXIT_FILE"   # set by launch(): rank 0 leaves its exit code there


class MpiUnavailable(WorkloadError):
    """``--nproc`` asked for MPI, but OpenMPI is not installed (a usage error: exit 2)."""


# ----------------------------------------------------------------------------- where we are
def mpi_world() -> Optional[tuple]:
    """(rank, world_size) when this process runs under OpenMPI's mpirun, else None.

    Read from the environment, as Jittor does (``jittor.compile_extern.inside_mpi``), so that
    it works before Jittor is imported.
    """
    size = os.environ.get("OMPI_COMM_WORLD_SIZE")
    if size is None:
        return None
    return int(os.environ.get("OMPI_COMM_WORLD_RANK", "0")), int(size)


def mpirun_command(nproc: int, argv: list, program: Optional[list] = None) -> list:
    """The ``mpirun`` command line that runs ``gradcheck <argv>`` (or ``program``) on
    ``nproc`` ranks."""
    mpirun, mpicc = shutil.which("mpirun"), shutil.which("mpicc")
    if not mpirun or not mpicc:
        what = "mpirun" if not mpirun else "mpicc (Jittor compiles its MPI ops with it)"
        raise MpiUnavailable(f"--nproc {nproc} needs OpenMPI, but {what} is not on the PATH: "
                             f"install the Debian packages {PACKAGES} "
                             f"(apt-get install -y {PACKAGES})")
    cmd = [mpirun]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-run-as-root")     # OpenMPI refuses root without it (CI containers)
    cmd += ["--oversubscribe", "-np", str(nproc)]
    if program is not None:
        return cmd + list(program) + list(argv)
    return cmd + [sys.executable, "-m", "gradcheck.cli"] + strip_nproc(argv)


def strip_nproc(argv: list) -> list:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


def launch(nproc: int, argv: list) -> int:
    """Run ``gradcheck <argv>`` under ``mpirun -np nproc``; return rank 0's exit code.

    Every rank exits 0 so that mpirun stays quiet; rank 0 leaves the real code (pass, fail,
    bad input) in a file this process reads back.  A rank that dies makes mpirun fail: that
    is an environment error (3), unless rank 0 said otherwise first.
    """
    cmd = mpirun_command(nproc, argv)
    with tempfile.TemporaryDirectory(prefix="gradcheck-mpi-") as tmp:
        exit_file = Path(tmp) / "exit"
        env = dict(os.environ, **{EXIT_FILE_ENV: str(exit_file)})
        # a rank waiting in a collective yields its core instead of spinning on it: the
        # ranks share the cores with each other (and with Jittor's compiler)
        env.setdefault("OMPI_MCA_mpi_yield_when_idle", "1")
        proc = subprocess.Popen(cmd, env=env)

        terminated = []

        def forward_term(signum, frame):   # SIGTERM to us: mpirun passes it on to the ranks
            terminated.append(signum)      # (no wait() here: the main thread is in one)
            proc.send_signal(signal.SIGTERM)

        previous = signal.signal(signal.SIGTERM, forward_term)
        try:
            rc = proc.wait()
        except KeyboardInterrupt:     # the terminal's SIGINT reached mpirun too; let it end
            proc.send_signal(signal.SIGINT)
            proc.wait()
            return 130
        finally:
            signal.signal(signal.SIGTERM, previous)
        if terminated:
            return 143
        if exit_file.is_file():
            try:
                return int(exit_file.read_text().strip())
            except ValueError:
                pass
        if rc in (2, 130, 143):
            return rc
        print(f"gradcheck: error: mpirun -np {nproc} exited with code {rc} before rank 0 "
              "reported (see the output above)", file=sys.stderr)
        return 3


def finish(code: int) -> int:
    """The exit code this rank should use: under :func:`launch`, rank 0 hands its code over
    in the exit file and every rank exits 0."""
    path = os.environ.get(EXIT_FILE_ENV)
    world = mpi_world()
    if not path or world is None:
        return code
    if world[0] == 0:
        Path(path).write_text(str(code))
    return 0


# ----------------------------------------------------------------------------- sharding
def takes_rank(fn) -> bool:
    """Does the batch callable take ``(step, rank)``?"""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params)


def _leading(obj) -> Optional[int]:
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
        raise WorkloadError("the batch has no array to split over the ranks: give the "
                            "workload a batch(step, rank) callable")
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


# ----------------------------------------------------------------------------- collectives
def allgather_json(obj, jt) -> list:
    """Every rank's ``obj`` (JSON-able), in rank order, on every rank: two integer
    ``mpi_all_reduce`` sums, each rank filling its own row."""
    rank, world = jt.rank, jt.world_size
    data = np.frombuffer(json.dumps(obj, allow_nan=True).encode("utf-8"), dtype=np.uint8)
    sizes = np.zeros(world, np.int32)
    sizes[rank] = len(data)
    sizes = jt.array(sizes).mpi_all_reduce("add").numpy()
    rows = np.zeros((world, int(sizes.max())), np.int32)
    rows[rank, :len(data)] = data
    rows = jt.array(rows).mpi_all_reduce("add").numpy()
    return [json.loads(rows[r, :sizes[r]].astype(np.uint8).tobytes().decode("utf-8"))
            for r in range(world)]


# ----------------------------------------------------------------------------- per rank
class RankObserver:
    """Wrap one optimizer's ``backward`` and ``step`` to record, per step, this rank's local
    reach, local gradients (before Jittor's all-reduce), reduced gradients and values."""

    def __init__(self, jt, model, optimizer, sync: bool, buffer_globs=()):
        from gradcheck.graph import inventory
        from gradcheck.optimizers import optimizer_params

        self.jt, self.optimizer, self.sync = jt, optimizer, sync
        params, _ = inventory(model, buffer_globs)
        self.entries = list(params)
        self.names = [e.name for e in params]
        opt_list = optimizer_params(optimizer)
        self.opt_ids = {id(v) for v in opt_list}
        # what optimizer.backward passes to jt.grad, in its order (the all-reduce order)
        self.reduce_order = [v for v in opt_list if not v.is_stop_grad()]
        self.local_status, self.reduced_status, self.digests = {}, {}, {}
        self.local_norms, self.value_norms = {}, {}
        for n in self.names:
            for d in (self.local_status, self.reduced_status, self.digests, self.local_norms,
                      self.value_norms):
                d[n] = []
        self._backward, self._step = optimizer.backward, optimizer.step
        optimizer.backward, optimizer.step = self.backward, self.step
        self._pending = None

    def backward(self, loss, retain_graph=False):
        from gradcheck.graph import analyse

        jt = self.jt
        trainable = [e for e in self.entries if not e.var.is_stop_grad()]
        reached = analyse({"loss": loss}, [e.var for e in self.entries])[0]["loss"]
        extra = [e for e in trainable if id(e.var) not in self.opt_ids]
        extra_grads = jt.grad(loss, [e.var for e in extra], retain_graph=True) if extra else []
        captured = []
        real = jt.Var.mpi_all_reduce

        def capture(var, *args, **kw):    # the local gradient, before Jittor assigns over it
            captured.append(var.clone().stop_grad())
            return real(var, *args, **kw)

        saved_in_mpi = jt.in_mpi
        jt.Var.mpi_all_reduce = capture
        if not self.sync:
            jt.in_mpi = False     # each rank's optimizer on its own: see optimizer_mismatch
        try:
            out = self._backward(loss, retain_graph)
        finally:
            jt.Var.mpi_all_reduce = real
            jt.in_mpi = saved_in_mpi
        local = {}
        if self.sync:
            if len(captured) != len(self.reduce_order):
                raise RuntimeError(f"Jittor all-reduced {len(captured)} gradients, expected "
                                   f"{len(self.reduce_order)}")
            for v, g in zip(self.reduce_order, captured):
                local[id(v)] = g
        for e, g in zip(extra, extra_grads):
            local[id(e.var)] = g
        self._pending = (reached, local)
        return out

    def step(self, loss=None, retain_graph=False):
        jt = self.jt
        if loss is not None:           # step(loss): Jittor's own order, backward then update
            self.backward(loss, retain_graph)
        reached, local = self._pending or (set(), {})
        self._pending = None
        reduced = {}
        for e in self.entries:
            if id(e.var) in self.opt_ids and not e.var.is_stop_grad():
                reduced[id(e.var)] = e.var.opt_grad(self.optimizer)
                if not self.sync:        # no all-reduce: the optimizer's gradient is local
                    local[id(e.var)] = reduced[id(e.var)]
        jt.sync(list(local.values()) + list(reduced.values()))
        local_np = {k: g.numpy() for k, g in local.items()}
        reduced_np = {k: g.numpy() for k, g in reduced.items()} if self.sync else {}
        out = self._step()
        jt.sync_all()
        for i, e in enumerate(self.entries):
            n, key = e.name, id(e.var)
            g, r = local_np.get(key), reduced_np.get(key)
            if e.var.is_stop_grad():
                ls = rs = "frozen"
            else:
                ls = "missing" if i not in reached or g is None else _status(g)
                rs = _status(r) if r is not None else None
            self.local_status[n].append(ls)
            self.reduced_status[n].append(rs)
            self.local_norms[n].append(_norm(g) if g is not None else None)
            value = np.ascontiguousarray(e.var.numpy())
            self.digests[n].append(hashlib.sha1(value.tobytes()).hexdigest()[:16])
            self.value_norms[n].append(_norm(value))
        return out

    def to_dict(self, rank: int, loss_report) -> dict:
        return {"rank": rank, "host": socket.gethostname(), "sync": self.sync,
                "params": self.names,
                "in_optimizer": [n for e, n in zip(self.entries, self.names)
                                 if id(e.var) in self.opt_ids],
                "local": self.local_status, "reduced": self.reduced_status,
                "local_grad_norms": self.local_norms, "value_norms": self.value_norms,
                "digests": self.digests,
                "steps": [{"loss": s.get("loss"), "seconds": s.get("seconds")}
                          for s in loss_report.steps]}


def _status(g: np.ndarray) -> str:
    return step_status(True, g)   # the status rules' one home; reach is decided by the caller


def _norm(a) -> float:
    with np.errstate(over="ignore", invalid="ignore"):
        return float(np.linalg.norm(np.asarray(a, dtype=np.float64).ravel()))


def check(workload, steps: int = 1, seed: Optional[int] = 0, policy=None, on_step=None):
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
            f"{PACKAGES.split()[-1]} when it is first imported)")
    rank, size = jt.rank, jt.world_size
    policy = policy or Policy()
    params, _ = inventory(workload.model, workload.buffers)
    if workload.optimizer is None:
        workload.optimizer = default_optimizer([e.var for e in params if not e.var.is_stop_grad()])
    shard(workload, rank, size)
    # before any step: do the ranks agree on the model and on the optimizer's members?
    opt_list = optimizer_params(workload.optimizer)
    opt_ids = {id(v) for v in opt_list}
    mine = {"params": [e.name for e in params],
            "in_optimizer": [e.name for e in params if id(e.var) in opt_ids],
            "optimizer_size": len(opt_list)}
    everyone = allgather_json(mine, jt)
    if any(o["params"] != everyone[0]["params"] for o in everyone):
        raise WorkloadError("the ranks build different models (parameter names differ), "
                            "so their gradients cannot be compared")
    sync = all(o["in_optimizer"] == everyone[0]["in_optimizer"]
               and o["optimizer_size"] == everyone[0]["optimizer_size"] for o in everyone)
    observer = RankObserver(jt, workload.model, workload.optimizer, sync=sync,
                            buffer_globs=workload.buffers)
    report = api.check(workload, steps=steps, seed=seed, policy=policy, on_step=on_step)
    blobs = allgather_json(observer.to_dict(rank, report), jt)
    if rank != 0:
        return None
    return merge(report, blobs, policy, zero_hint=workload.zero_hint)


def run_rank(settings, policy=None, quiet: bool = True, nproc: Optional[int] = None,
             train_mode: bool = False):
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
        runtime.seed_everything(settings.seed)   # the same seed everywhere: the same replicas
        workload = load_workload(settings.model, img_size=settings.img_size,
                                 batch_size=settings.batch_size, seed=settings.seed,
                                 data=settings.data)
        workload.train_mode = workload.train_mode or train_mode   # --train-mode
        report = check(workload, steps=settings.steps, seed=settings.seed, policy=policy)
    if report is not None:
        report.config["settings_source"] = settings.record()
    return report


# ----------------------------------------------------------------------------- merging
_ORDER = ("nonfinite", "nonzero", "zero", "missing")


def merge(report, blobs: list, policy, zero_hint=None):
    """Rank 0's report, with every parameter's step statuses taken across the ranks, the
    per-rank statuses under ``report.distributed`` and the three findings as flags."""
    from gradcheck import explain, summary

    world = len(blobs)
    sync = all(b["sync"] for b in blobs)
    members = [set(b["in_optimizer"]) for b in blobs]
    per_param = {}
    counts = {f: 0 for f in FINDINGS}
    for rec in report.params:
        n = rec.name
        local = [b["local"][n] for b in blobs]
        reduced = blobs[0]["reduced"][n]
        merged, divergent_steps, diverged_steps = [], [], []
        for s in range(len(rec.steps)):
            statuses = [loc[s] for loc in local]
            if all(x == "frozen" for x in statuses):
                merged.append("frozen")
                continue
            if "nonzero" in statuses and any(x in ("zero", "missing") for x in statuses):
                divergent_steps.append(s + 1)
            if all(x == "missing" for x in statuses):
                merged.append("missing")
            elif sync and reduced[s] is not None:
                merged.append(reduced[s])
            else:
                merged.append(next(x for x in _ORDER if x in statuses))
            if sync and len({b["digests"][n][s] for b in blobs}) > 1:
                diverged_steps.append(s + 1)
        in_opt = [n in m for m in members]
        entry = {"local": local, "reduced": reduced if sync else None, "in_optimizer": in_opt,
                 "local_grad_norms": [b["local_grad_norms"][n] for b in blobs],
                 "value_norms": [b["value_norms"][n] for b in blobs]}
        before = rec.status
        rec.steps = merged
        rec.status = run_status(merged)
        rec.first_nonzero_step = next((i + 1 for i, x in enumerate(merged) if x == "nonzero"), None)
        rec.first_nonfinite_step = next((i + 1 for i, x in enumerate(merged)
                                         if x == "nonfinite"), None)
        rec.moved_without_grad = any(u and x in ("missing", "zero", "frozen")
                                     for u, x in zip(rec.updated_steps, merged))
        rec.in_optimizer = all(in_opt)
        if rec.status != before:
            rec.cause, rec.cause_detail = explain.cause_of(rec, report, None, zero_hint)
        found = []
        if divergent_steps:
            found.append("rank_divergent")
            entry["divergent_steps"] = divergent_steps
            covered_on = [r for r in range(world)
                          if any(local[r][s - 1] == "nonzero" for s in divergent_steps)]
            rec.cause_detail = ((rec.cause_detail + "; ") if rec.cause_detail else "") + (
                f"locally covered on some ranks only (step {divergent_steps[0]}: non-zero on "
                f"rank(s) {', '.join(map(str, covered_on))}, "
                + ", ".join(f"rank {r} {local[r][divergent_steps[0] - 1]}"
                            for r in range(world) if local[r][divergent_steps[0] - 1] != "nonzero")
                + "): data-dependent control flow")
        if diverged_steps:
            found.append("replicas_diverged")
            entry["diverged_steps"] = diverged_steps
        if len(set(in_opt)) > 1:
            found.append("optimizer_mismatch")
        rec.flags = explain.health_flags(rec, policy) + found   # on the merged steps
        for f in found:
            counts[f] += 1
        per_param[n] = entry
    report.distributed = {
        "world_size": world, "launcher": "mpirun",
        "synchronized": sync,
        "note": None if sync else (
            "optimizer membership differs across ranks: Jittor's all-reduce pairs gradients "
            "by position, so this run would hang or mix parameters; gradcheck ran each rank's "
            "optimizer without Jittor's synchronisation and reports local statuses only"),
        "ranks": [{"rank": b["rank"], "host": b["host"], "optimizer_params": len(b["in_optimizer"]),
                   "steps": b["steps"]} for b in blobs],
        "findings": counts,
        "params": per_param,
    }
    report.config["nproc"] = world
    summary.finalize(report, policy)
    return report
