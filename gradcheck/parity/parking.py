"""Arrays parked on disk while a memory peak passes: ``gradcheck align``'s float64 reference.

The home of :class:`ParkingLot`.  The reference's step (a float64 copy of the original: its
activations, its record of every module's outputs) is the peak of an alignment; the port's
records, taken just before, are only read again after it, to be measured against it.  Parked
in a temporary folder they leave the process (the page cache holds them, which the kernel
may reclaim), and come back one record at a time.

An array that several records share is parked once and fetched as one.  Small arrays stay
in memory (a file each would cost more than they hold), and so does everything once a write
fails (a full or read-only temporary folder): parking saves memory, it never fails a run.

The folder is made in Python's temporary folder (``TMPDIR``), except where that is a
``tmpfs`` (memory itself) and ``TMPDIR`` is not set: then in ``/var/tmp``, the disk-backed
one, where it can be written.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MIN_BYTES = 1 << 16  # smaller arrays are not worth a file


@dataclass(frozen=True)
class Parked:
    """A parked array: where it lies, and its shape (what a record keeps once measured)."""

    path: Path
    shape: tuple


class ParkingLot:
    """A temporary folder of parked arrays, removed by :meth:`close` (or on ``with`` exit)."""

    def __init__(self) -> None:
        self._dir: Path | None = None
        self._count = 0
        self._broken = False  # a write failed: nothing more is parked

    def park(self, tree):
        """``tree`` (dicts, lists and tuples of arrays) with each large array replaced by its
        handle; an array found under several keys is written once."""
        written: dict[int, Parked] = {}  # id -> handle; ``tree`` holds its arrays meanwhile

        def one(a):
            if not isinstance(a, np.ndarray) or a.nbytes < MIN_BYTES or self._broken:
                return a
            if id(a) not in written:
                try:
                    written[id(a)] = self._write(a)
                except OSError:
                    self._broken = True
                    return a
            return written[id(a)]

        return _map(tree, one)

    def _write(self, a: np.ndarray) -> Parked:
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="gradcheck-align-", dir=_folder()))
        p = Parked(self._dir / f"{self._count}.npy", tuple(a.shape))
        self._count += 1
        try:
            np.save(p.path, a, allow_pickle=False)
        except OSError:
            p.path.unlink(missing_ok=True)  # a part written: the lot stays whole
            raise
        return p

    @staticmethod
    def fetch_all(tree):
        """``tree`` with every parked array back."""
        return _map(tree, fetch)

    def close(self) -> None:
        """Remove the folder and everything parked in it."""
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> ParkingLot:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Reader:
    """Parked records read back in turn: an array that the previous record also held (a
    tensor that nested modules all return) is read once, not once per record."""

    def __init__(self) -> None:
        self._recent: dict = {}  # handle -> array, of the record read last

    def __call__(self, xs: list) -> list:
        """One record's arrays, parked or not."""
        now: dict = {}
        for x in xs:
            if isinstance(x, Parked) and x not in now:
                now[x] = self._recent[x] if x in self._recent else fetch(x)
        self._recent = now
        return [now.get(x, x) if isinstance(x, Parked) else x for x in xs]


def _folder() -> str | None:
    """Where the lot's folder goes (None: Python's temporary folder); see the module doc."""
    if os.environ.get("TMPDIR") or _fs_type(tempfile.gettempdir()) != "tmpfs":
        return None
    return "/var/tmp" if os.access("/var/tmp", os.W_OK) else None


def _fs_type(path: str, mounts: str = "/proc/mounts") -> str | None:
    """The type of the file system holding ``path`` (the longest mount point above it), or
    None where the mount table cannot be read."""
    path = os.path.realpath(path)
    best, kind = "", None
    try:
        with open(mounts, encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.split()
                if len(parts) < 3:
                    continue
                point = parts[1].replace("\\040", " ")
                inside = path == point or path.startswith(point.rstrip("/") + "/")
                if inside and len(point) >= len(best):
                    best, kind = point, parts[2]
    except OSError:
        return None
    return kind


def fetch(x):
    """A parked array back (anything else as it is)."""
    if isinstance(x, Parked):
        return np.load(x.path, allow_pickle=False)
    return x


def _map(tree, f):
    """``tree`` rebuilt with ``f`` applied to each leaf (dicts, lists and tuples walked)."""
    if isinstance(tree, dict):
        return {k: _map(v, f) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_map(v, f) for v in tree)
    return f(tree)
