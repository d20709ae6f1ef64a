"""A search that ends on an error: the study closed, a full disk told in one line."""

from __future__ import annotations

import errno
from typing import Optional

from ..errors import UserError
from ..formatting import shell
from .layout import Experiment
from .plan import tune_state_problem
from .study import fail_unfinished

DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
FULL_PHRASES = ("No space left on device", "Disk quota exceeded", "database or disk is full")


def disk_full(err: BaseException) -> Optional[str]:
    """The message of the out-of-space error in `err`'s chain (Tune wraps what its workers raise), or None."""
    seen: set[int] = set()
    current: Optional[BaseException] = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = str(current)
        if isinstance(current, OSError) and current.errno in DISK_FULL:
            return current.strerror or text
        for phrase in FULL_PHRASES:  # SQLite's and the OS's words, also inside wrapped messages
            if phrase in text:
                return phrase
        current = current.__cause__ or current.__context__
    return None


def close_study(exp: Experiment) -> str:
    """Record the trials the study still shows RUNNING as FAIL; a sentence saying what happened."""
    try:
        n = fail_unfinished(exp.study_db, exp.study_name)
    except Exception as err:  # noqa: BLE001 - a study that cannot be written now is reported, not fatal
        return f"the study {exp.study_db} could not be updated ({type(err).__name__}: {err})"
    return f"{n} unfinished trial(s) recorded as FAIL in {exp.study_db}" if n else "the study holds no unfinished trial"


def after_failure(exp: Experiment, err: BaseException) -> None:
    """After a search raised once Ray was up: close the study, and a full disk becomes one error line.

    An interrupt leaves the study as it is (--resume continues the trials that were running), and
    so does a UserError: those come from checks that run before any trial does.
    """
    if isinstance(err, (KeyboardInterrupt, SystemExit, UserError)):
        return
    closed = close_study(exp)
    reason = disk_full(err)
    if not reason:
        return
    problem = tune_state_problem(exp.run_dir) if exp.run_dir is not None else None  # an extension's: extend_K/
    then = (f"free space and continue with: python -m abr_tune.search --resume {shell(exp.path)}"
            if problem is None else f"it cannot be resumed: {problem}")
    raise UserError(f"the search stopped: {reason} while writing {exp.path}; {closed}; the trials that finished "
                    f"are kept; {then}") from None
