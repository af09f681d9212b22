"""A tiny name -> factory registry (timm style), used instead of ``eval`` on config strings.

Wang et al., "Gold-YOLO: Efficient Object Detector via Gather-and-Distribute Mechanism",
NeurIPS 2023.  Upstream ``yolov6/models/yolo.py`` resolves ``config.model.backbone.type``
with ``eval``; here the backbone/neck/config classes register themselves by name instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps a name to an object (a class or a factory function).

    >>> NECKS = Registry("neck")
    >>> @NECKS.register()
    ... class RepGDNeck: ...
    >>> NECKS.get("RepGDNeck")
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str | None = None) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            key = name or obj.__name__
            if key in self._items and self._items[key] is not obj:
                raise KeyError(f"{self.kind} {key!r} is already registered")
            self._items[key] = obj
            return obj

        return deco

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "(none)"
            raise KeyError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def names(self) -> list:
        return list(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


BACKBONES: Registry = Registry("backbone")
NECKS: Registry = Registry("neck")
BLOCKS: Registry = Registry("block")  # training_mode -> RepVGG-style block class
CONFIGS: Registry = Registry("config")  # model name -> config factory
