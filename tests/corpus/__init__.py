"""A corpus of real training code, at toy size: each case is a small model plus the training
loop of a real public Jittor program or model, with the truth gradcheck must report.

Each case module registers its factories with :func:`case`; every factory returns a
:class:`gradcheck.Workload` (so each is also ``gradcheck run --model tests/corpus/<m>.py:<f>``)
and its docstring names the source (repository and file) and explains the ground truth.
``expect`` maps a parameter-name glob to the fields every matching parameter must have
(status, cause, in_optimizer, updated, reached_by, ...); ``buffers`` does the same for buffers;
``extra(report)`` asserts anything else (warnings, loss terms, the verdict).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

CASES: dict = {}


@dataclass
class Case:
    name: str
    factory: Callable
    expect: dict
    steps: int = 2
    buffers: dict = field(default_factory=dict)
    extra: Callable | None = None
    verdict: str | None = None
    slow: bool = False


def features(n=4, d=8, seed=0):
    """A float32 (n, d) batch of standard normal features, the same for a given seed."""
    import numpy as np

    from gradcheck import runtime

    return runtime.import_jittor().array(
        np.random.default_rng(seed).normal(size=(n, d)).astype("float32"))


def labels(n=4, k=3, seed=0):
    """n int32 class labels in [0, k), the same for a given seed."""
    import numpy as np

    from gradcheck import runtime

    return runtime.import_jittor().array(
        np.random.default_rng(seed).integers(0, k, n).astype("int32"))


def case(expect: dict, steps: int = 2, buffers=None, extra=None, verdict=None, slow=False):
    def register(factory):
        CASES[factory.__name__] = Case(factory.__name__, factory, expect, steps, buffers or {},
                                       extra, verdict, slow)
        return factory
    return register


def load_all() -> dict:
    from corpus import generative, inventory, training, transformers, vision  # noqa: F401

    return CASES
