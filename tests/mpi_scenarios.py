"""Run every workload of ``mpi_zoo`` data-parallel in one MPI job; rank 0 saves the reports.

    mpirun -np 2 python tests/mpi_scenarios.py OUTDIR [NAME ...]

One job for all of them, so that the tests pay for one Jittor start-up per rank, not one per
model (``tests/test_mpi.py`` runs it).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mpi_zoo
from gradcheck.distributed.rank import check
from gradcheck.policy import Policy
from gradcheck.report import save_report

NAMES = ("covered", "data_branch", "optimizer_by_rank", "lr_by_rank", "rank_batch")


def main(out: str, names) -> None:
    for name in names or NAMES:
        workload = getattr(mpi_zoo, name)()
        workload.name = name
        report = check(workload, steps=2, seed=0, policy=Policy())
        if report is not None:
            save_report(report, Path(out) / f"{name}.json")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
