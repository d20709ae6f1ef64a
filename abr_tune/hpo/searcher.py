"""Tune's searcher over an Optuna study that records what each trial did, kept in its experiment.

`OptunaStudySearch` is a Tune `Searcher` (suggest, on_trial_result, on_trial_complete, save and
restore) over Optuna's ask-and-tell interface: `study.ask` proposes a trial and the space's
define-by-run function draws its params, `trial.report` records each epoch, `study.tell` ends it.
Points to evaluate first (the base config, a warm start's earlier best) are `study.enqueue_trial`.
The study records:

- every epoch's metric as an intermediate value of the Optuna trial, step = epoch;
- PRUNED for a trial the scheduler stopped before `max_t` (Tune hands the result it stopped on
  to `on_trial_complete` only);
- FAIL for a trial that raised, diverged or never scored a finite value;
- COMPLETE otherwise, valued at its best finite epoch: the value the ranked table uses.

With several objectives (a Pareto search) Optuna keeps no intermediate values; a COMPLETE
trial's values are all taken at one epoch, the one `objectives.valued_epoch` picks (user
attribute `valued_epoch`), and each constraint's violation there is the user attribute
`constraints` that Optuna's constrained samplers read (`constraint_values`).

Its saved state (Tune's searcher-state-*.pkl, and tuner.pkl) is what it needs to continue: where
the study is, the map of Tune's trials to the study's trial numbers, the epochs seen so far, the
sampler with its random state; never an open database. A restored searcher reopens the study, under
`tune_restore.restoring(exp)` the copy in `exp` (a copied or moved experiment resumes against its
own optuna.db). Trials still RUNNING in the study go on under their Tune trials; those asked for
after Tune's last save are unknown to the restored Tune, and Tune's next new trials run their points,
so each study trial belongs to one Tune trial (one that began and ended between two saves keeps its
study record without a Tune trial); the restored sampler is reseeded, or its saved random state would
draw the points of the trials asked for after the save again. A state saved when this searcher subclassed Tune's
`OptunaSearch` (an experiment interrupted before the upgrade) is read too.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import optuna
from optuna.trial import FrozenTrial, TrialState
from ray.tune.search import Searcher

from ..errors import UserError
from ..metrics_registry import is_sampling_marker
from .objectives import Constraint, constraint_row, valued_epoch
from .tune_restore import (
    ExperimentSearchGenerator,  # noqa: F401 - where tuner.pkl files saved before it moved look for it
    restored_experiment,
)

RAY_TRIAL_ID = "ray_trial_id"  # user attribute naming each Optuna trial's Tune trial
EPOCH_KEY, DIVERGED_KEY = "epoch", "diverged"  # what hpo.trial reports with every epoch
CONSTRAINTS_ATTR = "constraints"  # user attribute: each constraint's violation at the valued epoch
_SAVED = ("db_path", "study_name", "metric", "mode", "max_t", "constraints", "space", "sampler", "trials", "done",
          "values", "rows")
# What this searcher saved when it subclassed Tune's OptunaSearch (its own and OptunaSearch's attribute
# names): an experiment interrupted before the upgrade resumes.
_EARLIER = {"_db_path": "db_path", "_study_name": "study_name", "_metric": "metric", "_mode": "mode",
            "_max_t": "max_t", "_constraints": "constraints", "_space": "space", "_sampler": "sampler",
            "_ot_trials": "trials", "_completed_trials": "done", "_values": "values", "_rows": "rows"}


class OptunaStudySearch(Searcher):
    """A Tune searcher over an SQLite Optuna study named by its path (see the module docstring)."""

    def __init__(self, *, db_path: Path, max_t: int, space: Callable[[Any], Any], metric: str | list[str],
                 mode: str | list[str], study_name: str, sampler: Optional[optuna.samplers.BaseSampler] = None,
                 constraints: tuple[Constraint, ...] = (), points_to_evaluate: Optional[list[dict]] = None) -> None:
        self.set_state({
            "db_path": str(Path(db_path).resolve()), "study_name": study_name, "metric": metric, "mode": mode,
            "max_t": max_t, "constraints": tuple(constraints), "space": space,
            "sampler": sampler or optuna.samplers.TPESampler(), "trials": {}, "done": [], "values": {}, "rows": {}})
        study = self._open(create=True)
        for point in points_to_evaluate or []:  # asked for first, in order
            study.enqueue_trial(point)

    # ------------------------------------------------------------ Tune's Searcher interface

    def set_search_properties(self, metric: Optional[str], mode: Optional[str], config: dict, **spec: Any) -> bool:
        return False  # its space, metric and mode are set when it is made

    def suggest(self, trial_id: str) -> Optional[dict]:
        study = self._study or self._open()
        trial = self._live.get(trial_id)
        if trial is None:
            # Tune's new trial runs the point of a study trial a kill made Tune forget, else a new one
            trial = self._running(self._orphans.pop(0)) if self._orphans else study.ask()
            self._live[trial_id] = trial
            self._trials[trial_id] = trial.number
            trial.set_user_attr(RAY_TRIAL_ID, trial_id)  # every study trial names its Tune trial while it runs
        self._space(trial)  # draws the params (a trial that has them gets the same values back)
        return dict(trial.params)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id not in self._done:
            self._record(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: Optional[dict] = None, error: bool = False) -> None:
        if self._study is None:
            self._open()
        if trial_id in self._done or (trial_id not in self._live and trial_id not in self._closed):
            return
        # The result a scheduler stops a trial on reaches the searcher here only; a trial that
        # ended by itself reported its last epoch through on_trial_result already.
        step = _step(result or {})
        stopped = step is not None and step not in self._values.get(trial_id, {})
        self._record(trial_id, result or {})
        state, values, row = self._outcome(trial_id, result or {}, error, stopped)
        self._tell(trial_id, state, values, row)
        self._done.add(trial_id)
        self._live.pop(trial_id, None)

    def get_state(self) -> dict[str, Any]:
        return {"db_path": self._db_path, "study_name": self._study_name, "metric": self.metric, "mode": self.mode,
                "max_t": self._max_t, "constraints": self._constraints, "space": self._space,
                "sampler": self._sampler, "trials": dict(self._trials), "done": sorted(self._done),
                "values": self._values, "rows": self._rows}

    def set_state(self, state: dict[str, Any]) -> None:
        if "_ot_trials" in state:
            state = {new: state.get(old) for old, new in _EARLIER.items()}
        missing = [k for k in _SAVED if k not in state]
        if missing:
            raise UserError(f"the searcher state lacks {', '.join(missing)}: it was saved by another version of "
                            "abr-tune; start a new search with --space")
        super().__init__(metric=state["metric"], mode=state["mode"])
        self._db_path: str = state["db_path"]
        self._study_name: str = state["study_name"]
        self._max_t: int = state["max_t"]
        self._constraints: tuple[Constraint, ...] = tuple(state["constraints"])
        self._space: Callable[[Any], Any] = state["space"]
        self._sampler: optuna.samplers.BaseSampler = state["sampler"]
        self._trials: dict[str, int] = dict(state["trials"])  # Tune trial id -> the study's trial number
        self._done: set[str] = set(state["done"])  # Tune trials told to the study
        self._values: dict[str, dict[int, float]] = state["values"]  # Tune trial id -> {epoch: primary metric}
        self._rows: dict[str, dict[int, dict[str, float]]] = state["rows"]  # ... -> {epoch: objectives, constraints}
        self._study: Optional[optuna.Study] = None  # opened when first needed, never saved
        self._rdb: Optional[optuna.storages.RDBStorage] = None
        self._live: dict[str, optuna.trial.Trial] = {}  # Tune trial id -> its running study trial
        self._closed: dict[str, FrozenTrial] = {}  # restored Tune trials the study holds as finished
        self._orphans: list[int] = []  # RUNNING study trials (numbers) of Tune trials a kill made Tune forget
        if self._trials or restored_experiment() is not None:
            self._open()  # a restored searcher: the study is read now, a missing one refused

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.get_state(), f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.set_state(pickle.load(f))

    def __getstate__(self) -> dict[str, Any]:  # tuner.pkl pickles the searcher itself
        return self.get_state()

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.set_state(state)

    # ------------------------------------------------------------ the study

    def _open(self, create: bool = False) -> optuna.Study:
        """Open the study (`create`: make it), and sort the saved Tune trials by its records."""
        exp = restored_experiment()
        if exp is not None and exp.local_dir is not None:
            self._db_path = str(exp.study_db)
        if not create and not Path(self._db_path).is_file():  # SQLite would create an empty study there
            raise UserError(f"the Optuna study {self._db_path} is missing; restore the experiment directory "
                            "with its optuna.db")
        self._rdb = optuna.storages.RDBStorage(f"sqlite:///{self._db_path}")
        if create:
            directions = ["minimize" if m == "min" else "maximize" for m in self._modes]
            self._study = optuna.create_study(storage=self._rdb, study_name=self._study_name, sampler=self._sampler,
                                              pruner=optuna.pruners.NopPruner(), directions=directions,
                                              load_if_exists=True)
            return self._study
        self._study = optuna.load_study(study_name=self._study_name, storage=self._rdb, sampler=self._sampler,
                                        pruner=optuna.pruners.NopPruner())
        by_number = {t.number: t for t in self._study.get_trials(deepcopy=False)}
        for tid, number in self._trials.items():
            frozen = by_number[number]
            if tid in self._done:
                continue
            if frozen.state.is_finished():
                self._closed[tid] = frozen
            else:
                self._live[tid] = self._running(number)
        known = set(self._trials.values())
        self._orphans = [n for n, t in sorted(by_number.items()) if t.state == TrialState.RUNNING and n not in known]
        if known and max(by_number) > max(known):  # asked after Tune's last save: the sampler's saved random
            self._sampler.reseed_rng()  # state would draw their points again for the next new trials
        return self._study

    def _running(self, number: int) -> optuna.trial.Trial:
        """The study's RUNNING trial `number`, to report to and tell (Optuna's storage maps numbers to ids)."""
        assert self._rdb is not None and self._study is not None
        study_id = self._rdb.get_study_id_from_name(self._study_name)
        return optuna.trial.Trial(self._study, self._rdb.get_trial_id_from_study_id_trial_number(study_id, number))

    @property
    def _objectives(self) -> list[str]:
        return list(self.metric) if isinstance(self.metric, (list, tuple)) else [self.metric]

    @property
    def _modes(self) -> list[str]:
        return list(self.mode) if isinstance(self.mode, (list, tuple)) else [self.mode]

    # ------------------------------------------------------------ results

    def _record(self, trial_id: str, result: dict) -> None:
        step, value = _step(result), result.get(self._objectives[0])
        if step is None or not isinstance(value, (int, float)):
            return
        seen = self._values.setdefault(trial_id, {})
        if step in seen:  # an epoch re-run after a worker restart: Optuna keeps the first report too
            return
        seen[step] = float(value)
        names = (self._objectives + [c.metric for c in self._constraints]
                 + [k for k in result if is_sampling_marker(k)])  # a sampling epoch's marker, of any species
        self._rows.setdefault(trial_id, {})[step] = {
            "epoch": step, **{n: float(result[n]) for n in names if isinstance(result.get(n), (int, float))}}
        if trial_id in self._live and len(self._objectives) == 1:  # Optuna: intermediate values are 1-D
            self._live[trial_id].report(float(value), step)

    def _outcome(self, trial_id: str, result: dict, error: bool,
                 stopped: bool) -> tuple[TrialState, Optional[list[float]], Optional[dict[str, float]]]:
        """State, values (one per objective) and the epoch's row they were taken from."""
        values = self._values.get(trial_id, {})
        if error or result.get(DIVERGED_KEY):
            return TrialState.FAIL, None, None
        if not values:  # stopped before it reported an epoch
            return TrialState.PRUNED, None, None
        rows = self._rows.get(trial_id, {})
        if stopped and max(values) < self._max_t:  # single objective: Optuna stores the last intermediate value
            return TrialState.PRUNED, None, rows.get(max(rows)) if rows else None
        row = valued_epoch([rows[e] for e in sorted(rows)], self._objectives, self._modes[0])
        if row is None:  # no sampling epoch measured every objective
            return TrialState.FAIL, None, None
        return TrialState.COMPLETE, [row[n] for n in self._objectives], row

    def _tell(self, trial_id: str, state: TrialState, values: Optional[list[float]],
              row: Optional[dict[str, float]]) -> None:
        assert self._study is not None
        attrs: dict[str, Any] = {}
        if state == TrialState.COMPLETE and len(self._objectives) > 1:
            attrs["valued_epoch"] = int(row["epoch"])
        if self._constraints:  # Optuna's constraints_func reads them (`constraint_values`); <= 0 is met
            if len(self._objectives) == 1 and state == TrialState.COMPLETE:  # as `results.trial_record` judges
                rows = self._rows.get(trial_id, {})
                row = constraint_row([rows[e] for e in sorted(rows)], self._objectives, list(self._constraints),
                                     self._modes[0])
            attrs[CONSTRAINTS_ATTR] = [c.violation((row or {}).get(c.metric)) for c in self._constraints]
        if trial_id in self._closed:
            old = self._closed[trial_id]
            if old.state != TrialState.FAIL:  # finished after Tune's last save, then a kill: Tune ran it again
                return  # its first outcome is in the study; one record per trial
            # Marked FAIL when an earlier run ended on an error; --resume ran it on: a record of its own.
            self._study.add_trial(optuna.trial.create_trial(
                state=state, values=values, params=old.params, distributions=old.distributions,
                intermediate_values=(self._values.get(trial_id) or None) if len(self._objectives) == 1 else None,
                user_attrs={RAY_TRIAL_ID: trial_id, "resumed_from_trial": old.number, **attrs}))
            return
        trial = self._live[trial_id]
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        self._study.tell(trial, values, state=state)


def constraint_values(trial: FrozenTrial) -> list[float]:
    """Optuna's constraints_func: the violations the searcher stored (<= 0: met)."""
    return [float(v) for v in trial.user_attrs.get(CONSTRAINTS_ATTR, [])]


def _step(result: dict) -> Optional[int]:
    epoch = result.get(EPOCH_KEY)
    return int(epoch) if isinstance(epoch, (int, float)) and math.isfinite(epoch) else None
