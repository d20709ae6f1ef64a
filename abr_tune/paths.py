"""Where a command will write: refused before any work when the place cannot take it."""

from __future__ import annotations

import os
from pathlib import Path


def unwritable(target: str | Path) -> tuple[Path, str] | None:
    """Why `target` cannot be created and written: (nearest existing part of its path, the reason), or None.

    A file in the way, or a directory without write access (read-only directory or file system).
    """
    target = Path(target).absolute()
    existing = next(p for p in (target, *target.parents) if p.exists() or p.is_symlink())
    if not existing.is_dir():
        return existing, "is not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        return existing, "is not writable (read-only directory or file system)"
    return None
