"""Launching an MPI run: where this process is (rank, world) and ``mpirun`` itself.

The home of ``gradcheck run --nproc N``'s launcher (:func:`launch`), of the exit code handed
from rank 0 back to it (:func:`finish`), and of the one usage error "no OpenMPI"
(:class:`MpiUnavailable`).  Reads the environment only: no MPI or Jittor at import time.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from gradcheck.workload import WorkloadError

PACKAGES = "openmpi-bin libopenmpi-dev"
EXIT_FILE_ENV = "GRADCHECK_MPI_EXIT_FILE"  # set by launch(): rank 0 leaves its exit code there


class MpiUnavailable(WorkloadError):
    """``--nproc`` asked for MPI, but OpenMPI is not installed (a usage error: exit 2)."""


def mpi_world() -> tuple | None:
    """(rank, world_size) when this process runs under OpenMPI's mpirun, else None.

    Read from the environment, as Jittor does (``jittor.compile_extern.inside_mpi``), so that
    it works before Jittor is imported.
    """
    size = os.environ.get("OMPI_COMM_WORLD_SIZE")
    if size is None:
        return None
    return int(os.environ.get("OMPI_COMM_WORLD_RANK", "0")), int(size)


def mpirun_command(nproc: int, argv: list, program: list | None = None) -> list:
    """The ``mpirun`` command line that runs ``gradcheck <argv>`` (or ``program``) on
    ``nproc`` ranks."""
    mpirun, mpicc = shutil.which("mpirun"), shutil.which("mpicc")
    if not mpirun or not mpicc:
        what = "mpirun" if not mpirun else "mpicc (Jittor compiles its MPI ops with it)"
        raise MpiUnavailable(
            f"--nproc {nproc} needs OpenMPI, but {what} is not on the PATH: "
            f"install the Debian packages {PACKAGES} "
            f"(apt-get install -y {PACKAGES})"
        )
    cmd = [mpirun]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-run-as-root")  # OpenMPI refuses root without it (CI containers)
    cmd += ["--oversubscribe", "-np", str(nproc)]
    if program is not None:
        return cmd + list(program) + list(argv)
    return cmd + [sys.executable, "-m", "gradcheck.cli"] + strip_nproc(argv)


def strip_nproc(argv: list) -> list:
    """``argv`` without gradcheck's own ``--nproc N``; a script's arguments (after ``--``)
    are left as they are."""
    out: list = []
    skip = False
    for k, arg in enumerate(argv):
        if arg == "--" and not skip:
            return out + list(argv[k:])
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

        def forward_term(signum, frame):  # SIGTERM to us: mpirun passes it on to the ranks
            terminated.append(signum)  # (no wait() here: the main thread is in one)
            proc.send_signal(signal.SIGTERM)

        previous = signal.signal(signal.SIGTERM, forward_term)
        try:
            rc = proc.wait()
        except KeyboardInterrupt:  # the terminal's SIGINT reached mpirun too; let it end
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
        print(
            f"gradcheck: error: mpirun -np {nproc} exited with code {rc} before rank 0 "
            "reported (see the output above)",
            file=sys.stderr,
        )
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
