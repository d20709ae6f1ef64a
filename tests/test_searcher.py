"""The searcher on Tune's public Searcher over Optuna's ask/tell, driven as Tune drives it (no Ray):
the study's truth per trial, the points run first, and a saved state that continues elsewhere."""

from __future__ import annotations

import math
import pickle
import shutil

import optuna
import pytest

from abr_tune.errors import UserError
from abr_tune.hpo.layout import Experiment
from abr_tune.hpo.objectives import Constraint
from abr_tune.hpo.searcher import RAY_TRIAL_ID, OptunaStudySearch
from abr_tune.hpo.space_file import parse_space
from abr_tune.hpo.tune_restore import restoring
from abr_tune.metrics_registry import SAMPLED

LR = {"optim.lr": {"dist": "loguniform", "low": 1e-4, "high": 1e-2}}


def _space():
    space = parse_space({"params": LR})
    space.bind(space.trial_config({}, {}))
    return space


def _searcher(db, *, metric="val/mse_v", mode="min", **kwargs):
    return OptunaStudySearch(db_path=db, max_t=3, space=_space().define_by_run, metric=metric, mode=mode,
                             study_name="s", sampler=optuna.samplers.RandomSampler(seed=0), **kwargs)


def _study(db):
    return optuna.load_study(study_name="s", storage=f"sqlite:///{db}")


def _run(searcher, tid, values, *, complete=None, error=False):
    """Tune's calls for one trial: a result per epoch; `complete` is the result it ends on (None: the last)."""
    searcher.suggest(tid)
    results = [{"epoch": float(e), "val/mse_v": v, "diverged": False} for e, v in enumerate(values, 1)]
    for r in results:
        searcher.on_trial_result(tid, r)
    searcher.on_trial_complete(tid, complete if complete is not None else (results[-1] if results else None),
                               error=error)


def test_the_study_records_each_epoch_and_the_true_outcome_of_each_trial(tmp_path):
    db = tmp_path / "optuna.db"
    searcher = _searcher(db, points_to_evaluate=[{"optim.lr": 1e-3}])
    assert searcher.suggest("t0") == {"optim.lr": 1e-3}  # the point to evaluate comes first
    for e, v in enumerate([0.5, 0.3, 0.4], 1):
        searcher.on_trial_result("t0", {"epoch": float(e), "val/mse_v": v})
    searcher.on_trial_complete("t0", {"epoch": 3.0, "val/mse_v": 0.4})  # ran to max_t: best epoch, not last
    # ASHA stopped it at epoch 2: that result reaches on_trial_complete only
    _run(searcher, "t1", [0.9], complete={"epoch": 2.0, "val/mse_v": 0.8})
    _run(searcher, "t2", [0.7], error=True, complete={})  # raised
    _run(searcher, "t3", [0.6, math.inf], complete={"epoch": 2.0, "val/mse_v": math.inf, "diverged": True})
    _run(searcher, "t4", [])  # stopped before it reported an epoch
    searcher.on_trial_result("t0", {"epoch": 4.0, "val/mse_v": 0.1})  # after its end: ignored
    trials = _study(db).trials
    assert [(t.state.name, t.value) for t in trials] == [
        ("COMPLETE", 0.3), ("PRUNED", 0.8), ("FAIL", None), ("FAIL", None), ("PRUNED", None)]
    assert trials[0].intermediate_values == {1: 0.5, 2: 0.3, 3: 0.4}
    assert trials[1].intermediate_values == {1: 0.9, 2: 0.8}
    assert [t.user_attrs[RAY_TRIAL_ID] for t in trials] == ["t0", "t1", "t2", "t3", "t4"]
    assert all(t.params["optim.lr"] > 0 for t in trials)


def test_a_pareto_trial_is_valued_at_one_epoch_with_its_constraint_violation(tmp_path):
    db = tmp_path / "optuna.db"
    metrics, modes = ["val/mse_v", "sample/c2st_acc"], ["min", "min"]
    searcher = _searcher(db, metric=metrics, mode=modes, constraints=(Constraint("val/mse_v", "<=", 0.35),))
    searcher.suggest("t0")
    rows = [{"epoch": 1.0, "val/mse_v": 0.3},  # no sample metric: not a valued epoch
            {"epoch": 2.0, "val/mse_v": 0.4, "sample/c2st_acc": 0.7, SAMPLED: 0.0},
            {"epoch": 3.0, "val/mse_v": 0.45, "sample/c2st_acc": 0.6, SAMPLED: 0.0}]
    for r in rows:
        searcher.on_trial_result("t0", r)
    searcher.on_trial_complete("t0", rows[-1])
    (trial,) = _study(db).trials
    assert trial.state.name == "COMPLETE" and trial.values == [0.4, 0.7]
    assert trial.intermediate_values == {}  # Optuna keeps none with several objectives
    assert trial.user_attrs["valued_epoch"] == 2
    assert trial.user_attrs["constraints"] == pytest.approx([0.05])


def test_the_saved_state_is_the_study_location_and_the_trial_map_and_continues_in_a_moved_copy(tmp_path):
    db = tmp_path / "a" / "optuna.db"
    db.parent.mkdir()
    searcher = _searcher(db)
    _run(searcher, "t0", [0.5, 0.4, 0.3])  # told before the save
    params = searcher.suggest("t1")
    searcher.on_trial_result("t1", {"epoch": 1.0, "val/mse_v": 0.6})  # running at the save
    saved = tmp_path / "a" / "searcher-state.pkl"
    searcher.save(str(saved))
    state = pickle.loads(saved.read_bytes())
    assert state["db_path"] == str(db) and state["study_name"] == "s" and state["trials"] == {"t0": 0, "t1": 1}
    forgotten = searcher.suggest("t2")  # asked after Tune's last save, then a kill: the restored Tune never heard of t2
    pickle.dumps(searcher)  # tuner.pkl pickles the searcher itself: no open database in it

    shutil.copytree(tmp_path / "a", tmp_path / "b")  # the experiment copied, then resumed from the copy
    exp = Experiment(_space(), "b", str(tmp_path))
    with restoring(exp):
        restored = OptunaStudySearch.__new__(OptunaStudySearch)
        restored.restore(str(tmp_path / "b" / "searcher-state.pkl"))
    assert restored.get_state()["db_path"] == str(tmp_path / "b" / "optuna.db")
    assert restored.suggest("t1") == params  # a restored trial keeps its params
    restored.on_trial_result("t1", {"epoch": 2.0, "val/mse_v": 0.5})
    restored.on_trial_complete("t1", {"epoch": 3.0, "val/mse_v": 0.55})
    assert restored.suggest("t3") == forgotten  # Tune's next new trial runs the forgotten trial's point
    restored.on_trial_complete("t3", {"epoch": 3.0, "val/mse_v": 0.2})
    # then a new one: the sampler's saved random state would draw the forgotten trial's point again
    assert restored.suggest("t4") != forgotten
    copy = _study(tmp_path / "b" / "optuna.db").trials
    assert [(t.number, t.user_attrs[RAY_TRIAL_ID], t.state.name) for t in copy] == [
        (0, "t0", "COMPLETE"), (1, "t1", "COMPLETE"), (2, "t3", "COMPLETE"), (3, "t4", "RUNNING")]
    assert copy[1].intermediate_values == {1: 0.6, 2: 0.5, 3: 0.55} and copy[1].value == 0.5
    assert [t.state.name for t in _study(db).trials] == ["COMPLETE", "RUNNING", "RUNNING"]  # the original untouched

    (tmp_path / "b" / "optuna.db").unlink()
    with restoring(exp), pytest.raises(UserError, match="optuna.db is missing"):
        OptunaStudySearch.__new__(OptunaStudySearch).restore(str(tmp_path / "b" / "searcher-state.pkl"))


def test_a_restore_creates_tunes_new_trials_in_the_restored_experiment_with_its_saved_number_of_trials(tmp_path):
    """Tune's search generator saves the key `restored_state` rewrites (this fails when Tune renames it),
    and the generator it restores creates the next trial under the restored directory (an extension's too)."""
    from ray.tune.experiment import Experiment as TuneExperiment
    from ray.tune.search import SearchGenerator

    from abr_tune.hpo.tune_restore import EXPERIMENT, ExperimentSearchGenerator, restored_state

    (tmp_path / "a").mkdir()
    saved = SearchGenerator(_searcher(tmp_path / "a" / "optuna.db"))
    saved.add_configurations(TuneExperiment("a", run=lambda config: None, num_samples=4, storage_path=str(tmp_path)))
    state = saved.get_state()
    assert EXPERIMENT in state

    moved = Experiment(parse_space({"params": LR, "num_samples": 6}), "b", str(tmp_path / "moved"))
    assert restored_state(state, None) is state  # a new search: Tune's state as it is
    restored = ExperimentSearchGenerator(_searcher(tmp_path / "a" / "optuna.db"))
    with restoring(moved):
        restored.set_state(state)  # as Tune restores it from search_gen_state-*.json
    assert restored.total_samples == 4 and not restored.is_finished()  # Tune's own count (space.yaml says 6)
    trial = restored.next_trial()
    assert trial.storage.experiment_fs_path == str(tmp_path / "moved" / "b")
    assert state[EXPERIMENT].storage.experiment_fs_path == str(tmp_path / "a")  # the saved state left as it was
    extension = Experiment(parse_space({"params": LR}), "b", str(tmp_path / "moved"), run="extend_2")
    again = ExperimentSearchGenerator(_searcher(tmp_path / "a" / "optuna.db"))
    with restoring(extension):
        again.set_state(state)
    assert again.next_trial().storage.experiment_fs_path == str(tmp_path / "moved" / "b" / "extend_2")


def test_a_searcher_saved_before_it_stood_on_tunes_public_searcher_resumes(tmp_path):
    """An experiment interrupted before the upgrade: the state the OptunaSearch subclass pickled (its
    attribute names) continues its trials, and its tuner.pkl finds the search generator where it was."""
    import abr_tune.hpo.searcher as module
    from abr_tune.hpo.tune_restore import ExperimentSearchGenerator

    db = tmp_path / "optuna.db"
    first = _searcher(db)
    params = first.suggest("t1")
    first.on_trial_result("t1", {"epoch": 1.0, "val/mse_v": 0.7})
    earlier = {"_db_path": str(db), "_study_name": "s", "_metric": "val/mse_v", "_mode": "min", "_max_t": 3,
               "_constraints": (), "_space": _space().define_by_run, "_sampler": optuna.samplers.RandomSampler(),
               "_ot_trials": {"t1": 0}, "_completed_trials": set(), "_values": {"t1": {1: 0.7}},
               "_rows": {"t1": {1: {"epoch": 1, "val/mse_v": 0.7}}}, "_storage": None, "_ot_study": None,
               "_closed": {}, "_orphans": [], "_points_to_evaluate": [], "_evaluated_rewards": None, "_seed": None}
    restored = OptunaStudySearch.__new__(OptunaStudySearch)
    restored.set_state(earlier)
    assert restored.suggest("t1") == params
    restored.on_trial_complete("t1", {"epoch": 3.0, "val/mse_v": 0.6})
    (trial,) = _study(db).trials
    assert (trial.state.name, trial.value, trial.intermediate_values) == ("COMPLETE", 0.6, {1: 0.7, 3: 0.6})
    assert module.ExperimentSearchGenerator is ExperimentSearchGenerator
