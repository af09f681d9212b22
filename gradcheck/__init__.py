"""gradcheck: which parameters of a Jittor model get no gradient, and why.

Importing this package prepares the Jittor runtime (device, oneDNN, quiet logs) before
Jittor itself is imported; see :mod:`gradcheck.runtime`.  The library API::

    import gradcheck
    report = gradcheck.check(gradcheck.Workload(model, batch, loss), steps=3)
    report.verdict.result, report.param("fc.weight").status

    with gradcheck.watch(model, optimizer, every=100) as w:   # inside a user's own loop
        ...
    w.report()

(``gradcheck run -- python train.py`` checks a training script unmodified: :mod:`gradcheck.script`.)
"""

from gradcheck import runtime as _runtime

try:
    _runtime.setup()
except _runtime.RuntimeSetupError:
    pass  # e.g. GRADCHECK_DEVICE=cuda without a GPU: raised again, as one line, where it is used

__version__ = "0.1.0"
__all__ = ["Workload", "check", "assert_covered", "watch", "Report", "Policy", "load_report",
           "__version__"]


_LAZY = {"Workload": "gradcheck.workload", "check": "gradcheck.api", "Report": "gradcheck.report",
         "assert_covered": "gradcheck.api", "watch": "gradcheck.watching",
         "load_report": "gradcheck.report", "Policy": "gradcheck.policy"}


def __getattr__(name):  # lazy: importing gradcheck must not import jittor yet
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'gradcheck' has no attribute {name!r}")
