"""Resuming a search, and the Optuna study it keeps, on one real interrupted search.

The module's search runs five fixed trials of a tiny model through the CLI: two good learning
rates, a hopeless one ASHA stops at its rung (epoch 2), one that diverges in epoch 2 (lr = 1)
and one whose data file holds a NaN (it raises). Ctrl-C (SIGINT) stops it once two trials have ended. Each test resumes
a copy of it, so the original stays as the interrupted run left it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from conftest import ROOT, assert_user_error, free_port, run_cli, small_npz, tiny_config

MAX_T = 3
ENDED = ("COMPLETE", "PRUNED", "FAIL")  # enqueued points wait as WAITING, running trials are RUNNING


def _study_states(exp: Path) -> dict[str, int]:
    with sqlite3.connect(exp / "optuna.db") as db:
        return dict(db.execute("SELECT state, COUNT(*) FROM trials GROUP BY state").fetchall())


def _ended(exp: Path) -> int:
    try:
        return sum(n for s, n in _study_states(exp).items() if s in ENDED)
    except sqlite3.OperationalError:  # optuna.db is there, Optuna has not created its tables yet
        return 0


def _files(root: Path) -> dict[str, str]:
    """Every file under root with a hash of its bytes: what "untouched" compares."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("resume")
    good, bad = str(small_npz(tmp / "good.npz")), str(small_npz(tmp / "bad.npz", nan_row=3))
    base = tiny_config(tmp, data={"source": "file", "path": good}, viz={"num_samples": 2, "plot_spectrogram": False})
    base["trainer"].update(sample_every_epochs=100, log_every_steps=5)
    base["advanced"]["lr_warmup_steps"] = 0
    points = [{"optim.lr": 3e-3, "data.path": good}, {"optim.lr": 2e-3, "data.path": good},
              {"optim.lr": 1e-6, "data.path": good}, {"optim.lr": 1.0, "data.path": good},
              {"optim.lr": 2e-3, "data.path": bad}]
    space = {"base": base, "num_samples": 5, "max_concurrent": 2,
             "scheduler": {"max_t": MAX_T, "grace_period": 2, "reduction_factor": 2},
             "search": {"seed": 0, "n_startup_trials": 5, "points_to_evaluate": points},
             "params": {"optim.lr": {"dist": "loguniform", "low": 1e-6, "high": 1.0},
                        "data.path": {"dist": "choice", "values": [good, bad]}}}
    (tmp / "space.yaml").write_text(yaml.safe_dump(space, sort_keys=False))
    exp = tmp / "runs" / "orig"
    cmd = [sys.executable, "-m", "abr_tune.search", "--space", str(tmp / "space.yaml"), "--storage-path",
           str(exp.parent), "--name", exp.name, "--dashboard-port", str(free_port())]
    log = (tmp / "search.log").open("w")  # a file, not a pipe: Tune's live table would fill a pipe nobody reads
    proc = subprocess.Popen(cmd, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline and proc.poll() is None:
        if (exp / "optuna.db").is_file() and _ended(exp) >= 2:
            break
        time.sleep(0.3)
    os.kill(proc.pid, signal.SIGINT)  # Ctrl-C: Tune saves its state and the search says how to resume
    proc.wait(timeout=120)
    log.close()
    out = (tmp / "search.log").read_text()
    assert proc.returncode == 130, out[-3000:]
    assert "Search interrupted" in out and "--resume" in out
    return exp


def _resume(exp: Path, timeout: float = 200) -> subprocess.CompletedProcess:
    return run_cli("abr_tune.search", "--resume", str(exp), "--dashboard-port", str(free_port()), timeout=timeout)


def _first_values(trial_dir: Path) -> dict[int, float]:
    """{epoch: val/mse_v} from Tune's own per-result log, the first report of each epoch."""
    values: dict[int, float] = {}
    result = trial_dir / "result.json"
    for line in (result.read_text().splitlines() if result.is_file() else []):
        row = json.loads(line)
        if "val/mse_v" in row:
            values.setdefault(int(row["epoch"]), float(row["val/mse_v"]))
    return values


def _truth(trial: dict) -> tuple[str, float | None, dict[int, float]]:
    """What the study should hold for a trial, from Tune's results and train_abr's status only."""
    values = _first_values(Path(trial["trial_dir"]))
    if trial["status"].startswith(("error", "diverged")):
        return "FAIL", None, values
    if trial["stopped_early"]:
        return "PRUNED", values[max(values)], values  # Optuna stores a pruned trial's last value
    return "COMPLETE", min(values.values()), values


def _compare_study(exp: Path) -> list[tuple]:
    summary = json.loads((exp / "search_summary.json").read_text())
    study = optuna.load_study(study_name=summary["study"]["study_name"], storage=f"sqlite:///{exp / 'optuna.db'}")
    by_id = {t.user_attrs["ray_trial_id"]: t for t in study.trials}
    assert len(by_id) == len(study.trials) == len(summary["trials"]) == 5
    rows = []
    for trial in summary["trials"]:
        state, value, values = _truth(trial)
        got = by_id[trial["trial_id"]]
        assert got.state.name == state, (trial["trial_id"], trial["status"], got.state.name)
        assert got.intermediate_values == values, (trial["trial_id"], got.intermediate_values, values)
        assert (got.value is None) if value is None else math.isclose(got.value, value), (got.value, value)
        rows.append((got.number, trial["params"]["optim.lr"], trial["status"][:40], sorted(values), state, got.value))
    return rows


@pytest.mark.timeout(420)
def test_a_copied_experiment_resumes_into_its_own_study_and_the_study_records_what_ran(interrupted, tmp_path):
    before = _files(interrupted)
    copy = tmp_path / "copied"
    subprocess.run(["cp", "-a", str(interrupted), str(copy)], check=True)  # `cp -a A B`, as a user would
    proc = _resume(copy)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert _files(interrupted) == before  # not one byte of the original changed, its study included
    summary = json.loads((copy / "search_summary.json").read_text())
    assert summary["study"] == {"storage": f"sqlite:///{copy / 'optuna.db'}", "study_name": interrupted.name}
    assert all(Path(t["trial_dir"]).parent == copy for t in summary["trials"])
    assert all(Path(t["trial_dir"]).is_dir() for t in summary["trials"])

    rows = _compare_study(copy)  # every trial: state, value and per-epoch values as Tune saw them
    print("\n#  lr  status  epochs  study state  study value\n" + "\n".join(map(str, rows)))
    states = {state for *_, state, _ in rows}
    # completed, diverged and raised; PRUNED only where ASHA stopped a trial (checked per trial above:
    # whether ASHA stops one here depends on the order in which the resumed trials report)
    assert {"COMPLETE", "FAIL"} <= states <= {"COMPLETE", "PRUNED", "FAIL"}, rows
    assert _study_states(copy).get("RUNNING", 0) == 0

    # Resuming it again: it is finished, nothing runs and nothing is rewritten.
    written = (copy / "search_summary.json").stat().st_mtime_ns
    started = time.monotonic()
    again = _resume(copy, timeout=60)
    assert again.returncode == 0 and "already finished (5 trials); nothing to resume" in again.stdout, again.stdout
    assert "Resuming" not in again.stdout and time.monotonic() - started < 30
    assert (copy / "search_summary.json").stat().st_mtime_ns == written


@pytest.mark.timeout(300)
def test_a_moved_experiment_resumes_when_the_original_is_gone(interrupted, tmp_path):
    moved = tmp_path / "elsewhere" / "moved"
    shutil.copytree(interrupted, moved, symlinks=True)
    away = interrupted.with_name("orig.away")  # the original directory does not exist during the resume
    interrupted.rename(away)
    try:
        proc = _resume(moved)
        assert not interrupted.exists()  # nothing was re-created at the old path (SQLite would create an empty study)
    finally:
        away.rename(interrupted)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert _study_states(moved).get("RUNNING", 0) == 0 and sum(_study_states(moved).values()) == 5
    summary = json.loads((moved / "search_summary.json").read_text())
    assert summary["num_trials"] == 5 and all(Path(t["trial_dir"]).parent == moved for t in summary["trials"])


@pytest.mark.timeout(120)
def test_a_damaged_or_missing_study_is_refused_before_ray_starts(interrupted, tmp_path):
    cases = {"garbage": b"this is not a database" * 100, "truncated": (interrupted / "optuna.db").read_bytes()[:6000],
             "missing": None}
    fragments = {"garbage": "cannot be read (file is not a database)",
                 "truncated": "cannot be read (database disk image is malformed)",
                 "missing": "has no Optuna study (optuna.db is missing)"}
    for case, content in cases.items():
        exp = tmp_path / case
        shutil.copytree(interrupted, exp, symlinks=True)
        (exp / "optuna.db").unlink()
        if content is not None:
            (exp / "optuna.db").write_bytes(content)
        before, started = _files(exp), time.monotonic()
        proc = _resume(exp, timeout=60)
        assert_user_error(proc, fragments[case])
        assert time.monotonic() - started < 30, case  # refused before Ray starts
        assert _files(exp) == before  # nothing written, the damaged file included


def test_a_trial_recorded_as_failed_then_continued_by_a_resume_gets_a_record_of_its_own(tmp_path):
    """A search that ends on an error records its running trials as FAIL (Optuna cannot reopen
    them); when --resume continues one, its outcome is added as a trial naming the failed one."""
    from abr_tune.hpo.searcher import RAY_TRIAL_ID, OptunaStudySearch
    from abr_tune.hpo.space_file import parse_space
    from abr_tune.hpo.study import fail_unfinished

    space = parse_space({"params": {"optim.lr": {"dist": "loguniform", "low": 1e-4, "high": 1e-2}}})
    space.bind(space.trial_config({}, {}))
    db, saved = tmp_path / "optuna.db", tmp_path / "searcher-state.pkl"
    searcher = OptunaStudySearch(db_path=db, max_t=2, space=space.define_by_run, metric="val/mse_v", mode="min",
                                 study_name="s", sampler=optuna.samplers.RandomSampler(seed=0))
    params = searcher.suggest("t1")
    searcher.on_trial_result("t1", {"epoch": 1.0, "val/mse_v": 0.5})
    searcher.save(str(saved))
    assert fail_unfinished(db, "s") == 1  # the search ended on an error here

    restored = OptunaStudySearch.__new__(OptunaStudySearch)
    restored.restore(str(saved))
    restored.on_trial_result("t1", {"epoch": 2.0, "val/mse_v": 0.4})
    restored.on_trial_complete("t1", {"epoch": 2.0, "val/mse_v": 0.4})
    trials = optuna.load_study(study_name="s", storage=f"sqlite:///{db}").trials
    assert [(t.state.name, t.value, t.intermediate_values, t.params) for t in trials] == [
        ("FAIL", None, {1: 0.5}, params), ("COMPLETE", 0.4, {1: 0.5, 2: 0.4}, params)]
    assert trials[0].user_attrs == {RAY_TRIAL_ID: "t1"}
    assert trials[1].user_attrs == {RAY_TRIAL_ID: "t1", "resumed_from_trial": 0}


def test_a_searcher_state_cut_short_is_reported_before_a_resume(tmp_path):
    import pickle

    from abr_tune.hpo.plan import tune_state_problem

    (tmp_path / "experiment_state-2026-01-01_00-00-00.json").write_text('{"trials": []}')
    whole = pickle.dumps({"study": "s", "trials": list(range(50))})
    state = tmp_path / "searcher-state-2026-01-01_00-00-00.pkl"
    state.write_bytes(whole)
    assert tune_state_problem(tmp_path) is None
    state.write_bytes(whole[: len(whole) // 2])  # what a full disk leaves
    assert tune_state_problem(tmp_path) == f"Tune's searcher state {state} is damaged (cut short by a full disk?)"
    state.write_bytes(b"")
    assert "is damaged" in tune_state_problem(tmp_path)


def test_the_journal_free_fail_writes_what_optunas_tell_would(tmp_path):
    """The one place that writes Optuna's tables itself (for a full disk): Optuna reads its result back as
    FAIL with an end time, the other trials untouched; fails when Optuna's schema changes under it."""
    from abr_tune.hpo.study import _fail_in_place, study_name

    db = tmp_path / "optuna.db"
    storage = f"sqlite:///{db}"
    study = optuna.create_study(study_name="s", storage=storage)
    done, running = study.ask(), study.ask()
    study.tell(done, 0.3)
    other = optuna.create_study(study_name="other", storage=storage)
    other.ask()
    assert _fail_in_place(db, "s") == 1
    trials = optuna.load_study(study_name="s", storage=storage).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL"] and trials[1].datetime_complete is not None
    assert trials[1].number == running.number
    assert [t.state.name for t in optuna.load_study(study_name="other", storage=storage).trials] == ["RUNNING"]
    assert study_name(db, "other") == "other"  # Optuna's own name lookup


def test_a_sqlite_file_that_is_no_study_is_refused_and_left_as_it_was(tmp_path):
    import sqlite3

    from abr_tune.errors import UserError
    from abr_tune.hpo.study import study_name

    db = tmp_path / "optuna.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE notes (t TEXT)")
    before = db.read_bytes()
    with pytest.raises(UserError, match="cannot be read"):
        study_name(db, "s")
    assert db.read_bytes() == before  # Optuna wrote none of its tables into it
