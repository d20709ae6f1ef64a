"""kill -9 of a search mid-way, then --resume: every trial appears once in the study with its true
state, and the study and Tune's trials name the same trials.

Tune saves its state every second; a trial that finished after the last save is run again by the
restored Tune (its first outcome stays the study's record), a trial the study asked for after the
last save is given to the next trial Tune creates, and a trial that began and ended between two saves
is unknown to the restored Tune: the study keeps its record and its directory stays.
"""

from __future__ import annotations

import json
import signal
import time

import optuna
import pytest
import yaml
from background import Background
from conftest import free_port, search_base

from abr_tune.hpo.searcher import RAY_TRIAL_ID


@pytest.mark.timeout(600)
def test_kill_9_mid_search_then_resume_keeps_one_record_per_trial(tmp_path):
    space = {"base": search_base(tmp_path, max_epochs=4), "num_samples": 6, "max_concurrent": 2,
             "scheduler": {"max_t": 4, "grace_period": 1, "reduction_factor": 2},
             "search": {"seed": 0, "points_to_evaluate": ["base"]},
             "params": {"optim.lr": {"dist": "loguniform", "low": 1e-4, "high": 1e-2}}}
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(space, sort_keys=False))
    exp = tmp_path / "runs" / "k9"
    flags = ("--dashboard-port", str(free_port()))
    search = Background("abr_tune.search", "--space", str(tmp_path / "space.yaml"), "--storage-path",
                        str(tmp_path / "runs"), "--name", "k9", *flags)
    search.wait_for("started with configuration", count=3)
    _until_a_trial_is_mid_run_after_one_finished(exp, search)
    search.signal(signal.SIGKILL, group=False)  # the driver holds the study's writes: it is frozen from here
    search.kill_group()  # the Ray processes it started
    study = optuna.load_study(study_name="k9", storage=f"sqlite:///{exp / 'optuna.db'}")
    assert any(t.state == optuna.trial.TrialState.RUNNING for t in study.trials)  # the kill hit running trials

    resumed = Background("abr_tune.search", "--resume", str(exp), *flags)
    assert resumed.finish(timeout=500) == 0, resumed.output[-4000:]
    summary = json.loads((exp / "search_summary.json").read_text())
    trials = {t["trial_id"]: t for t in summary["trials"]}
    assert len(trials) == 6 and summary["interrupted"] is False
    study = optuna.load_study(study_name="k9", storage=f"sqlite:///{exp / 'optuna.db'}")
    ray_ids = [t.user_attrs.get(RAY_TRIAL_ID) for t in study.trials]
    recorded = [t for t in study.trials if t.user_attrs.get(RAY_TRIAL_ID) in trials]
    assert sorted(t.user_attrs[RAY_TRIAL_ID] for t in recorded) == sorted(trials), (ray_ids, list(trials))
    for frozen in study.trials:  # a trial that began and ended between two of Tune's saves before the kill
        if frozen not in recorded:  # is unknown to the restored Tune: the study keeps its record, and its files stay
            assert frozen.state.is_finished(), frozen
            assert list(exp.glob(f"trial_{frozen.user_attrs[RAY_TRIAL_ID]}_*/train")), frozen
    for frozen in recorded:  # one study trial per Tune trial, in the state Tune's results give it
        t = trials[frozen.user_attrs[RAY_TRIAL_ID]]
        assert "resumed_from_trial" not in frozen.user_attrs
        assert frozen.params == t["params"]
        expected = ("PRUNED" if t["stopped_early"] else "COMPLETE" if t["best_value"] is not None else "FAIL")
        assert frozen.state.name == expected, (frozen.state, t["status"])

    # The kill left directories of trials Tune forgot; an extension counts the trials the search planned.
    extend = Background("abr_tune.search", "--extend", str(exp), "--num-samples", "1", *flags)
    extend.wait_for("Extending experiment")
    extend.kill_group()
    assert f"Extending experiment {exp}: 1 more trials (6 -> 7)" in extend.output


def _until_a_trial_is_mid_run_after_one_finished(exp, search: Background, timeout: float = 180) -> None:
    """Polls the study (a fixed sleep raced the trials on a fast machine: all had finished) until one
    trial has finished and another has reported an epoch and is still running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and search.proc.poll() is None:
        trials = optuna.load_study(study_name="k9", storage=f"sqlite:///{exp / 'optuna.db'}").trials
        running = [t for t in trials if t.state == optuna.trial.TrialState.RUNNING and t.intermediate_values]
        if running and any(t.state.is_finished() for t in trials):
            return
        time.sleep(0.05)
    search.kill_group()
    raise AssertionError(f"no trial was mid-run after another finished; output:\n{search.output[-4000:]}")
