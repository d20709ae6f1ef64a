"""Growing a search: --extend adds trials to a finished search, --warm-start seeds a new one
with an earlier experiment's best configurations; ASHA's rungs survive the restore.

One tiny finished search (3 trials) is extended by 2 trials through the CLI on a real local Ray,
once per module; the warm start reads the same search.
"""

from __future__ import annotations

import hashlib
import json
import shutil
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


@pytest.fixture(scope="module")
def searched(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("grow")
    space = {
        "base": search_base(tmp), "num_samples": 3, "max_concurrent": 2,
        "scheduler": {"max_t": 2, "grace_period": 1, "reduction_factor": 2},
        "search": {"seed": 0, "n_startup_trials": 3, "points_to_evaluate": ["base"]},
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
    before = {"study": [(t.number, t.state, t.value, t.params) for t in _study(grown)],
              "trials": {d.name: _hashes(d) for d in grown.glob("trial_*")}}
    proc = run_cli("abr_tune.search", "--extend", str(grown), "--num-samples", "2",
                   "--dashboard-port", str(free_port()), timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return exp, grown, before, proc


@pytest.mark.timeout(600)
def test_extend_adds_trials_to_the_same_study_and_the_report_covers_them_all(extended):
    _, grown, before, proc = extended
    assert f"Extending experiment {grown}: 2 more trials (3 -> 5)" in proc.stdout
    trials = _study(grown)
    assert [t.number for t in trials] == [0, 1, 2, 3, 4]
    assert all(t.state.is_finished() for t in trials)
    # The earlier trials are the same study rows, untouched; their directories are byte for byte the same.
    assert [(t.number, t.state, t.value, t.params) for t in trials[:3]] == before["study"]
    assert {d.name: _hashes(d) for d in grown.glob("trial_*") if d.name in before["trials"]} == before["trials"]
    summary = json.loads((grown / "search_summary.json").read_text())
    assert summary["num_trials"] == 5 and not summary["interrupted"]
    assert {t["trial_id"] for t in summary["trials"]} == {t.user_attrs["ray_trial_id"] for t in trials}
    assert yaml.safe_load((grown / "space.yaml").read_text())["num_samples"] == 5
    html = (grown / "report" / "index.html").read_text()
    assert all(t["trial_id"] in html for t in summary["trials"])
    # Finished again: a --resume has nothing to do, another --extend would add trials.
    again = run_cli("abr_tune.search", "--resume", str(grown), timeout=60)
    assert again.returncode == 0 and "already finished (5 trials)" in again.stdout
    assert f"--extend {grown}" in again.stdout


@pytest.mark.timeout(120)
def test_extend_refuses_what_it_cannot_honour(extended, tmp_path):
    exp, grown, _, _ = extended
    from abr_tune.hpo.plan import plan_extend
    from abr_tune.search import build_parser

    # What an extension may change: how many more trials, how many at once, the confirmation.
    planned = plan_extend(build_parser().parse_args(["--extend", str(grown), "--num-samples", "3", "--confirm-top",
                                                     "1", "--confirm-seeds", "2", "--max-concurrent", "1"]))
    assert planned.space.num_samples == 8 and planned.space.max_concurrent == 1
    assert (planned.space.confirm.top_k, planned.space.confirm.seeds) == (1, 2)
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
