"""The files this process has mapped into memory, read from ``/proc/self/maps`` (Linux).

One reader for the two questions asked of it: which oneDNN library Jittor really loaded
(:func:`gradcheck.doctor.loaded_onednn_libs`) and which operator libraries a block of code
compiled (:func:`gradcheck.progress.compile_progress`).
"""

from __future__ import annotations

__all__ = ["mapped_files"]


def mapped_files() -> list[str] | None:
    """Paths of the files mapped into this process, each once, in the order they first
    appear; None when ``/proc/self/maps`` cannot be read (not Linux)."""
    seen: dict = {}
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                parts = line.split(None, 5)  # address perms offset dev inode [path]
                if len(parts) == 6:
                    seen.setdefault(parts[5].strip(), None)
    except OSError:
        return None
    return list(seen)
