"""The experiment lock: one process at a time writes an experiment directory.

A search, its `--resume`, `--extend`, its confirmation stage and `retrain` all write into the
experiment directory (Tune's state, the Optuna study, the summary, checkpoints). Two at once
corrupt each other: the same Optuna trial told twice, checkpoints one deletes that the other
ranks. Each takes an exclusive `flock` on `<experiment>/.lock` before it reads anything it will
write, and holds it until the process ends. The kernel drops the lock with its holder, also on
kill -9, so there is no stale lock to clean up; the file names the holder's pid for the error.
The descriptor is not inherited (Python opens files non-inheritable, PEP 446), so the Ray
processes a search starts never hold it.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Optional

from ..errors import UserError

LOCK_FILE = ".lock"

_held: dict[Path, int] = {}  # lock file -> its open descriptor, for the life of the process


def lock_experiment(directory: Path, doing: str) -> None:
    """Take `directory`'s lock for this process (a no-op when it already holds it).

    Raises UserError naming the pid of the process that holds it; `doing` says what this
    process was about to do, for that message.
    """
    path = (Path(directory) / LOCK_FILE).resolve()
    if path in _held:
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise UserError(f"cannot {doing}: experiment '{directory}' is in use by another abr-tune process"
                        f"{f' (pid {holder})' if holder else ''}; wait for it to finish or stop it, "
                        "then run this again") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _held[path] = fd


def release_experiment(directory: Path) -> None:
    """Drop the lock early (a search that failed before writing anything removes its directory)."""
    path = (Path(directory) / LOCK_FILE).resolve()
    fd = _held.pop(path, None)
    if fd is not None:
        path.unlink(missing_ok=True)
        os.close(fd)


def _holder(fd: int) -> Optional[int]:
    try:
        text = os.pread(fd, 32, 0).decode().strip()
        return int(text) if text.isdigit() else None
    except (OSError, ValueError):
        return None
