"""Ray Tune's OptunaSearch with a study that records what each trial did, kept in its experiment.

Ray's `OptunaSearch` tells Optuna a trial's *last* reported value when it ends: a trial ASHA
stopped is COMPLETE with its value at the stopping epoch, a diverged one COMPLETE with inf, and
the epoch ASHA stopped on is missing from its intermediate values (Tune hands that result to
`on_trial_complete` only). `OptunaStudySearch` records instead:

- every epoch's metric as an intermediate value of the Optuna trial, step = epoch;
- PRUNED for a trial the scheduler stopped before `max_t`;
- FAIL for a trial that raised, diverged or never scored a finite value;
- COMPLETE otherwise, valued at its best finite epoch: the value the ranked table uses.

With several objectives (a Pareto search) Optuna keeps no intermediate values; a COMPLETE
trial's values are all taken at one epoch, the one `objectives.valued_epoch` picks (user
attribute `valued_epoch`), and each constraint's violation there is the user attribute
`constraints` that Optuna's constrained samplers read (`constraint_values`).

Tune pickles the searcher into the experiment directory (tuner.pkl, searcher-state-*.pkl). The
stock class pickles live SQLite connections to the study's absolute path, so a copied or moved
experiment resumed against the original's study. This one pickles the path only, and under
`restoring(exp)` a restored searcher opens `exp`'s own optuna.db, and Tune's new trials go to
`exp`'s directory (`ExperimentSearchGenerator`).
"""

from __future__ import annotations

import contextlib
import copy
import math
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import optuna
from optuna.trial import FrozenTrial, TrialState
from ray.tune.search import SearchGenerator
from ray.tune.search.optuna import OptunaSearch

from ..errors import UserError
from .layout import Experiment
from .objectives import SAMPLED, Constraint, constraint_row, valued_epoch

RAY_TRIAL_ID = "ray_trial_id"  # user attribute naming each Optuna trial's Tune trial
EPOCH_KEY, DIVERGED_KEY = "epoch", "diverged"  # what hpo.trial reports with every epoch
CONSTRAINTS_ATTR = "constraints"  # user attribute: each constraint's violation at the valued epoch

_restoring: Optional[Experiment] = None  # the experiment Tune is restoring (see `restoring`)


@contextlib.contextmanager
def restoring(exp: Experiment) -> Iterator[None]:
    """While Tune restores and runs `exp`: searchers open `exp`'s study and new trials go to
    `exp`'s directory, wherever the experiment was created (a URI experiment keeps its paths)."""
    global _restoring
    _restoring = exp
    try:
        yield
    finally:
        _restoring = None


class OptunaStudySearch(OptunaSearch):
    """OptunaSearch over an SQLite study named by its path (see the module docstring)."""

    def __init__(self, *, db_path: Path, max_t: int, constraints: tuple[Constraint, ...] = (), **kwargs: Any) -> None:
        self._db_path = str(Path(db_path).resolve())
        self._max_t = max_t
        self._constraints = tuple(constraints)
        self._values: dict[str, dict[int, float]] = {}  # Tune trial id -> {epoch: primary metric}, first report wins
        self._rows: dict[str, dict[int, dict[str, float]]] = {}  # ... -> {epoch: every objective and constraint}
        self._closed: dict[str, FrozenTrial] = {}  # restored trials the study already holds as finished
        self._orphans: list[int] = []  # RUNNING study trials of Tune trials a kill made Tune forget (ids)
        super().__init__(storage=None, **kwargs)

    # ------------------------------------------------------------ the study

    def _open_storage(self) -> Any:
        if _restoring is not None and _restoring.local_dir is not None:
            self._db_path = str(_restoring.study_db)
        return optuna.storages.RDBStorage(f"sqlite:///{self._db_path}")

    def _setup_study(self, mode: Any) -> None:
        self._storage = self._open_storage()
        super()._setup_study(mode)

    def suggest(self, trial_id: str) -> Optional[dict]:
        if trial_id not in self._ot_trials and self._orphans:  # Tune's new trial runs the forgotten one's point
            self._ot_trials[trial_id] = optuna.trial.Trial(self._ot_study, self._orphans.pop(0))
        params = super().suggest(trial_id)
        if trial_id in self._ot_trials:  # every study trial names its Tune trial, also while it runs
            self._ot_trials[trial_id].set_user_attr(RAY_TRIAL_ID, trial_id)
        return params

    # ------------------------------------------------------------ results

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id not in self._completed_trials:
            self._record(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: Optional[dict] = None, error: bool = False) -> None:
        if trial_id in self._completed_trials or (trial_id not in self._ot_trials and trial_id not in self._closed):
            return
        # The result a scheduler stops a trial on reaches the searcher here only; a trial that
        # ended by itself reported its last epoch through on_trial_result already.
        step = _step(result or {})
        stopped = step is not None and step not in self._values.get(trial_id, {})
        self._record(trial_id, result or {})
        state, values, row = self._outcome(trial_id, result or {}, error, stopped)
        self._tell(trial_id, state, values, row)
        self._completed_trials.add(trial_id)

    @property
    def _objectives(self) -> list[str]:
        return list(self._metric) if isinstance(self._metric, (list, tuple)) else [self._metric]

    @property
    def _primary_mode(self) -> str:
        return self._mode[0] if isinstance(self._mode, (list, tuple)) else self._mode

    def _record(self, trial_id: str, result: dict) -> None:
        step, value = _step(result), result.get(self._objectives[0])
        if step is None or not isinstance(value, (int, float)):
            return
        seen = self._values.setdefault(trial_id, {})
        if step in seen:  # an epoch re-run after a worker restart: Optuna keeps the first report too
            return
        seen[step] = float(value)
        names = self._objectives + [c.metric for c in self._constraints] + [SAMPLED]
        self._rows.setdefault(trial_id, {})[step] = {
            "epoch": step, **{n: float(result[n]) for n in names if isinstance(result.get(n), (int, float))}}
        if trial_id in self._ot_trials and len(self._objectives) == 1:  # Optuna: intermediate values are 1-D
            self._ot_trials[trial_id].report(float(value), step)

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
        row = valued_epoch([rows[e] for e in sorted(rows)], self._objectives, self._primary_mode)
        if row is None:  # no sampling epoch measured every objective
            return TrialState.FAIL, None, None
        return TrialState.COMPLETE, [row[n] for n in self._objectives], row

    def _tell(self, trial_id: str, state: TrialState, values: Optional[list[float]],
              row: Optional[dict[str, float]]) -> None:
        attrs: dict[str, Any] = {}
        if state == TrialState.COMPLETE and len(self._objectives) > 1:
            attrs["valued_epoch"] = int(row["epoch"])
        if self._constraints:  # Optuna's constraints_func reads them (`constraint_values`); <= 0 is met
            if len(self._objectives) == 1 and state == TrialState.COMPLETE:  # as `results.trial_record` judges
                rows = self._rows.get(trial_id, {})
                row = constraint_row([rows[e] for e in sorted(rows)], self._objectives, list(self._constraints),
                                     self._primary_mode)
            attrs[CONSTRAINTS_ATTR] = [c.violation((row or {}).get(c.metric)) for c in self._constraints]
        if trial_id in self._closed:
            old = self._closed[trial_id]
            if old.state != TrialState.FAIL:  # finished after Tune's last save, then a kill: Tune ran it again
                return  # its first outcome is in the study; one record per trial
            # Marked FAIL when an earlier run ended on an error; --resume ran it on: a record of its own.
            self._ot_study.add_trial(optuna.trial.create_trial(
                state=state, values=values, params=old.params, distributions=old.distributions,
                intermediate_values=(self._values.get(trial_id) or None) if len(self._objectives) == 1 else None,
                user_attrs={RAY_TRIAL_ID: trial_id, "resumed_from_trial": old.number, **attrs}))
            return
        trial = self._ot_trials[trial_id]
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        self._ot_study.tell(trial, values, state=state)

    # ------------------------------------------------------------ pickling (tuner.pkl, searcher-state-*.pkl)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if self._ot_study is not None:
            state["_sampler"] = self._ot_study.sampler  # with its random state
        state["_ot_trials"] = {tid: t.number for tid, t in self._ot_trials.items()}
        state.update(_storage=None, _ot_study=None, _closed={}, _orphans=[])
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        numbers, self._ot_trials = self._ot_trials, {}
        if not self._space:
            return
        self._storage = self._open_storage()  # at the restored experiment's study when restoring
        if not Path(self._db_path).is_file():  # SQLite would create an empty study there
            raise UserError(f"the Optuna study {self._db_path} is missing; restore the experiment directory "
                            "with its optuna.db")
        self._ot_study = optuna.load_study(study_name=self._study_name, storage=self._storage,
                                           sampler=self._sampler, pruner=optuna.pruners.NopPruner())
        storage, study_id = self._ot_study._storage, self._ot_study._study_id
        for tid, number in numbers.items():
            if tid in self._completed_trials:
                continue
            optuna_id = storage.get_trial_id_from_study_id_trial_number(study_id, number)
            frozen = storage.get_trial(optuna_id)
            if frozen.state.is_finished():
                self._closed[tid] = frozen
            else:
                self._ot_trials[tid] = optuna.trial.Trial(self._ot_study, optuna_id)
        # Trials asked for after Tune's last save are unknown to the Tune being restored: their points
        # go to the next trials Tune creates, so each study trial belongs to one Tune trial.
        known = set(numbers.values())
        running = self._ot_study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        self._orphans = [storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
                         for t in running if t.number not in known]

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__getstate__(), f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.__setstate__(pickle.load(f))


def constraint_values(trial: FrozenTrial) -> list[float]:
    """Optuna's constraints_func: the violations the searcher stored (<= 0: met)."""
    return [float(v) for v in trial.user_attrs.get(CONSTRAINTS_ATTR, [])]


def _step(result: dict) -> Optional[int]:
    epoch = result.get(EPOCH_KEY)
    return int(epoch) if isinstance(epoch, (int, float)) and math.isfinite(epoch) else None


class ExperimentSearchGenerator(SearchGenerator):
    """Tune's SearchGenerator whose restored experiment spec creates new trials in the restored
    directory, and whose number of trials is the one in the restored experiment's space.yaml.

    Tune moves the trials it restores to the directory being restored, but the spec it creates
    new trials from comes back from search_gen_state-*.json naming the directory of the run that
    saved it; a copied experiment would then write its new trials' results there.
    """

    def add_configurations(self, experiments: Any) -> None:
        # Tune adds the experiment only when it starts one; during a restore it means Tune failed
        # to read the saved state and would run the whole search again in the same directory.
        if _restoring is not None:
            raise UserError(f"Tune could not restore the search in {_restoring.path} (its error is logged above); "
                            "nothing was run")
        super().add_configurations(experiments)

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        exp = _restoring
        if exp is None:
            return
        # space.yaml holds the number of trials: `--extend` raises it, and a search extended and
        # then interrupted resumes with the raised number (Tune saved the old one).
        if exp.space.num_samples > self._total_samples:
            self._total_samples, self._finished = exp.space.num_samples, False
        if exp.local_dir is None or self._experiment is None:
            return
        storage = copy.copy(self._experiment.spec["storage"])
        storage.storage_fs_path = exp.storage_path
        storage.experiment_dir_name = exp.name
        self._experiment.spec["storage"] = self._experiment.storage = storage
