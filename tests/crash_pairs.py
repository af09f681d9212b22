"""Ports for ``gradcheck align`` that fail on a supervised run's first attempt only
(``GRADCHECK_ATTEMPT=1``, set by gradcheck.supervise): a crash in compiled code, and Jittor's
known transient operator-compiler failure.  Both wrap parity_pairs' faithful port."""

from __future__ import annotations

import os

import parity_pairs as pp
from zoo_failures import FLAKE


def _first_attempt() -> bool:
    return os.environ.get("GRADCHECK_ATTEMPT") == "1"


def port_crashes_first_attempt():
    w = pp.port("none")
    loss = w.loss

    def crashing(model, batch):
        if _first_attempt():
            import ctypes

            ctypes.string_at(0)
        return loss(model, batch)
    w.loss = crashing
    return w


def port_flaky_first_attempt():
    if _first_attempt():
        raise RuntimeError(FLAKE)
    return pp.port("none")
