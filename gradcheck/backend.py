"""The frameworks gradcheck can probe, behind one protocol (:class:`Backend`).

A backend runs a :class:`~gradcheck.workload.Workload`'s real training steps in its own
framework and hands every measurement to :mod:`gradcheck.recorder`, which owns the records,
their derived fields and the report: so a Jittor run and a torch run of the same model give
reports that ``gradcheck compare --across`` can read side by side.  Jittor is the backend;
torch (``pip install gradcheck[torch]``) probes a PyTorch original for ``align`` and
``compare --across``.  :func:`for_model` picks one by the model's type, without importing a
framework the process has not loaded.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Callable, Protocol

if TYPE_CHECKING:
    from gradcheck.policy import Policy
    from gradcheck.report import Report
    from gradcheck.workload import Workload


class Backend(Protocol):
    """What a framework supplies: which models it takes, and the probe of a workload."""

    name: str

    def accepts(self, model) -> bool:
        """Whether ``model`` is this framework's module (never imports the framework)."""

    def check(
        self,
        workload: Workload,
        steps: int = 1,
        seed: int | None = 0,
        on_step: Callable[[int, int, str], None] | None = None,
        policy: Policy | None = None,
    ) -> Report:
        """``steps`` real training steps of ``workload``, recorded through the recorder."""


# name -> "module:attribute" of a Backend instance, imported on first use; asked in this order,
# the last one being the default
_BACKENDS: dict[str, str] = {
    "torch": "gradcheck.parity.torch_probe:BACKEND",
    "jittor": "gradcheck.probe:BACKEND",
}
_loaded: dict[str, Backend] = {}


def get(name: str) -> Backend:
    if name not in _loaded:
        module, _, attr = _BACKENDS[name].partition(":")
        _loaded[name] = getattr(importlib.import_module(module), attr)
    return _loaded[name]


def for_model(model) -> Backend:
    """The backend whose framework ``model`` belongs to; Jittor when none claims it (Jittor's
    probe then says what is wrong with the model)."""
    for name in _BACKENDS:
        backend = get(name)
        if backend.accepts(model):
            return backend
    return get("jittor")


def names() -> tuple:
    return tuple(_BACKENDS)
