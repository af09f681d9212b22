"""gradcheck: which parameters of a Jittor model get no gradient, and why.

Importing this package does nothing else: no Jittor, no environment variables, no libraries
loaded.  The Jittor runtime (device, oneDNN, quiet logs; :mod:`gradcheck.runtime`) is set up
by the entry points that need it, when they first do.  The library API::

    import gradcheck
    report = gradcheck.check(gradcheck.Workload(model, batch, loss), steps=3)
    report.verdict.result, report.param("fc.weight").status

    with gradcheck.watch(model, optimizer, every=100) as w:   # inside a user's own loop
        ...
    w.report()

Code that imports Jittor itself takes it from ``jt = gradcheck.ensure_jittor()`` (set up
first, then imported, once), so that Jittor starts with gradcheck's device and oneDNN.
(``gradcheck run -- python train.py`` checks a training script unmodified: :mod:`gradcheck.script`.)
"""

__version__ = "0.1.0"
__all__ = [
    "Workload",
    "check",
    "assert_covered",
    "watch",
    "Report",
    "Policy",
    "load_report",
    "ensure_jittor",
    "__version__",
]


_LAZY = {
    "Workload": "gradcheck.workload",
    "check": "gradcheck.api",
    "Report": "gradcheck.report",
    "assert_covered": "gradcheck.api",
    "watch": "gradcheck.watching",
    "load_report": "gradcheck.report",
    "Policy": "gradcheck.policy",
    "ensure_jittor": "gradcheck.runtime",
}


def __getattr__(name):  # lazy: importing gradcheck imports none of its parts, nor jittor
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'gradcheck' has no attribute {name!r}")
