"""Load the bundled model packages without shadowing a user's package of the same name.

gradcheck ships its Gold-YOLO port as the top-level package ``gold_yolo``.  A user who has a
Jittor Gold-YOLO port of their own usually has a ``gold_yolo`` package too.  If gradcheck
imported ours as ``gold_yolo``, the user's factory or script would find ours in
``sys.modules`` and fail (``No module named 'gold_yolo.<theirs>'``), or worse, probe our model.

So the bundled workloads never import ``gold_yolo`` by that name: :func:`bundled` loads our
copy from the folder it is installed in under a private name (``_gradcheck_bundled.gold_yolo``),
whatever is on ``sys.path`` and whatever is already imported.  The package uses relative
imports only, so it runs the same under either name.  ``import gold_yolo`` in the user's code
(or our tests and benches) is untouched and gets whatever their path says.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path

PRIVATE = "_gradcheck_bundled"  # the private parent of every bundled package
_ROOT = Path(__file__).resolve().parent.parent  # where gradcheck and gold_yolo are installed


def bundled(package: str = "gold_yolo") -> types.ModuleType:
    """Our bundled ``package``, loaded (once) under ``_gradcheck_bundled.<package>``."""
    name = f"{PRIVATE}.{package}"
    if name in sys.modules:
        return sys.modules[name]
    if PRIVATE not in sys.modules:
        parent = types.ModuleType(
            PRIVATE, "gradcheck's bundled model packages, under a private name"
        )
        parent.__path__ = []  # a namespace of its own: nothing is found under it by path
        sys.modules[PRIVATE] = parent
    folder = _ROOT / package
    spec = importlib.util.spec_from_file_location(
        name, folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"gradcheck's bundled package {package!r} is missing from {folder}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    setattr(sys.modules[PRIVATE], package, module)
    return module


def bundled_module(package: str, sub: str) -> types.ModuleType:
    """A submodule of a bundled package (``bundled_module("gold_yolo", "configs")``)."""
    bundled(package)
    return importlib.import_module(f"{PRIVATE}.{package}.{sub}")
