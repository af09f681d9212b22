"""``gradcheck run -- python train.py``: unmodified training scripts (tests/fixtures/scripts/),
each run through its own command-line arguments; each script's docstring names its source and
truth."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from fixtures import FIXTURES, ROOT
from gradcheck.cli import main

SCRIPTS = FIXTURES / "scripts"


@pytest.fixture
def run_script(tmp_path, monkeypatch):
    """``run_script(script_words, *options) -> (result, report dict or None)``: the CLI on a
    script from tests/fixtures/scripts (or a path), the JSON report read back."""
    monkeypatch.chdir(tmp_path)  # away from the project's own [gradcheck] settings
    runner = CliRunner()
    counter = iter(range(1000))

    def invoke(words, *options):
        words = list(words)
        if not Path(words[0]).is_absolute() and (SCRIPTS / words[0]).is_file():
            words[0] = str(SCRIPTS / words[0])
        out = tmp_path / f"r{next(counter)}.json"
        res = runner.invoke(
            main,
            ["run", *options, "-o", str(out), "--quiet", "--", "python", *words],
            catch_exceptions=False,
        )
        return res, (json.loads(out.read_text()) if out.exists() else None)

    return invoke


@pytest.fixture
def bad_script(tmp_path):
    """Write a small script into tmp_path; returns its path."""

    def write(name, body):
        path = tmp_path / name
        path.write_text(textwrap.dedent(body))
        return str(path)

    return write


def statuses(report) -> dict:
    return {p["name"]: p["status"] for p in report["params"]}


# ------------------------------------------------------------------ real scripts
def test_mnist_unused_head_fails_and_stops_after_n_steps(run_script):
    res, rep = run_script(["mnist_mlp.py", "--epochs", "1"], "--steps", "2")
    assert res.exit_code == 1
    st = statuses(rep)
    assert st.pop("aux.weight") == "missing" and st.pop("aux.bias") == "missing"
    assert set(st.values()) == {"covered"}
    # stopped out of the second optimizer step: the script printed after step 1 only
    assert "iter 0 loss" in res.stderr and "iter 1 loss" not in res.stderr
    assert rep["config"]["mode"] == "script" and rep["config"]["steps_made"] == 2
    assert rep["config"]["command"][-2:] == ["--epochs", "1"]
    assert len(rep["steps"]) == 2


def test_mnist_script_compares_clean_with_its_factory(run_script, tmp_path):
    res, rep = run_script(["mnist_mlp.py", "--aux"], "--steps", "2")
    assert res.exit_code == 0, res.output
    factory = CliRunner().invoke(
        main,
        [
            "run",
            "--model",
            f"{SCRIPTS / 'mnist_mlp.py'}:factory",
            "--steps",
            "2",
            "-o",
            str(tmp_path / "f.json"),
            "--quiet",
        ],
        catch_exceptions=False,
    )
    assert factory.exit_code == 0, factory.output
    script_json = sorted(tmp_path.glob("r*.json"))[-1]
    cmp = CliRunner().invoke(
        main,
        ["compare", str(tmp_path / "f.json"), str(script_json), "--quiet"],
        catch_exceptions=False,
    )
    assert cmp.exit_code == 0, cmp.output
    # and the gate sees the script without its head as a regression against the factory
    run_script(["mnist_mlp.py"], "--steps", "2")
    worse = sorted(tmp_path.glob("r*.json"))[-1]
    cmp = CliRunner().invoke(
        main, ["compare", str(tmp_path / "f.json"), str(worse), "--quiet"], catch_exceptions=False
    )
    assert cmp.exit_code == 1


def test_gan_two_optimizers_are_phases_in_step_order(run_script):
    res, rep = run_script(["gan.py"], "--steps", "2")
    assert res.exit_code == 0, res.output
    assert [p["name"] for p in rep["config"]["phases"]] == ["optimizer_G", "optimizer_D"]
    owners = {p["name"]: p["optimizers"] for p in rep["params"]}
    assert owners["generator.fc1.weight"] == ["optimizer_G"]
    assert owners["discriminator.fc2.bias"] == ["optimizer_D"]
    assert set(statuses(rep).values()) == {"covered"}
    assert all(set(s["phases"]) == {"optimizer_G", "optimizer_D"} for s in rep["steps"])


def test_gan_detached_generator_is_missing(run_script):
    res, rep = run_script(["gan.py", "--detach-g"], "--steps", "2")
    assert res.exit_code == 1
    for name, st in statuses(rep).items():
        assert st == ("missing" if name.startswith("generator.") else "covered"), name


def test_accumulation_counts_micro_batches(run_script):
    res, rep = run_script(["accumulate.py", "--accum", "3", "--skip-branch", "1"], "--steps", "2")
    assert res.exit_code == 0, res.output
    assert rep["config"]["phases"][0]["accumulate"] == 3
    assert set(statuses(rep).values()) == {"covered"}
    # the loss of a step is the mean over its micro-batches, each loss / accum
    assert len(rep["steps"]) == 2


def test_frozen_backbone_as_the_script_left_it(run_script):
    res, rep = run_script(["finetune_frozen.py"], "--steps", "2")
    st = statuses(rep)
    assert {n for n, s in st.items() if s == "frozen"} == {
        "backbone.conv.weight",
        "backbone.conv.bias",
        "backbone.bn.weight",
        "backbone.bn.bias",
    }
    assert st["head.weight"] == st["head.bias"] == "covered"
    assert res.exit_code == 0  # frozen_undeclared only warns by default


def test_staged_unfreeze_is_read_at_each_step(run_script):
    res, rep = run_script(["finetune_frozen.py", "--unfreeze-at", "2"], "--steps", "2")
    assert res.exit_code == 0, res.output
    conv = next(p for p in rep["params"] if p["name"] == "backbone.conv.weight")
    assert conv["steps"] == ["frozen", "nonzero"]


def test_requires_grad_false_is_not_a_freeze_in_jittor(run_script):
    res, rep = run_script(["finetune_frozen.py", "--freeze-with-requires-grad"], "--steps", "2")
    assert res.exit_code == 1
    assert statuses(rep)["backbone.conv.weight"] == "missing"


def test_scheduler_and_clipping_read_the_clipped_gradient(run_script):
    res, rep = run_script(["sched_clip.py", "--max-norm", "0.05"], "--steps", "3")
    assert res.exit_code == 0, res.output
    assert set(statuses(rep).values()) == {"covered"}
    for step in range(3):  # clip_grad_norm bounds the norm over all gradients together
        total = np.sqrt(sum(p["grad_norms"][step] ** 2 for p in rep["params"]))
        assert total <= 0.05 * (1 + 1e-4)


def test_dead_relu_is_zero_not_missing(run_script):
    res, rep = run_script(["sched_clip.py", "--dead-head"], "--steps", "2")
    assert res.exit_code == 1
    st = statuses(rep)
    assert st["fc1.weight"] == st["fc1.bias"] == st["fc2.weight"] == "zero"
    assert st["fc2.bias"] == "covered"


def test_two_models_get_their_script_names(run_script):
    res, rep = run_script(["two_models.py", "--unused-decoder-layer"], "--steps", "2")
    assert res.exit_code == 1
    st = statuses(rep)
    assert set(st) == {
        "encoder.fc.weight",
        "encoder.fc.bias",
        "decoder.fc.weight",
        "decoder.fc.bias",
        "decoder.extra.weight",
        "decoder.extra.bias",
    }
    assert st["decoder.extra.weight"] == "missing" and st["encoder.fc.weight"] == "covered"


# ------------------------------------------------------------------ how the script ends
def test_continue_runs_the_script_to_its_end(run_script):
    res, rep = run_script(
        ["mnist_mlp.py", "--epochs", "1", "--iters", "4"], "--steps", "2", "--continue"
    )
    assert "iter 3 loss" in res.stderr  # the script ran on, unobserved
    assert rep["config"]["script_exit"] == 0 and len(rep["steps"]) == 2


def test_script_ending_before_n_steps_is_reported_on_those(run_script):
    res, rep = run_script(["mnist_mlp.py", "--epochs", "1", "--iters", "2"], "--steps", "3")
    assert len(rep["steps"]) == 2 and rep["config"]["steps_made"] == 2
    assert any("stopped after 2 of 3" in w for w in rep["verdict"]["warnings"])


def test_script_not_found_exit_2(run_script, tmp_path):
    res, rep = run_script([str(tmp_path / "nope.py")])
    assert res.exit_code == 2 and rep is None
    assert "not found" in res.stderr and "Traceback" not in res.stderr


def test_script_raising_before_a_step_shows_its_own_traceback(run_script, bad_script):
    path = bad_script(
        "broken.py",
        """
        import jittor as jt

        def load():
            raise FileNotFoundError("data/train.txt")

        model = jt.nn.Linear(2, 2)
        load()
    """,
    )
    res, rep = run_script([path])
    assert res.exit_code == 2 and rep is None
    err = res.stderr
    assert 'broken.py", line 5, in load' in err and "FileNotFoundError" in err
    assert "gradcheck/script.py" not in err and "runpy" not in err
    assert err.strip().splitlines()[-1].startswith("gradcheck: error: the script broken.py raised")


@pytest.mark.parametrize(
    "body, words",
    [
        ("import sys\nsys.exit(3)\n", "exited with status 3"),
        (
            "import jittor as jt\nm = jt.nn.Linear(2, 2)\nprint(m(jt.ones(1, 2)).sum().item())\n",
            "without stepping a jittor optimizer",
        ),
    ],
)
def test_script_that_never_steps_exit_2(run_script, bad_script, body, words):
    res, rep = run_script([bad_script("early.py", body)])
    assert res.exit_code == 2 and rep is None
    assert words in res.stderr


def test_module_form_and_argv(run_script, tmp_path, monkeypatch):
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "train.py").write_text((SCRIPTS / "accumulate.py").read_text())
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "m.json"
    res = CliRunner().invoke(
        main,
        [
            "run",
            "--steps",
            "1",
            "-o",
            str(out),
            "--quiet",
            "--",
            "python",
            "-m",
            "mypkg.train",
            "--accum",
            "2",
        ],
        catch_exceptions=False,
    )
    assert res.exit_code == 0, res.output
    rep = json.loads(out.read_text())
    assert rep["config"]["phases"][0]["accumulate"] == 2
    assert rep["config"]["command"][:3] == ["python", "-m", "mypkg.train"]
    assert sys.argv[0] != "mypkg.train"  # the process's argv is back


def test_model_and_script_together_is_bad_input(run_script):
    res = CliRunner().invoke(main, ["run", "--model", "gold_yolo_n", "--", "python", "x.py"])
    assert res.exit_code == 2 and "does not apply to a script" in res.output


LAZY_HEAD = """
import jittor as jt
from jittor import nn

class Net(nn.Module):
    def __init__(self):
        self.body = nn.Linear(4, 8)
        self.head = None                    # made on the first forward, from the input's width

    def execute(self, x):
        h = nn.relu(self.body(x))
        if self.head is None:
            self.head = nn.Linear(h.shape[1], 1)
        return self.head(h)

model = Net()
opt = nn.SGD(model.parameters(), 0.1)   # before the head exists: it never holds it
for step in range(3):
    opt.zero_grad()                     # the loop's first optimizer call: before any forward
    loss = model(jt.ones((2, 4))).sqr().sum()
    opt.backward(loss)
    opt.step()
assert not any(p is model.head.weight for g in opt.param_groups for p in g["params"])
"""


def test_a_layer_made_in_the_first_forward_is_seen_after_a_zero_grad(run_script, bad_script):
    """The recorder starts at the loop's first optimizer call; when that is ``zero_grad()``,
    before any forward, a layer the forward makes lazily is listed still: its parameters
    reach the loss, and no optimizer holds them (the script asserts that, at its end)."""
    res, rep = run_script([bad_script("lazy_head.py", LAZY_HEAD)], "--steps", "2", "--continue")
    assert rep is not None and rep["config"]["script_exit"] == 0, res.output
    head = {p["name"]: p for p in rep["params"] if p["name"].startswith("head.")}
    assert sorted(head) == ["head.bias", "head.weight"]
    assert all(
        not p["in_optimizer"] and p["steps"] == ["nonzero", "nonzero"] for p in head.values()
    ), head
    assert rep["verdict"]["result"] == "fail"


def test_optimizer_is_restored_after_the_run(run_script):
    from gradcheck import runtime

    jt = runtime.import_jittor()
    before = dict(vars(jt.optim.Optimizer))
    run_script(["sched_clip.py"], "--steps", "1")
    assert dict(vars(jt.optim.Optimizer)) == before


# ------------------------------------------------------------------ Gold-YOLO's own train.py
@pytest.mark.slow
def test_gold_yolo_train_script_matches_the_bundled_workload(tmp_path, monkeypatch):
    """``python -m gold_yolo.train`` (warm-up off and one batch per step, as the bundled
    workload probes) under ``gradcheck run --`` against ``gradcheck run --model gold_yolo_n``
    with the same settings: the same parameters, the same per-step statuses.  n at 320 with
    batch 1 and 2 steps (s at 640 takes too long on a shared 2-core machine)."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    script = runner.invoke(
        main,
        [
            "run",
            "--steps",
            "2",
            "-o",
            "script.json",
            "--quiet",
            "--",
            "python",
            "-m",
            "gold_yolo.train",
            "--variant",
            "n",
            "--img-size",
            "320",
            "--batch-size",
            "1",
            "--no-warmup",
            "--accumulate",
            "1",
        ],
        catch_exceptions=False,
    )
    factory = runner.invoke(
        main,
        [
            "run",
            "--model",
            "gold_yolo_n",
            "--img-size",
            "320",
            "--batch-size",
            "1",
            "--steps",
            "2",
            "-o",
            "factory.json",
            "--quiet",
        ],
        catch_exceptions=False,
    )
    assert script.exit_code == factory.exit_code

    def steps_by_name(path):
        return {p["name"]: p["steps"] for p in json.loads(path.read_text())["params"]}

    a, b = steps_by_name(tmp_path / "script.json"), steps_by_name(tmp_path / "factory.json")
    assert a == b and len(a) > 400
    cmp = runner.invoke(
        main, ["compare", "factory.json", "script.json", "--quiet"], catch_exceptions=False
    )
    assert cmp.exit_code == 0, cmp.output


# ------------------------------------------------------------------ --nproc
HAVE_MPI = bool(shutil.which("mpirun") and shutil.which("mpicc"))


def test_nproc_leaves_the_script_arguments_alone():
    from gradcheck.distributed.launch import strip_nproc

    assert strip_nproc(
        ["run", "--nproc", "2", "--steps", "1", "--", "python", "t.py", "--nproc", "8"]
    ) == ["run", "--steps", "1", "--", "python", "t.py", "--nproc", "8"]


def test_nproc_script_without_mpirun_names_the_packages(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), PATH=str(Path(sys.executable).parent))
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "gradcheck",
            "run",
            "--nproc",
            "2",
            "--",
            "python",
            str(SCRIPTS / "gan.py"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if HAVE_MPI and shutil.which("mpirun", path=env["PATH"]):
        pytest.skip("OpenMPI sits next to this Python: the PATH cannot hide it")
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "openmpi-bin" in lines[0] and "Traceback" not in res.stderr


@pytest.mark.skipif(
    not HAVE_MPI,
    reason="OpenMPI not installed (apt-get install openmpi-bin libopenmpi-dev; .ci/run does)",
)
def test_nproc_script_two_ranks_same_statuses(tmp_path):
    """Jittor's own data parallelism under mpirun: the two-model script's statuses on two
    ranks equal its single-process ones (every rank trains the same data: same reach)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    for nproc, out in ((1, one), (2, two)):
        res = subprocess.run(
            [
                sys.executable,
                "-m",
                "gradcheck",
                "run",
                "--nproc",
                str(nproc),
                "--steps",
                "2",
                "-o",
                str(out),
                "--quiet",
                "--",
                "python",
                str(SCRIPTS / "two_models.py"),
                "--unused-decoder-layer",
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert res.returncode == 1, res.stderr
    a, b = json.loads(one.read_text()), json.loads(two.read_text())
    assert b["config"]["nproc"] == 2
    assert {p["name"]: p["steps"] for p in a["params"]} == {
        p["name"]: p["steps"] for p in b["params"]
    }


def test_wgan_critic_steps_form_one_cycle_per_report_step(run_script):
    res, rep = run_script(["wgan_critic.py", "--n-critic", "3"], "--steps", "2")
    assert [p["name"] for p in rep["config"]["phases"]] == ["optimizer_D", "optimizer_G"]
    st = statuses(rep)
    assert st.pop("discriminator.2.bias") == "zero"  # +mean and -mean cancel exactly
    assert set(st.values()) == {"covered"}
    assert res.exit_code == 1


def test_script_raising_after_a_step_is_reported_on_it(run_script, bad_script):
    path = bad_script(
        "crash.py",
        """
        import jittor as jt

        model = jt.nn.Linear(3, 1)
        opt = jt.nn.SGD(model.parameters(), 0.1)
        for i in range(5):
            opt.step((model(jt.ones(2, 3)) ** 2).sum())
            if i == 0:
                raise RuntimeError("disk full while saving a checkpoint")
    """,
    )
    res, rep = run_script([path], "--steps", "3")
    assert rep is not None and len(rep["steps"]) == 1
    assert rep["config"]["script_error"].startswith("RuntimeError: disk full")
    assert any("raised RuntimeError after 1 recorded step" in w for w in rep["verdict"]["warnings"])
    assert 'crash.py", line 9' in res.stderr and "gradcheck/observe.py" not in res.stderr


# ------------------------------------------------------------------ leaving
LOGGING_SCRIPT = """
import atexit, sys
import jittor as jt
from jittor import nn
path = sys.argv[1]
log = open(path, "w")                   # buffered: written out only when flushed
atexit.register(lambda: open(path + ".atexit", "w").write("ran"))
model = nn.Linear(4, 2)
opt = nn.SGD(model.parameters(), 0.1)
for step in range(10):
    opt.step(model(jt.ones((3, 4))).sqr().sum())
    log.write(f"step {step}\\n")
"""


def test_a_stopped_script_keeps_its_buffered_files_and_exit_handlers(tmp_path):
    """``gradcheck run`` skips the interpreter's slow teardown after the verdict (a quick exit),
    yet the script's buffered log is flushed and its atexit handlers run."""
    script = tmp_path / "train_log.py"
    script.write_text(LOGGING_SCRIPT)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "gradcheck",
            "run",
            "--steps",
            "2",
            "--quiet",
            "--",
            "python",
            str(script),
            str(tmp_path / "log.txt"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    # stopped inside the optimizer call of step 2: its log line was never written
    assert (tmp_path / "log.txt").read_text().splitlines() == ["step 0"]
    assert (tmp_path / "log.txt.atexit").read_text() == "ran"
