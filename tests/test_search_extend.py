"""Growing a search: --extend adds trials to a finished search as a new Tune experiment inside it
(DIR/extend_2/, ...) over the same Optuna study, --warm-start seeds a new search with an earlier
experiment's best configurations; ASHA's rungs hold the earlier trials' results.

One tiny finished search (2 trials) is extended by 2 trials through the CLI on a real local Ray,
once per module; an extension of that, stopped with Ctrl-C, is resumed; the warm start reads the
same search.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
import yaml
from conftest import ROOT, assert_user_error, free_port, run_cli, run_search, search_base


def _study(exp: Path) -> list[optuna.trial.FrozenTrial]:
    summary = json.loads((exp / "search_summary.json").read_text())
    return optuna.load_study(study_name=summary["study"]["study_name"],
                             storage=f"sqlite:///{exp / 'optuna.db'}").trials


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _first_values(trial_dir: Path) -> dict[int, float]:
    """{epoch: val/mse_v} from Tune's per-result log of the trial, the first report of each epoch."""
    values: dict[int, float] = {}
    for line in (trial_dir / "result.json").read_text().splitlines():
        row = json.loads(line)
        if "val/mse_v" in row:
            values.setdefault(int(row["epoch"]), float(row["val/mse_v"]))
    return values


def _ranked_ids(stdout: str) -> list[str]:
    """The trial ids of the ranked table the search printed last."""
    table = stdout.rsplit("Trials ranked by", 1)[1].split("\n\n", 1)[0].splitlines()[3:]
    return [line.split()[1] for line in table if line.strip() and line.split()[0].isdigit()]


def _tune_trials(path: Path) -> list:
    from ray import tune

    return tune.ExperimentAnalysis(str(path)).trials


@pytest.fixture(scope="module")
def searched(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("extend")
    space = {
        "base": search_base(tmp), "num_samples": 2, "max_concurrent": 2,
        "scheduler": {"max_t": 2, "grace_period": 1, "reduction_factor": 2},
        "search": {"seed": 0, "n_startup_trials": 2, "points_to_evaluate": ["base"]},
        "params": {"optim.lr": {"dist": "loguniform", "low": 1e-4, "high": 1e-2},
                   "loss.stft_weight": {"dist": "uniform", "low": 0.0, "high": 0.3}},
    }
    exp, _ = run_search(tmp, space, name="first")
    return tmp, exp


@pytest.fixture(scope="module")
def extended(searched, tmp_path_factory) -> tuple:
    _, exp = searched
    grown = tmp_path_factory.mktemp("extended") / "grown"
    shutil.copytree(exp, grown, symlinks=True)
    before = {"study": [(t.number, t.state, t.value, t.params, t.intermediate_values) for t in _study(grown)],
              # the search's own Tune experiment: its state, trials and space (the summary's files are rewritten)
              "files": {p: h for p, h in _hashes(grown).items()
                        if not p.startswith(("report/", "search_summary", "best_config", "optuna.db"))}}
    proc = run_cli("abr_tune.search", "--extend", str(grown), "--num-samples", "2",
                   "--dashboard-port", str(free_port()), timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return exp, grown, before, proc


@pytest.mark.timeout(600)
def test_extend_runs_a_new_tune_experiment_over_the_same_study_and_everything_covers_all_trials(extended):
    _, grown, before, proc = extended
    assert (f"Extending experiment {grown}: 2 more trials (2 -> 4) in a new Tune experiment, {grown / 'extend_2'}"
            in proc.stdout)
    # A Tune experiment of its own, of the 2 new trials only; the search's own Tune experiment is left as it was.
    new = _tune_trials(grown / "extend_2")
    assert len(new) == 2 and all(t.status == "TERMINATED" for t in new)
    assert {t.trial_id for t in _tune_trials(grown)}.isdisjoint({t.trial_id for t in new})
    after = _hashes(grown)
    assert {p: after.get(p) for p in before["files"]} == before["files"]
    assert yaml.safe_load((grown / "space.yaml").read_text())["num_samples"] == 2
    assert yaml.safe_load((grown / "extend_2" / "space.yaml").read_text())["num_samples"] == 2
    # One study: numbers continue, the earlier rows untouched, each epoch's value recorded for the new trials.
    trials = _study(grown)
    assert [t.number for t in trials] == [0, 1, 2, 3]
    assert all(t.state.is_finished() for t in trials)
    assert [(t.number, t.state, t.value, t.params, t.intermediate_values) for t in trials[:2]] == before["study"]
    summary = json.loads((grown / "search_summary.json").read_text())
    dirs = {t["trial_id"]: Path(t["trial_dir"]) for t in summary["trials"]}
    for t in trials[2:]:
        trial_dir = dirs[t.user_attrs["ray_trial_id"]]
        assert trial_dir.parent == grown / "extend_2"  # its checkpoints and TensorBoard run live there
        assert (trial_dir / "train").is_dir()
        assert t.intermediate_values == _first_values(trial_dir)
    assert summary["num_trials"] == summary["num_samples"] == 4 and not summary["interrupted"]
    assert summary["extensions"] == [{"dir": str(grown / "extend_2"), "num_samples": 2}]
    assert set(dirs) == {t.user_attrs["ray_trial_id"] for t in trials}
    assert sorted(_ranked_ids(proc.stdout)) == sorted(dirs)
    html = (grown / "report" / "index.html").read_text()
    assert all(t in html for t in dirs)
    assert "Trials: 4 run of 4" in (grown / "report" / "summary.md").read_text()
    # Finished again: a --resume has nothing to do, another --extend would add trials.
    again = run_cli("abr_tune.search", "--resume", str(grown), timeout=60)
    assert again.returncode == 0 and "already finished (4 trials)" in again.stdout
    assert f"--extend {grown}" in again.stdout


@pytest.mark.timeout(600)
def test_an_interrupted_extension_is_resumed_by_resume_dir(extended, tmp_path):
    """Ctrl-C once the extension's first trial has ended; `--resume DIR` continues extend_3, not the search."""
    _, grown, _, _ = extended
    exp = tmp_path / "again"
    shutil.copytree(grown, exp, symlinks=True)
    cmd = [sys.executable, "-m", "abr_tune.search", "--extend", str(exp), "--num-samples", "2", "--max-concurrent",
           "1", "--dashboard-port", str(free_port())]
    log = (tmp_path / "extend.log").open("w")  # a file, not a pipe: Tune's live table would fill a pipe
    proc = subprocess.Popen(cmd, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 200
    while time.monotonic() < deadline and proc.poll() is None:
        if sum(t.state.is_finished() for t in _study(exp)) >= 5:
            break
        time.sleep(0.3)
    os.kill(proc.pid, signal.SIGINT)
    proc.wait(timeout=120)
    log.close()
    out = (tmp_path / "extend.log").read_text()
    assert proc.returncode == 130, out[-3000:]
    assert "Search interrupted: 5 of 6 trials finished" in out and f"--resume {exp}" in out
    assert_user_error(run_cli("abr_tune.search", "--extend", str(exp), timeout=60),
                      f"is not a finished search; continue it with --resume {exp} first")
    resumed = run_cli("abr_tune.search", "--resume", str(exp), "--dashboard-port", str(free_port()), timeout=300)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert f"Resuming experiment {exp / 'extend_3'}" in resumed.stdout
    trials = _study(exp)
    assert [t.number for t in trials] == list(range(6)) and all(t.state.is_finished() for t in trials)
    assert len(_tune_trials(exp / "extend_3")) == 2 and len(_tune_trials(exp / "extend_2")) == 2
    summary = json.loads((exp / "search_summary.json").read_text())
    assert summary["num_trials"] == 6 and not summary["interrupted"]
    assert {t["trial_id"] for t in summary["trials"]} == {t.user_attrs["ray_trial_id"] for t in trials}
    assert len(_ranked_ids(resumed.stdout)) == 6


@pytest.mark.timeout(120)
def test_extend_refuses_what_it_cannot_honour(extended, tmp_path):
    exp, grown, _, _ = extended
    from abr_tune.hpo.plan import plan_extend
    from abr_tune.search import build_parser

    # What an extension may change: how many more trials, how many at once, the confirmation.
    planned = plan_extend(build_parser().parse_args(["--extend", str(grown), "--num-samples", "3", "--confirm-top",
                                                     "1", "--confirm-seeds", "2", "--max-concurrent", "1"]))
    assert (planned.run, planned.space.num_samples, planned.total_samples) == ("extend_3", 3, 7)
    assert planned.space.max_concurrent == 1 and planned.space.search.seed == 2  # its own sampler seed
    assert (planned.space.confirm.top_k, planned.space.confirm.seeds) == (1, 2)
    assert not (grown / "extend_3").exists()  # planning writes nothing
    assert_user_error(run_cli("abr_tune.search", "--extend", str(grown), "--max-epochs", "4", timeout=60),
                      "--max-epochs cannot change the space of a search being extended")
    assert_user_error(run_cli("abr_tune.search", "--extend", str(grown), "--resume", str(grown), timeout=60),
                      "give --resume DIR or --extend DIR, not both")
    unfinished = tmp_path / "unfinished"
    shutil.copytree(exp, unfinished, symlinks=True)
    summary = json.loads((unfinished / "search_summary.json").read_text())
    (unfinished / "search_summary.json").write_text(json.dumps({**summary, "interrupted": True}))
    before = _hashes(unfinished)
    assert_user_error(run_cli("abr_tune.search", "--extend", str(unfinished), timeout=60),
                      f"is not a finished search; continue it with --resume {unfinished} first")
    assert _hashes(unfinished) == before


def test_warm_start_runs_the_earlier_best_configurations_first(searched, capsys):
    """Planned in-process (what Ray then runs is the space's points_to_evaluate, tested elsewhere)."""
    from abr_tune.hpo.plan import plan_new
    from abr_tune.search import build_parser

    tmp, exp = searched
    summary = json.loads((exp / "search_summary.json").read_text())
    best = next(t for t in summary["trials"] if not t["is_reference"] and t["best_value"] is not None)  # ranked
    # A new space: the same lr range, ema_decay new, the STFT weight no longer searched.
    space = {"base": search_base(tmp), "num_samples": 2, "search": {"seed": 1, "points_to_evaluate": ["base"]},
             "params": {"optim.lr": {"dist": "loguniform", "low": 1e-4, "high": 1e-2},
                        "optim.ema_decay": {"dist": "choice", "values": [0.9, 0.99]}}}
    (tmp / "warm.yaml").write_text(yaml.safe_dump(space))
    args = build_parser().parse_args(["--space", str(tmp / "warm.yaml"), "--storage-path", str(tmp / "warm"),
                                      "--warm-start", str(exp), "--warm-start-top", "1"])
    planned = plan_new(args)
    notice = capsys.readouterr().err
    assert "abr-tune: notice: warm start: 1 earlier configurations run first" in notice
    assert f"{exp} {best['trial_id']}: optim.lr=" in notice  # the earlier search's best other than its base
    assert "loss.stft_weight=" in notice and "is not searched here" in notice
    assert planned.space.search.points_to_evaluate == ["base", {"optim.lr": best["params"]["optim.lr"]}]

    narrow = {**space, "search": {"seed": 1},  # (the base's own lr is outside this range too)
              "params": {**space["params"], "optim.lr": {"dist": "loguniform", "low": 1e-5, "high": 2e-5}}}
    (tmp / "narrow.yaml").write_text(yaml.safe_dump(narrow))
    args = build_parser().parse_args(["--space", str(tmp / "narrow.yaml"), "--storage-path", str(tmp / "warm"),
                                      "--warm-start", str(exp), "--warm-start-top", "1"])
    assert plan_new(args).space.search.points_to_evaluate == []  # the lr does not fit: nothing carried
    assert "skipped, no value fits this space" in capsys.readouterr().err
    assert not (tmp / "warm").exists()  # planning writes nothing


def test_warm_start_from_a_directory_that_is_no_search_is_refused(tmp_path):
    proc = run_cli("abr_tune.search", "--space", str(ROOT / "search_spaces" / "lr_stft.yaml"), "--warm-start",
                   str(tmp_path), "--storage-path", str(tmp_path / "runs"), timeout=60)
    assert_user_error(proc, f"--warm-start '{tmp_path}' is not a finished abr-tune search")
    assert not (tmp_path / "runs").exists()


def test_restored_asha_cuts_new_trials_against_the_earlier_trials_rungs(tmp_path):
    """Tune keeps no scheduler state: without the refill the first new trial at a rung always continues."""
    from ray.tune.schedulers import TrialScheduler

    from abr_tune.hpo.scheduler import RestoredASHA

    def trial(name: str, values: dict[int, float] | None) -> SimpleNamespace:
        path = tmp_path / name
        if values is not None:
            path.mkdir()
            rows = [json.dumps({"epoch": e, "val/mse_v": v}) for e, v in values.items()]
            (path / "result.json").write_text("\n".join(rows) + "\n{\"epoch\": 3, \"val/")  # cut mid-write
        return SimpleNamespace(trial_id=name, path=str(path),
                               storage=SimpleNamespace(trial_dir_name=name if values is not None else None))

    asha = RestoredASHA(time_attr="epoch", metric="val/mse_v", mode="min", max_t=4, grace_period=1,
                        reduction_factor=2, stop_last_trials=False)
    for i, v in enumerate([0.5, 0.6, 0.7]):  # earlier trials, restored from their result.json
        asha.on_trial_add(None, trial(f"old{i}", {1: v, 2: v - 0.1}))
    new = trial("new", None)
    asha.on_trial_add(None, new)
    assert asha.on_trial_result(None, new, {"epoch": 1, "val/mse_v": 0.9}) == TrialScheduler.STOP
    plain = RestoredASHA(time_attr="epoch", metric="val/mse_v", mode="min", max_t=4, grace_period=1,
                         reduction_factor=2, stop_last_trials=False)
    plain.on_trial_add(None, new)  # no history: the same result continues
    assert plain.on_trial_result(None, new, {"epoch": 1, "val/mse_v": 0.9}) == TrialScheduler.CONTINUE
    late = RestoredASHA(time_attr="epoch", max_t=4, grace_period=1, reduction_factor=2, stop_last_trials=False)
    assert late.set_search_properties("val/mse_v", "min")  # how Tune hands the metric to the scheduler
    for i, v in enumerate([0.5, 0.6, 0.7]):
        late.on_trial_add(None, trial(f"late{i}", {1: v}))
    late.on_trial_add(None, trial("new2", None))
    assert late.on_trial_result(None, trial("new2", None), {"epoch": 1, "val/mse_v": 0.9}) == TrialScheduler.STOP


def test_restored_asha_stops_again_a_trial_tune_had_stopped_before_the_kill(tmp_path):
    """Tune's last save can predate ASHA's stop of a trial: the restored Tune runs it again from its
    checkpoint, past the rung that stopped it. Its result.json holds the stop (`done` before max_t) when
    Tune copied it after the stop; the study's PRUNED record always does."""
    import optuna
    from ray.tune.schedulers import TrialScheduler

    from abr_tune.hpo.layout import Experiment
    from abr_tune.hpo.scheduler import RestoredASHA
    from abr_tune.hpo.searcher import RAY_TRIAL_ID
    from abr_tune.hpo.tune_restore import restoring

    def restored(name: str, rows: list[dict]) -> SimpleNamespace:
        (tmp_path / name).mkdir()
        (tmp_path / name / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return SimpleNamespace(trial_id=name, path=str(tmp_path / name), storage=SimpleNamespace(trial_dir_name=name))

    asha = RestoredASHA(time_attr="epoch", metric="val/mse_v", mode="min", max_t=4, grace_period=1,
                        reduction_factor=2, stop_last_trials=False)
    stopped = restored("stopped", [{"epoch": 1, "val/mse_v": 0.9, "done": False},
                                   {"epoch": 2, "val/mse_v": 0.8, "done": True}])
    running = restored("running", [{"epoch": 1, "val/mse_v": 0.5, "done": False},
                                   {"epoch": 2, "val/mse_v": 0.4, "done": False}])
    finished = restored("finished", [{"epoch": 4, "val/mse_v": 0.3, "done": True}])  # ran to max_t
    # Stopped after Tune's last copy of result.json to the experiment: only the study records the stop.
    late = restored("late", [{"epoch": 1, "val/mse_v": 0.9, "done": False}])
    exp = Experiment(space=None, name="k9", storage_path=str(tmp_path))
    exp.local_dir.mkdir()
    study = optuna.create_study(study_name="k9", storage=f"sqlite:///{exp.study_db}")
    for tid, state in (("late", optuna.trial.TrialState.PRUNED), ("running", optuna.trial.TrialState.RUNNING)):
        trial = study.ask()
        trial.set_user_attr(RAY_TRIAL_ID, tid)
        trial.report(0.9, 1)
        if state != optuna.trial.TrialState.RUNNING:
            study.tell(trial, state=state)
    with restoring(exp):
        for t in (stopped, running, finished, late):
            asha.on_trial_add(None, t)
    assert asha.on_trial_result(None, stopped, {"epoch": 3, "val/mse_v": 0.1}) == TrialScheduler.STOP
    assert asha.on_trial_result(None, late, {"epoch": 2, "val/mse_v": 0.1}) == TrialScheduler.STOP
    assert asha.on_trial_result(None, running, {"epoch": 3, "val/mse_v": 0.35}) == TrialScheduler.CONTINUE
    assert asha.ended == {"stopped", "late"}


def test_asha_of_an_extension_cuts_its_trials_against_the_earlier_tune_experiments():
    """An extension's ASHA is seeded with the earlier trials' (epoch, value) when it learns the metric; seeding
    again (Tune hands the metric again when it restores an interrupted extension) records nothing twice."""
    from ray.tune.schedulers import TrialScheduler

    from abr_tune.hpo.scheduler import RestoredASHA

    earlier = [(f"old{i}", [(1, v), (2, v - 0.1)]) for i, v in enumerate([0.5, 0.6, 0.7])]
    settings = {"time_attr": "epoch", "max_t": 4, "grace_period": 1, "reduction_factor": 2, "stop_last_trials": False}
    for metric_given in (True, False):
        asha = RestoredASHA(**settings, earlier=earlier,
                            **({"metric": "val/mse_v", "mode": "min"} if metric_given else {}))
        asha.set_search_properties(None if metric_given else "val/mse_v", None if metric_given else "min")
        asha.set_search_properties("val/mse_v", "min")  # refused (the metric is set), seeds again: no change
        worse, better = (SimpleNamespace(trial_id=n, storage=SimpleNamespace(trial_dir_name=None))  # new trials
                         for n in ("worse", "better"))
        for t in (worse, better):
            asha.on_trial_add(None, t)
        assert asha.on_trial_result(None, worse, {"epoch": 1, "val/mse_v": 0.65}) == TrialScheduler.STOP
        # the rung's cutoff is the median of the three earlier trials and `worse` (0.5, 0.6, 0.65, 0.7): 0.625
        # (each earlier trial recorded twice would make it 0.6 and stop this one)
        assert asha.on_trial_result(None, better, {"epoch": 1, "val/mse_v": 0.61}) == TrialScheduler.CONTINUE
    plain = RestoredASHA(**settings, metric="val/mse_v", mode="min")
    first = SimpleNamespace(trial_id="first", storage=SimpleNamespace(trial_dir_name=None))
    plain.on_trial_add(None, first)
    assert plain.on_trial_result(None, first, {"epoch": 1, "val/mse_v": 0.65}) == TrialScheduler.CONTINUE


def test_a_second_confirmation_goes_beside_the_first(tmp_path):
    from abr_tune.hpo.confirm_run import stage_dir
    from abr_tune.hpo.layout import Experiment
    from abr_tune.hpo.space_file import parse_space

    exp = Experiment(parse_space({"params": {"optim.lr": {"dist": "loguniform", "low": 1e-4, "high": 1e-2}}}),
                     "exp", str(tmp_path))
    exp.local_dir.mkdir()
    assert stage_dir(exp) == "confirm"
    (exp.local_dir / "confirm").mkdir()
    assert stage_dir(exp) == "confirm_2"
    (exp.local_dir / "confirm_2").mkdir()
    assert stage_dir(exp) == "confirm_3"
