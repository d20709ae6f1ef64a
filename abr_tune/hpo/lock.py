"""The experiment lock: one process at a time writes an experiment directory.

A search, its `--resume`, `--extend`, its confirmation stage and `retrain` all write into the
experiment directory (Tune's state, the Optuna study, the summary, checkpoints). Two at once
corrupt each other: the same Optuna trial told twice, checkpoints one deletes that the other
ranks. Each takes an exclusive `flock` on the experiment directory itself before it reads
anything it will write, and holds it until the process ends. The kernel drops the lock with its
holder, also on kill -9, so there is no stale lock to clean up, and nothing is written into the
directory (a refused command leaves it as it was). The descriptor is not inherited (Python opens
files non-inheritable, PEP 446), so the Ray processes a search starts never hold it. The
holder's pid, for the error, is read from /proc/locks where the system has it.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Optional

from ..errors import UserError
from .layout import SPACE_FILE

_held: dict[Path, int] = {}  # experiment directory -> its open descriptor, for the life of the process


def lock_experiment(directory: Path, doing: str) -> None:
    """Take `directory`'s lock for this process (a no-op when it already holds it).

    Raises UserError naming the pid of the process that holds it; `doing` says what this
    process was about to do, for that message.
    """
    path = Path(directory).resolve()
    if path in _held:
        return
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(os.fstat(fd).st_ino)
        os.close(fd)
        raise UserError(f"cannot {doing}: experiment '{directory}' is in use by another abr-tune process"
                        f"{f' (pid {holder})' if holder else ''}; wait for it to finish or stop it, "
                        "then run this again") from None
    _held[path] = fd


def lock_given(given: str, doing: str) -> None:
    """Lock the experiment directory a user named (--resume DIR, --extend DIR) before it is planned
    from; a directory without a search in it is left to the planning's own error."""
    path = Path(given).expanduser().resolve()
    if (path / SPACE_FILE).is_file():
        lock_experiment(path, doing)


def release_experiment(directory: Path) -> None:
    """Drop the lock early (a search that failed before writing anything removes its directory)."""
    fd = _held.pop(Path(directory).resolve(), None)
    if fd is not None:
        os.close(fd)


def _holder(inode: int) -> Optional[int]:
    """The pid holding a flock on `inode` (/proc/locks: `1: FLOCK ADVISORY WRITE <pid> <maj:min:inode> ...`)."""
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5].rsplit(":", 1)[-1] == str(inode):
            return int(fields[4]) if fields[4].isdigit() else None
    return None
