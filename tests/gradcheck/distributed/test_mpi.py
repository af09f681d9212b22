"""gradcheck across MPI ranks: the real ``mpirun -np 2`` on loopback, Jittor's own all-reduce.

The workloads are in ``fixtures/mpi_zoo.py``; ``fixtures/mpi_scenarios.py`` runs them all in
one MPI job (one Jittor start-up per rank).  Tests that need OpenMPI are skipped where
``mpirun`` is missing (``.ci/run`` installs it); the ones about a machine without MPI always
run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from fixtures import FIXTURES, ROOT
from gradcheck.cli import main
from gradcheck.distributed.launch import mpirun_command, strip_nproc
from gradcheck.distributed.merge import FINDINGS, merge
from gradcheck.distributed.shard import split_batch, takes_rank
from gradcheck.report import load_report
from gradcheck.workload import WorkloadError

HAVE_MPI = bool(shutil.which("mpirun") and shutil.which("mpicc"))
needs_mpi = pytest.mark.skipif(
    not HAVE_MPI,
    reason="OpenMPI not installed (apt-get install openmpi-bin libopenmpi-dev; .ci/run does)",
)


def _env(**extra):
    env = dict(os.environ, PYTHONPATH=str(ROOT), **extra)
    return env


@pytest.fixture(scope="module")
def scenarios(tmp_path_factory):
    out = tmp_path_factory.mktemp("mpi")
    cmd = mpirun_command(
        2, [str(out)], program=[sys.executable, str(FIXTURES / "mpi_scenarios.py")]
    )
    res = subprocess.run(
        cmd, env=_env(OMPI_MCA_mpi_yield_when_idle="1"), capture_output=True, text=True, timeout=900
    )
    assert res.returncode == 0, res.stdout + res.stderr
    return {p.stem: load_report(p) for p in out.glob("*.json")}


def _flagged(report, finding):
    return sorted(p.name for p in report.params if finding in p.flags)


# --------------------------------------------------------------------------- the findings
@needs_mpi
def test_data_dependent_branch_is_rank_divergent(scenarios):
    r = scenarios["data_branch"]
    assert _flagged(r, "rank_divergent") == ["neg.bias", "neg.weight", "pos.bias", "pos.weight"]
    d = r.distributed["params"]
    # rank 0's shard takes the positive branch, rank 1's the negative one
    assert d["pos.weight"]["local"] == [["nonzero", "nonzero"], ["missing", "missing"]]
    assert d["neg.weight"]["local"] == [["missing", "missing"], ["nonzero", "nonzero"]]
    assert d["pos.weight"]["reduced"] == ["nonzero", "nonzero"]  # Jittor's mean reaches both
    assert d["pos.weight"]["divergent_steps"] == [1, 2]
    assert r.param("pos.weight").status == "covered"
    assert "rank_divergent" not in r.param("body.weight").flags
    assert r.verdict.passed and any("rank_divergent: 4" in w for w in r.verdict.warnings)
    assert r.summary.findings["rank_divergent"] == 4


@needs_mpi
def test_optimizer_built_differently_on_one_rank(scenarios):
    r = scenarios["optimizer_by_rank"]
    assert _flagged(r, "optimizer_mismatch") == ["head.bias"]
    assert r.distributed["params"]["head.bias"]["in_optimizer"] == [True, False]
    assert r.distributed["synchronized"] is False  # Jittor's all-reduce would pair wrongly
    assert [x["optimizer_params"] for x in r.distributed["ranks"]] == [4, 3]
    assert not r.verdict.passed and any("optimizer_mismatch" in x for x in r.verdict.reasons)


@needs_mpi
def test_rank_dependent_learning_rate_diverges_replicas(scenarios):
    r = scenarios["lr_by_rank"]
    assert _flagged(r, "replicas_diverged") == ["head.bias", "head.weight"]
    assert r.distributed["params"]["head.weight"]["diverged_steps"] == [1, 2]
    norms = r.distributed["params"]["head.weight"]["value_norms"]
    assert norms[0] != norms[1]
    assert (
        r.distributed["params"]["body.weight"]["value_norms"][0]
        == r.distributed["params"]["body.weight"]["value_norms"][1]
    )
    assert not r.verdict.passed and any("replicas_diverged" in x for x in r.verdict.reasons)


@needs_mpi
def test_fully_covered_model_raises_no_alarm(scenarios):
    r = scenarios["covered"]
    assert r.verdict.passed and not r.verdict.warnings
    assert all(not p.flags for p in r.params)
    assert r.distributed["findings"] == {f: 0 for f in FINDINGS}
    assert r.distributed["world_size"] == 2 and r.config["nproc"] == 2
    for name, entry in r.distributed["params"].items():
        assert entry["local"] == [["nonzero", "nonzero"]] * 2, name
        assert "diverged_steps" not in entry
    # each rank trained on its own half of the batch: different local losses
    losses = [x["steps"][0]["loss"] for x in r.distributed["ranks"]]
    assert losses[0] != losses[1]


@needs_mpi
def test_batch_callable_taking_rank(scenarios):
    r = scenarios["rank_batch"]
    local = r.distributed["params"]["body.weight"]["local"]
    assert local == [["nonzero", "nonzero"], ["zero", "zero"]]  # rank 1's shard is zeros
    assert _flagged(r, "rank_divergent") == ["body.weight"]


# --------------------------------------------------------------------------- the command
@needs_mpi
def test_nproc_runs_mpirun_and_report_round_trips_compare(tmp_path):
    out = tmp_path / "lr.json"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "gradcheck.cli",
            "run",
            "--nproc",
            "2",
            "--model",
            str(FIXTURES / "mpi_zoo.py") + ":lr_by_rank",
            "--steps",
            "2",
            "--output",
            str(out),
            "--quiet",
        ],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert res.returncode == 1, res.stderr  # rank 0's verdict (fail), via mpirun
    assert "FAIL" in res.stdout and res.stdout.count("lr_by_rank") == 1  # rank 0 prints alone
    report = load_report(out)
    assert _flagged(report, "replicas_diverged") == ["head.bias", "head.weight"]

    runner = CliRunner()
    same = runner.invoke(main, ["compare", str(out), str(out)])
    assert same.exit_code == 0, same.output
    # a baseline without the finding: gaining it is a regression, named by parameter
    data = json.loads(out.read_text())
    for p in data["params"]:
        p["flags"] = [f for f in p["flags"] if f != "replicas_diverged"]
    before = tmp_path / "before.json"
    before.write_text(json.dumps(data))
    cmp = runner.invoke(main, ["compare", str(before), str(out), "--format", "json"])
    assert cmp.exit_code == 1
    regs = json.loads(cmp.stdout)["regressions"]
    assert sorted(c["name"] for c in regs) == ["head.bias", "head.weight"]
    assert all(c["cause"] == "replicas_diverged" for c in regs)
    ok = runner.invoke(main, ["compare", str(before), str(out), "--allow", "head.*"])
    assert ok.exit_code == 0


# --------------------------------------------------------------------------- without MPI
def _path_without_mpi(tmp_path) -> str:
    """A PATH with every tool of this machine but OpenMPI's."""
    farm = tmp_path / "bin"
    farm.mkdir()
    for d in os.environ.get("PATH", "").split(os.pathsep):
        if not os.path.isdir(d):
            continue
        for f in os.listdir(d):
            if f.startswith(("mpi", "ompi", "orte", "opal")) or (farm / f).exists():
                continue
            (farm / f).symlink_to(os.path.join(d, f))
    return str(farm)


def test_nproc_without_mpirun_names_the_packages(tmp_path):
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "gradcheck.cli",
            "run",
            "--nproc",
            "2",
            "--model",
            str(FIXTURES / "zoo.py") + ":healthy",
        ],
        cwd=tmp_path,
        env=_env(PATH=str(Path(sys.executable).parent)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "openmpi-bin" in lines[0] and "libopenmpi-dev" in lines[0]
    assert "mpirun" in lines[0] and "Traceback" not in res.stderr


def test_plain_run_works_without_mpi(tmp_path):
    path = _path_without_mpi(tmp_path)
    assert shutil.which("mpirun", path=path) is None and shutil.which("mpicc", path=path) is None
    # Jittor's compiler by the path it always has: a different cc_path string would make
    # Jittor rebuild its core in the shared cache (and exit 0 asking for a rerun)
    env = _env(PATH=path, cc_path=os.environ.get("cc_path") or shutil.which("g++") or "g++")
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "gradcheck.cli",
            "run",
            "--model",
            str(FIXTURES / "zoo.py") + ":healthy",
            "--quiet",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr
    assert "PASS" in res.stdout


# --------------------------------------------------------------------------- pieces
def test_split_batch_cuts_the_leading_dimension():
    x = np.arange(10).reshape(5, 2)
    y = np.arange(5)
    const = np.ones(3)
    parts = [split_batch((x, {"y": y, "c": const}), r, 2) for r in range(2)]
    assert parts[0][0].tolist() == x[:2].tolist() and parts[1][0].tolist() == x[2:].tolist()
    assert parts[1][1]["y"].tolist() == [2, 3, 4]
    assert parts[0][1]["c"] is const  # not the batch dimension: passed whole
    with pytest.raises(WorkloadError, match="cannot be split over 8 ranks"):
        split_batch(x, 0, 8)


def test_rank_callables_and_argv():
    assert takes_rank(lambda step, rank: None)
    assert not takes_rank(lambda step: None)
    assert strip_nproc(["run", "--nproc", "2", "-q", "--nproc=3", "--steps", "2"]) == [
        "run",
        "-q",
        "--steps",
        "2",
    ]


def test_merge_without_mpi():
    """The merge on hand-made rank records: runs where OpenMPI is missing too."""
    from gradcheck.policy import Policy
    from gradcheck.report import ParamRecord, Report

    names = ("a", "b", "c")
    report = Report(
        config={"model": "m"},
        environment={},
        params=[
            ParamRecord(
                name=n,
                shape=[1],
                numel=1,
                steps=["nonzero"] * 2,
                grad_norms=[1.0, 1.0],
                update_norms=[0.1, 0.1],
                updated_steps=[True, True],
                weight_norm=1.0,
            )
            for n in names
        ],
    )

    def blob(rank, local, digests, members):
        return {
            "rank": rank,
            "host": "h",
            "sync": True,
            "params": list(names),
            "in_optimizer": members,
            "local": local,
            "reduced": {n: ["nonzero", "nonzero"] for n in names},
            "local_grad_norms": {n: [1.0, 1.0] for n in names},
            "value_norms": {n: [1.0, 1.0] for n in names},
            "digests": digests,
            "steps": [{"loss": 1.0, "seconds": 0.1}] * 2,
        }

    same = {n: ["x", "y"] for n in names}
    r0 = blob(
        0, {"a": ["nonzero"] * 2, "b": ["nonzero"] * 2, "c": ["nonzero"] * 2}, same, ["a", "b", "c"]
    )
    r1 = blob(
        1,
        {"a": ["missing", "nonzero"], "b": ["nonzero"] * 2, "c": ["nonzero"] * 2},
        {**same, "b": ["x", "z"]},
        ["a", "b", "c"],
    )
    merged = merge(report, [r0, r1], Policy())
    assert merged.param("a").flags == ["rank_divergent"]
    assert merged.distributed["params"]["a"]["divergent_steps"] == [1]
    assert merged.param("b").flags == ["replicas_diverged"]
    assert merged.distributed["params"]["b"]["diverged_steps"] == [2]
    assert merged.param("c").flags == []
    assert merged.summary.findings == {"rank_divergent": 1, "replicas_diverged": 1}
    assert not merged.verdict.passed  # replicas_diverged fails by default


def test_merge_unsynchronised_ranks_without_mpi():
    """Ranks Jittor did not synchronise: local statuses only, no replicas_diverged; the
    rank_divergent sentence and an optimizer mismatch."""
    from gradcheck.policy import Policy
    from gradcheck.report import ParamRecord, Report

    report = Report(
        config={"model": "m"},
        environment={},
        params=[
            ParamRecord(
                name=n,
                shape=[1],
                numel=1,
                steps=["nonzero"],
                grad_norms=[1.0],
                update_norms=[0.1],
                updated_steps=[True],
                weight_norm=1.0,
            )
            for n in ("a", "b")
        ],
    )
    blobs = [
        {
            "rank": r,
            "host": "h",
            "sync": r == 0,
            "in_optimizer": members,
            "local": {"a": [first], "b": ["nonzero"]},
            "reduced": {"a": ["missing"], "b": ["missing"]},  # not used: not synchronised
            "local_grad_norms": {"a": [1.0], "b": [1.0]},
            "value_norms": {"a": [1.0], "b": [1.0]},
            "digests": {"a": [str(r)], "b": [str(r)]},
            "steps": [{"loss": 1.0, "seconds": 0.1}],
        }
        for r, first, members in ((0, "nonzero", ["a", "b"]), (1, "zero", ["a"]))
    ]
    merged = merge(report, blobs, Policy())
    dist = merged.distributed
    assert dist["synchronized"] is False and "without Jittor's synchronisation" in dist["note"]
    assert dist["params"]["a"]["reduced"] is None and merged.param("a").steps == ["nonzero"]
    assert merged.param("a").flags == ["rank_divergent"]
    assert merged.param("a").cause_detail == (
        "locally covered on some ranks only (step 1: non-zero on rank(s) 0, rank 1 zero): "
        "data-dependent control flow"
    )
    assert merged.param("b").flags == ["optimizer_mismatch"]
    assert merged.param("b").in_optimizer is False
    assert dist["findings"] == {
        "rank_divergent": 1,
        "replicas_diverged": 0,
        "optimizer_mismatch": 1,
    }
