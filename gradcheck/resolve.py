"""Resolve ``--model`` into a :class:`~gradcheck.workload.Workload`.

A spec is a registered name (:mod:`gradcheck.registry`: the bundled Gold-YOLO variants),
``package.module:factory`` or ``path/to/file.py:factory``.  :func:`check_spec` is the cheap
part (no imports, no Jittor), so a typo fails at once; :func:`load_workload` builds it.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path

from gradcheck import registry
from gradcheck.workload import Workload, WorkloadError, _one_line


def check_spec(spec: str) -> None:
    """The cheap part of resolving ``--model`` (no imports): fail fast on a bad spec."""
    if registry.is_registered(spec):
        return
    if ":" not in spec:
        raise WorkloadError(
            f"unknown model {spec!r}: use one of {', '.join(registry.names())}, "
            "package.module:factory or path/to/file.py:factory"
        )
    target, _, attr = spec.rpartition(":")
    if not target or not attr.isidentifier():
        raise WorkloadError(f"bad model spec {spec!r}: expected module:factory")
    if (target.endswith(".py") or "/" in target or os.sep in target) and not Path(target).is_file():
        raise WorkloadError(f"model file {target} does not exist (from --model {spec})")


def load_workload(spec: str, **options) -> Workload:
    """Resolve ``--model``: a bundled name, ``package.module:factory`` or ``file.py:factory``.

    ``options`` (img_size, batch_size, seed, data) are passed to registered workloads; user
    factories take no arguments.
    """
    check_spec(spec)
    if registry.is_registered(spec):
        return registry.get(spec).factory(**options)
    target, _, attr = spec.rpartition(":")
    module = _import_target(target, spec)
    factory = getattr(module, attr, None)
    if factory is None:
        raise WorkloadError(f"{target} has no attribute {attr!r} (from --model {spec})")
    if not callable(factory):
        raise WorkloadError(f"{spec} is not callable")
    try:
        workload = factory()
    except WorkloadError:
        raise
    except Exception as exc:
        raise WorkloadError(
            f"factory {spec} raised {type(exc).__name__}: {_one_line(exc)}"
        ) from exc
    if not isinstance(workload, Workload):
        raise WorkloadError(
            f"factory {spec} returned {type(workload).__name__}, expected gradcheck.Workload"
        )
    if workload.name == "custom":
        workload.name = spec
    return workload


def _import_target(target: str, spec: str):
    looks_like_file = target.endswith(".py") or os.sep in target or "/" in target
    if looks_like_file:
        path = Path(target)
        if not path.is_file():
            raise WorkloadError(f"model file {target} does not exist (from --model {spec})")
        name = f"_gradcheck_user_{abs(hash(str(path.resolve())))}"
        mod_spec = importlib.util.spec_from_file_location(name, path)
        if mod_spec is None or mod_spec.loader is None:
            raise WorkloadError(f"cannot import {target} (from --model {spec})")
        module = importlib.util.module_from_spec(mod_spec)
        sys.path.insert(0, str(path.resolve().parent))
        try:
            sys.modules[name] = module
            mod_spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(name, None)
            raise WorkloadError(
                f"importing {target} raised {type(exc).__name__}: {_one_line(exc)}"
            ) from exc
        finally:
            sys.path.remove(str(path.resolve().parent))
        return module
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        if exc.name and target.startswith(exc.name):
            raise WorkloadError(f"no module named {target!r} (from --model {spec})") from None
        raise WorkloadError(
            f"importing {target} raised {type(exc).__name__}: {_one_line(exc)}"
        ) from exc
    except Exception as exc:
        raise WorkloadError(
            f"importing {target} raised {type(exc).__name__}: {_one_line(exc)}"
        ) from exc
