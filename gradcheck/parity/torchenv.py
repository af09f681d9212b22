"""PyTorch next to Jittor in one process, safely (torch is an optional extra: ``.[torch]``).

Jittor compiles with two kinds of workers:

* operators (the common case) are compiled by C++ *threads* that run the compiler through
  ``popen``; glibc's ``popen`` uses ``posix_spawn`` (no copy of the parent's locks), so these
  are safe next to torch's thread pools;
* its core, custom ops and external libraries are compiled by ``jittor_utils.run_cmds``, a
  ``multiprocessing.Pool`` that *forks* the whole Python process.  A fork taken while torch's
  intra-op threads hold a lock leaves the child holding it forever: the parent then sits
  idle next to its compile workers.

:func:`import_torch` therefore imports Jittor first (so a cold core compile happens before
torch exists) and replaces ``run_cmds`` with the serial runner Jittor itself uses under
``DISABLE_MULTIPROCESSING=1``; only then is torch imported.  Everything in gradcheck that
needs torch gets it from here.
"""

from __future__ import annotations

import sys

_prepared = False


class TorchMissingError(RuntimeError):
    """torch is not installed (an environment error: exit code 3)."""


def serial_run_cmds(cmds, cache_path, jittor_path, msg="run_cmds"):
    """``jittor_utils.run_cmds`` without a process pool: one compile command at a time."""
    import jittor_utils

    for cmd in cmds:
        jittor_utils.do_compile([cmd, cache_path, jittor_path])


def make_jittor_fork_safe() -> None:
    """Import Jittor (through gradcheck's runtime) and turn its forking compile pool off."""
    global _prepared
    from gradcheck import runtime

    runtime.import_jittor()
    import jittor_utils

    jittor_utils.run_cmds = serial_run_cmds  # jittor.compiler calls it as jit_utils.run_cmds
    _prepared = True


def import_torch(with_jittor: bool = True):
    """Import torch.  With ``with_jittor`` (or when Jittor is already imported), make Jittor
    fork-safe first (see the module doc)."""
    if not _prepared and (with_jittor or "jittor" in sys.modules):
        make_jittor_fork_safe()
    try:
        import torch
    except ImportError:
        raise TorchMissingError('torch is not installed: pip install -e ".[torch]"') from None
    return torch


def is_torch_module(obj) -> bool:
    """Is ``obj`` a ``torch.nn.Module``?  Never imports torch (no torch loaded: no)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)
