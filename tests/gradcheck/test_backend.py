"""gradcheck.backend: the framework of a model picks its probe, and both probes end in the one
recorder (same report schema and derived fields)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gradcheck import backend


def test_a_jittor_module_goes_to_the_jittor_probe():
    from gradcheck import runtime

    jt = runtime.import_jittor()
    assert backend.for_model(jt.nn.Linear(2, 2)).name == "jittor"


def test_anything_unclaimed_goes_to_jittor_whose_probe_says_what_is_wrong():
    assert backend.for_model(object()).name == "jittor"


def test_a_torch_module_goes_to_the_torch_probe():
    torch = pytest.importorskip("torch")
    assert backend.for_model(torch.nn.Linear(2, 2)).name == "torch"


def test_picking_a_backend_loads_no_framework():
    code = (
        "import sys; from gradcheck import backend; b = backend.for_model(object()); "
        "print(b.name, 'jittor' in sys.modules, 'torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["jittor", "False", "False"]


@pytest.mark.parametrize("name", backend.names())
def test_every_backend_has_the_protocol(name):
    b = backend.get(name)
    assert b.name == name
    assert callable(b.accepts) and callable(b.check)
