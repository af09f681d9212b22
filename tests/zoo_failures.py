"""Workloads that fail the way a CI run can: Jittor breaking, signals, regressions.

Each factory is a valid ``gradcheck run --model tests/zoo_failures.py:<factory>``.  All use
the zoo's ``TwoLayers`` net, so their reports share parameter names with ``zoo.py:healthy``
and compare against it.
"""

from __future__ import annotations

import os
import time

import gradcheck
from gradcheck import runtime
from zoo import TwoLayers, _sq, _x

jt = runtime.import_jittor()

# the message of the known flaky failure inside Jittor's operator compiler (issue 9)
FLAKE = ("[f 1126 10:00:00.000000 64 executor.cc:686] \nExecute fused operator(1057/1347) failed."
         "\n[Reason]: [f 1126 10:00:00.000000 64 op_compiler.cc:832] Check failed: "
         "member.size() <= var_num  Something wrong... Could you please report this issue?")


def frozen_layer():
    """``healthy`` with one layer's weight stop_grad-ed and no declared reason."""
    m = TwoLayers()
    m.fc2.weight.stop_grad()
    return gradcheck.Workload(m, _x(), lambda m, b: _sq(m(b)))


def frozen_layer_declared():
    w = frozen_layer()
    w.frozen = {"fc2.weight": "frozen on purpose for this test"}
    return w


def no_decay_updates():
    """``healthy`` whose fc2 never moves: its learning rate is zero (a group of its own)."""
    m = TwoLayers()
    opt = jt.optim.SGD([{"params": [m.fc1.weight, m.fc1.bias]},
                        {"params": [m.fc2.weight, m.fc2.bias], "lr": 0.0}], 0.01)
    return gradcheck.Workload(m, _x(), lambda m, b: _sq(m(b)), optimizer=opt)


def jittor_fails():
    """An operator that fails inside Jittor when the graph is executed (lazily, in the
    probe's sync), as a fused-operator failure of Jittor's own does."""
    def loss(m, b):
        boom = jt.code(b.shape, b.dtype, [b], cpu_src='LOGf << "injected failure inside an op";')
        return _sq(m(b)) + 0.0 * boom.sum()
    return gradcheck.Workload(TwoLayers(), _x(), loss)


def flaky_compiler():
    """Fails once per process with the op compiler's known message, then works."""
    def loss(m, b):
        if not os.environ.get("_GRADCHECK_TEST_FLAKED"):
            os.environ["_GRADCHECK_TEST_FLAKED"] = "1"
            raise RuntimeError(FLAKE)
        return _sq(m(b))
    return gradcheck.Workload(TwoLayers(), _x(), loss)


def always_flaky():
    """Fails with the op compiler's known message every time: a retry does not help."""
    def loss(m, b):
        raise RuntimeError(FLAKE)
    return gradcheck.Workload(TwoLayers(), _x(), loss)


def sleeps():
    """Touches $GRADCHECK_TEST_MARKER once its loss runs (Jittor up, a step under way), then
    sleeps: for a signal sent from outside."""
    def loss(m, b):
        marker = os.environ.get("GRADCHECK_TEST_MARKER")
        if marker:
            open(marker, "w").close()
        # in slices: a signal may land on one of Jittor's threads, and Python runs its handler
        # only when the main thread is back in Python (one time.sleep(60) held it a minute)
        for _ in range(600):
            time.sleep(0.1)
        return _sq(m(b))
    return gradcheck.Workload(TwoLayers(), _x(), loss)


def segfaults():
    """Crashes in compiled code during its loss (a read of address 0): for the crash report."""
    def loss(m, b):
        import ctypes

        ctypes.string_at(0)
        return _sq(m(b))
    return gradcheck.Workload(TwoLayers(), _x(), loss)


def _first_attempt() -> bool:
    """The first attempt of a supervised run (gradcheck.supervise sets GRADCHECK_ATTEMPT)."""
    return os.environ.get("GRADCHECK_ATTEMPT") == "1"


def crashes_first_attempt():
    """``healthy``'s net whose loss crashes in compiled code on a supervised run's first
    attempt only (a read of address 0), as Jittor's op compiler does now and then."""
    def loss(m, b):
        if _first_attempt():
            import ctypes

            ctypes.string_at(0)
        return _sq(m(b))
    return gradcheck.Workload(TwoLayers(), _x(), loss)


def crashes_after_verdict():
    """Works, then crashes while the process exits (after its verdict), first attempt only."""
    if _first_attempt():
        import atexit
        import signal

        atexit.register(lambda: os.kill(os.getpid(), signal.SIGSEGV))
    return gradcheck.Workload(TwoLayers(), _x(), lambda m, b: _sq(m(b)))
