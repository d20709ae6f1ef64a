"""A finished experiment as the report reads it: search_summary.json (trial paths re-rooted at the
experiment directory, which may have moved), the space and the Optuna study."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ...errors import UserError
from ..layout import SPACE_FILE, STUDY_FILE, SUMMARY_FILE, rebase
from ..space import SearchSpace
from ..space_file import load_space
from . import figures


@dataclass
class SearchResult:
    """A finished experiment: its summary (trial paths re-rooted at `path`) and its space."""

    path: Path
    summary: dict[str, Any]
    space: SearchSpace
    trials: list[dict[str, Any]]
    study_db: Path  # the Optuna study (SQLite) in the experiment directory

    @property
    def best(self) -> Optional[dict[str, Any]]:
        best_id = (self.summary.get("best") or {}).get("trial_id")
        return next((t for t in self.trials if t["trial_id"] == best_id), None)

    @property
    def study_storage(self) -> Optional[str]:
        """The study's storage URL: the experiment's own optuna.db (it may have moved), else the summary's."""
        if self.study_db.is_file():
            return f"sqlite:///{self.study_db}"
        return (self.summary.get("study") or {}).get("storage")

    @property
    def num_samples(self) -> int:
        """The trials of the whole search: its own and its extensions' (an older summary: the space's)."""
        return int(self.summary.get("num_samples") or self.space.num_samples)

    @property
    def study_name(self) -> str:
        return (self.summary.get("study") or {}).get("study_name") or self.summary.get("name") or self.path.name

    @property
    def reference(self) -> Optional[dict[str, Any]]:
        return next((t for t in self.trials if t.get("is_reference")), None)


def load_search(experiment_dir: str | Path) -> SearchResult:
    """Read an experiment directory; raises UserError when it is not a finished search."""
    path = Path(experiment_dir).expanduser()
    if not path.is_dir():
        raise UserError(f"'{experiment_dir}' is not a directory; pass the experiment directory a search printed "
                        "(e.g. runs/search/lr_stft-20260101-120000)")
    path = path.resolve()
    if not (path / SUMMARY_FILE).is_file():
        if (path / SPACE_FILE).is_file():
            raise UserError(f"'{experiment_dir}' has no {SUMMARY_FILE}: the search has not finished; finish it with "
                            f"python -m abr_tune.search --resume {experiment_dir}")
        raise UserError(f"'{experiment_dir}' is not an abr-tune search experiment (no {SUMMARY_FILE}); pass the "
                        "experiment directory a search printed")
    try:
        summary = json.loads((path / SUMMARY_FILE).read_text())
        trials = [_rebased(t, summary["experiment_dir"], path) for t in summary["trials"]]
    except (ValueError, KeyError, TypeError) as err:
        raise UserError(f"'{path / SUMMARY_FILE}' is not a readable search summary ({type(err).__name__}: {err}); "
                        "re-run or resume the search") from None
    if not (path / SPACE_FILE).is_file():
        raise UserError(f"'{experiment_dir}' has no {SPACE_FILE}; it is not a complete abr-tune search experiment")
    return SearchResult(path, summary, load_space(path / SPACE_FILE), trials, path / STUDY_FILE)


def _rebased(trial: dict[str, Any], old_root: str, new_root: Path) -> dict[str, Any]:
    """The summary stores absolute paths; an experiment dir that was moved or copied still reports."""
    return {**trial, "trial_dir": rebase(trial["trial_dir"], old_root, new_root),
            "best_checkpoint": rebase(trial.get("best_checkpoint"), old_root, new_root)}


def trial_counts(trials: list[dict[str, Any]]) -> dict[str, int]:
    """How the trials ended: ran to max_t, stopped early by ASHA, diverged, failed, unfinished."""
    kinds = [figures.trial_kind(t, None) for t in trials]
    unfinished = sum(str(t["status"]).startswith("unfinished") for t in trials)
    return {"run": len(trials), "completed": kinds.count("completed"), "stopped": kinds.count("stopped"),
            "diverged": kinds.count("diverged"), "failed": kinds.count("failed") - unfinished,
            "unfinished": unfinished}
