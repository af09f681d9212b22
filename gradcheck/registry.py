"""Workloads by name, each with the settings it is meant to be probed with (timm style).

A bundled workload registers a factory under a name, together with its recommended
settings::

    @register_workload("gold_yolo_s", recommended=Recommended(steps=3, img_size=640))
    def gold_yolo_s(img_size, batch_size, seed, data) -> Workload: ...

``gradcheck run --model gold_yolo_s`` then uses those settings wherever neither a flag nor
the config file sets one (see :mod:`gradcheck.settings`).  Looking names up never imports
Jittor: the factories import their model code only when called.  This mirrors timm's
``_registry.py`` (a decorator filling a name -> entrypoint table, with the default config
next to it), cut down to what gradcheck needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Callable

# the modules whose import registers the bundled workloads (import-light: no Jittor)
_BUILTIN = ("gradcheck.bundled",)


@dataclass(frozen=True)
class Recommended:
    """The settings a workload is meant to be probed with; None: the tool's default."""

    steps: int | None = None
    img_size: int | None = None
    batch_size: int | None = None
    # glob -> reason: parameters frozen on purpose (applied with the config's own globs)
    expected_frozen: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Entry:
    name: str
    factory: Callable  # (img_size, batch_size, seed, data) -> Workload
    recommended: Recommended


_ENTRIES: dict[str, Entry] = {}
_loaded = False


def register_workload(
    name: str | None = None, *, recommended: Recommended = Recommended()
) -> Callable:
    """Decorator: register ``factory`` as the workload ``name`` (default: its ``__name__``)."""

    def deco(factory: Callable) -> Callable:
        key = name or factory.__name__
        old = _ENTRIES.get(key)
        if old is not None and old.factory is not factory:
            raise KeyError(f"workload {key!r} is already registered")
        _ENTRIES[key] = Entry(key, factory, recommended)
        return factory

    return deco


def _load_builtin() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        import importlib

        for module in _BUILTIN:
            importlib.import_module(module)


def names() -> list:
    _load_builtin()
    return list(_ENTRIES)


def is_registered(name: str | None) -> bool:
    _load_builtin()
    return name in _ENTRIES


def get(name: str) -> Entry:
    _load_builtin()
    try:
        return _ENTRIES[name]
    except KeyError:
        raise KeyError(f"unknown workload {name!r}; known: {', '.join(_ENTRIES)}") from None


def recommended(name: str | None) -> Recommended | None:
    """The recommended settings of a registered workload; None for any other model spec."""
    return get(name).recommended if name is not None and is_registered(name) else None
