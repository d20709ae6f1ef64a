"""ASHA (Li et al. 2020, "A System for Massively Parallel Hyperparameter Tuning") whose rungs
survive a restore and an extension.

Tune does not save its scheduler: a resumed search, or an extension (a new Tune experiment,
`--extend`), would start ASHA with empty rungs, so the first new trial to reach each rung would
always be promoted, whatever the earlier trials scored there. `RestoredASHA` refills the rungs
from each restored trial's own result.json when Tune adds it back, and is seeded with the results
of the search's earlier Tune experiments (`earlier`), so new trials are cut against every earlier trial.

A trial ASHA had already stopped when the search was killed, but after Tune's last save, is run again
by the restored Tune from its checkpoint, past the rung that stopped it; it is stopped again at its
first result, so the study's record of it (PRUNED), its summary and Tune agree. The study knows it
(its record is PRUNED); its result.json may not: Tune writes result.json on the driver and copies it to
the experiment directory when it saves, so a stop after the last save is missing there (where it is
there, a result marked `done` before `max_t`, it counts too).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ray.tune.schedulers import ASHAScheduler

from .layout import TUNE_RESULT_FILE
from .searcher import RAY_TRIAL_ID
from .study import tune_trials_in_state
from .tune_restore import restored_experiment


class RestoredASHA(ASHAScheduler):
    """ASHA that replays each restored trial's results, and the `earlier` trials' (id, [(time, metric)]),
    through its own public `on_trial_add`, `on_trial_result` and `on_trial_remove`.

    The metric is the one Tune hands every scheduler (`set_search_properties`), the time attribute the
    one given here; a replayed result goes where a live one would (its trial's bracket and rung). A rung
    records each trial id once, so replaying the earlier trials again (a restored extension) changes nothing.
    """

    def __init__(self, *, time_attr: str = "training_iteration",
                 earlier: Sequence[tuple[str, Sequence[tuple[float, float]]]] = (), **kwargs: Any) -> None:
        super().__init__(time_attr=time_attr, **kwargs)
        self.replay_time_attr, self.replay_metric = time_attr, kwargs.get("metric")
        self.max_t = kwargs.get("max_t", 100)  # ASHAScheduler's default
        self.ended: set[str] = set()  # restored trials ASHA had stopped before the kill
        self._pruned: set[str] | None = None  # the Tune trial ids the restored study records as PRUNED
        self.earlier = [(str(tid), [(float(t), float(v)) for t, v in rows]) for tid, rows in earlier]
        if self.replay_metric is not None:
            self._seed()

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        accepted = super().set_search_properties(metric, mode, **spec)
        if accepted and metric:
            self.replay_metric = metric
        if self.replay_metric is not None:
            self._seed()
        return accepted

    def _seed(self) -> None:
        """The earlier Tune experiments' trials into the rungs, each added, replayed and removed."""
        for trial_id, rows in self.earlier:
            trial = SimpleNamespace(trial_id=trial_id)
            super().on_trial_add(None, trial)
            for t, value in rows:
                self.on_trial_result(None, trial, {self.replay_time_attr: t, self.replay_metric: value})
            self.on_trial_remove(None, trial)

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        super().on_trial_add(tune_controller, trial)
        if self.replay_metric is None:
            return
        rows = _logged(trial)
        for epoch, value in _scores(rows, self.replay_time_attr, self.replay_metric):
            self.on_trial_result(tune_controller, trial, {self.replay_time_attr: epoch, self.replay_metric: value})
        if _stopped_before(rows, self.replay_time_attr, self.max_t) or trial.trial_id in self._pruned_in_study():
            self.ended.add(trial.trial_id)

    def _pruned_in_study(self) -> set[str]:
        """While Tune restores an experiment, the Tune trials its study records as PRUNED (read once)."""
        exp = restored_experiment()
        if exp is None:
            return set()
        if getattr(self, "_pruned", None) is None:  # getattr: a scheduler pickled in tuner.pkl before it kept this
            self._pruned = tune_trials_in_state(exp.study_db, exp.study_name, RAY_TRIAL_ID, "PRUNED")
        return self._pruned

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        if trial.trial_id in self.ended:
            return self.STOP
        return super().on_trial_result(tune_controller, trial, result)


def reported(trial: Any, time_attr: str, metric: str) -> list[tuple[float, float]]:
    """(time, metric) of every finite result the trial logged before, first report of each time;
    none for a new trial (or one whose results live on remote storage only)."""
    return _scores(_logged(trial), time_attr, metric)


def _scores(rows: list[dict], time_attr: str, metric: str) -> list[tuple[float, float]]:
    seen: dict[float, float] = {}
    for row in rows:
        t, value = row.get(time_attr), row.get(metric)
        if isinstance(t, (int, float)) and isinstance(value, (int, float)) and math.isfinite(value):
            seen.setdefault(float(t), float(value))
    return sorted(seen.items())


def _stopped_before(rows: list[dict], time_attr: str, max_t: float) -> bool:
    """Whether Tune ended the trial on a result before `max_t` (it marks that result `done`)."""
    return any(row.get("done") is True and isinstance(row.get(time_attr), (int, float)) and row[time_attr] < max_t
               for row in rows)


def _logged(trial: Any) -> list[dict]:
    """The rows of the trial's result.json that read; none for a new trial (no directory yet) or one
    whose results live on remote storage only."""
    if getattr(trial.storage, "trial_dir_name", None) is None:
        return []
    try:
        lines = (Path(trial.path) / TUNE_RESULT_FILE).read_text().splitlines()
    except (OSError, TypeError):
        return []
    rows = []
    for line in lines:
        try:
            rows.append(json.loads(line))
        except ValueError:  # the last line of a run that was killed mid-write
            continue
    return [r for r in rows if isinstance(r, dict)]
