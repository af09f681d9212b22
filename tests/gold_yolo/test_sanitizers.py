"""Our jt.code kernels under AddressSanitizer and UndefinedBehaviorSanitizer (issue 22, item 2;
the set-up and why each piece is needed: bench/sanitize.py).  Slow: the first run compiles
every operator again, instrumented, into a cache of its own."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

from fixtures import ROOT

sys.path.insert(0, str(ROOT / "bench"))

import sanitize

OVERFLOW = """
import gradcheck
from gradcheck import runtime
jt = runtime.import_jittor()
a = jt.array([1.0, 2.0, 3.0])
b = jt.code(a.shape, a.dtype, [a], cpu_src='''
    float* scratch = new float[in0_shape0];  // a kernel's own buffer (Vars sit in Jittor's pool)
    for (int i = 0; i < in0_shape0; i++) scratch[i] = in0_p[i];
    scratch[in0_shape0 + 40] = 1;            // far past its end
    for (int i = 0; i < in0_shape0; i++) out0_p[i] = scratch[i];
    delete[] scratch;
''')
print(b.numpy())
"""


@pytest.fixture(scope="module")
def env():
    try:
        # fused, as users run Jittor (tests/conftest.py turns fusion off for the other tests):
        # the execution crash this hunts was seen in real, fused Gold-YOLO steps
        env = {**sanitizer_env(), "no_fuse": "0"}
        # this process imported Jittor (for its cache's path), whose SIGCHLD handler
        # quick-exits when a child dies of a signal, as an aborting sanitizer's does
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        return env
    except (RuntimeError, subprocess.CalledProcessError, FileNotFoundError) as exc:
        pytest.fail(f"cannot set up the sanitizers: {exc}")


def sanitizer_env():
    return sanitize.sanitizer_env()


def run_sanitized(env, cwd, *args, timeout=1200):
    """``python3 ARGS`` with instrumented operators; its output captured."""
    return subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd
    )


@pytest.mark.slow
def test_the_set_up_catches_an_overflow_in_a_jt_code_kernel(env, tmp_path):
    """Without this, a clean run below would prove nothing."""
    proc = run_sanitized(env, tmp_path, "-c", OVERFLOW)
    assert proc.returncode == -signal.SIGABRT, proc.stderr[-3000:]
    assert "heap-buffer-overflow" in proc.stderr and "CodeOp::jit_run" in proc.stderr


# a reshape shares its input's buffer: with Jittor's pool off it read memory nothing wrote
# (bench/sanitize.py), which looked like an uninitialised read in Gold-YOLO's assigner
RESHAPE = """
import numpy as np
from gradcheck import runtime
jt = runtime.import_jittor()
x = jt.array(np.arange(24, dtype=np.float32).reshape(3, 8, 1))
print(x.int32().squeeze(-1).numpy().ravel().tolist())
"""


@pytest.mark.slow
def test_the_set_up_computes_as_jittor_does(env, tmp_path):
    proc = run_sanitized(env, tmp_path, "-c", RESHAPE)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split("\n")[-2] == str(list(range(24)))


@pytest.mark.slow
@pytest.mark.parametrize(
    "shape",
    [
        {"size": 100, "batch": 3, "boxes": True, "seed": 2},  # not a multiple of 32
        {"size": 33, "batch": 1, "boxes": False, "seed": 3},  # tiny, batch 1, no boxes
        {"size": 70, "batch": 5, "boxes": True, "seed": 4},
    ],
)
def test_a_gold_yolo_step_runs_clean(env, tmp_path, shape):
    """Gold-YOLO-N training steps, bare (a report under `gradcheck run` is lost in its
    compile-progress pipe): the oneDNN convolution forward, the BatchNorm kernels, the fused
    SGD and top-k in the assigner, all instrumented."""
    run_env = {**env, "BENCH_CRASH_SHAPE": json.dumps(shape)}
    worker = [str(ROOT / "bench" / "bench_crash.py"), "--worker", "--steps", "2"]
    proc = run_sanitized(run_env, tmp_path, *worker, timeout=3600)
    assert sanitize.reports(proc.stderr) == 0, proc.stderr[-6000:]
    assert proc.returncode == 0, proc.stderr[-3000:]
