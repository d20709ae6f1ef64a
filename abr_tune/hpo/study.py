"""The experiment's Optuna study file (optuna.db): checked before a resume, closed after a failed search."""

from __future__ import annotations

import contextlib
import datetime
import sqlite3
from pathlib import Path

from ..errors import UserError


def study_name(db: Path, expected: str) -> str:
    """The name of the one study in `db` (SQLite, opened read-only), checked before Ray starts.

    A copied or renamed experiment keeps the study of the search that created it, so the name
    is read from the file, not taken from the directory name.
    """
    if not db.is_file():
        raise UserError(f"'{db.parent}' has no Optuna study ({db.name} is missing); it cannot be resumed")
    try:  # the file's integrity first, read-only: SQLite's own check, before Optuna opens it
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
            check = con.execute("PRAGMA quick_check").fetchone()
    except sqlite3.Error as err:
        raise UserError(f"the Optuna study {db} cannot be read ({err}); restore it from a backup, "
                        "or start a new search with --space") from None
    if check != ("ok",):
        raise UserError(f"the Optuna study {db} is damaged (SQLite integrity check: {check[0]}); "
                        "restore it from a backup, or start a new search with --space")
    import optuna

    try:
        # read-only: a file that is not a study is refused rather than given Optuna's tables
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        names = optuna.get_all_study_names(storage=f"sqlite:///file:{db}?mode=ro&uri=true")
    except Exception as err:  # noqa: BLE001 - Optuna raises storage errors of several kinds; one message for all
        raise UserError(f"the Optuna study {db} cannot be read ({type(err).__name__}: {err}); restore it from a "
                        "backup, or start a new search with --space") from None
    if expected in names:
        return expected
    if len(names) != 1:
        raise UserError(f"the Optuna study file {db} holds {len(names)} studies, none named '{expected}'; "
                        "resume the experiment directory the search created")
    return names[0]


def tune_trials_in_state(db: Path, name: str, key: str, state: str) -> set[str]:
    """The user attribute `key` (the Tune trial's id) of the study's trials in `state` (e.g. "PRUNED");
    none when there is no study file yet."""
    import optuna

    if not db.is_file():
        return set()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{db}")
    trials = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState[state],))
    return {str(t.user_attrs[key]) for t in trials if key in t.user_attrs}


def fail_unfinished(db: Path, name: str) -> int:
    """Tell Optuna that the trials still RUNNING in the study failed; returns how many.

    Called when a search ends on an error: Tune never tells the searcher about trials it
    abandons then, and a study that shows them RUNNING claims they are still going.
    """
    import optuna

    if not db.is_file():
        return 0
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=name, storage=f"sqlite:///{db}")
        running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        for trial in running:
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        return len(running)
    except (optuna.exceptions.StorageInternalError, sqlite3.OperationalError):
        return _fail_in_place(db, name)  # e.g. a full disk: no room for SQLite's rollback journal


def _fail_in_place(db: Path, name: str) -> int:
    """The same update without a journal file: state and end time change in place (rows that
    exist already, no new pages), so it succeeds on a full disk; what Optuna's tell(FAIL) writes.

    The one place that writes Optuna's tables itself (Optuna has no journal-free tell): the schema's
    `trials.state`, `trials.datetime_complete` and `studies.study_name`, checked against Optuna 5.0.0;
    tests/test_search_resume.py fails when they change."""
    with contextlib.closing(sqlite3.connect(db)) as con:
        con.execute("PRAGMA journal_mode=MEMORY")
        with con:
            cur = con.execute(
                "UPDATE trials SET state = 'FAIL', datetime_complete = ? WHERE state = 'RUNNING' AND study_id = "
                "(SELECT study_id FROM studies WHERE study_name = ?)", (datetime.datetime.now().isoformat(" "), name))
        return cur.rowcount
