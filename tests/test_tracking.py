"""Opt-in experiment tracking: runs logged by `--logger mlflow`, read back with MLflow's own client.

A search logs every trial through Ray Tune's MLflowLoggerCallback (a run per trial: its params
and per-epoch metric history) and the best config as an artifact of a run named `best`; a
training run logs without Ray. A missing tracker package is one error line before any work.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, assert_user_error, free_port, run_cli, tiny_config

from abr_tune.tracking.backends import STORE_DB, STORE_DIR


def _space(tmp_path: Path) -> Path:
    """Two trials of two epochs, both run to the end (ASHA's grace period is the last epoch)."""
    base = tiny_config(tmp_path)
    base["trainer"].update(max_epochs=2, sample_every_epochs=2, log_every_steps=5)
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({
        "base": base, "num_samples": 2, "max_concurrent": 2,
        "scheduler": {"max_t": 2, "grace_period": 2, "reduction_factor": 2},
        "search": {"seed": 0, "n_startup_trials": 2},
        "params": {"optim.lr": {"dist": "loguniform", "low": 1e-4, "high": 3e-3}}}))
    return space


def _client(store: Path):
    mlflow_tracking = pytest.importorskip("mlflow.tracking")
    return mlflow_tracking.MlflowClient(f"sqlite:///{store / STORE_DIR / STORE_DB}")


def _history(client, run_id: str, key: str) -> list[tuple[int, float]]:
    return [(m.step, m.value) for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]


@pytest.mark.timeout(600)
def test_search_logs_each_trial_and_the_best_config_to_mlflow_and_extend_adds_to_it(tmp_path):
    pytest.importorskip("mlflow")
    proc = run_cli("abr_tune.search", "--space", str(_space(tmp_path)), "--storage-path", str(tmp_path / "runs"),
                   "--name", "tracked", "--dashboard-port", str(free_port()), "--logger", "mlflow", timeout=280)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    exp = tmp_path / "runs" / "tracked"
    summary = json.loads((exp / "search_summary.json").read_text())
    client = _client(exp)
    experiment = client.get_experiment_by_name("tracked")
    runs = client.search_runs([experiment.experiment_id])
    trials = {r.data.tags["trial_name"].split()[0]: r for r in runs if "trial_name" in r.data.tags}
    assert sorted(trials) == sorted(t["trial_id"] for t in summary["trials"]) and len(trials) == 2
    for t in summary["trials"]:
        run = trials[t["trial_id"]]
        assert run.info.status == "FINISHED"
        assert float(run.data.params["optim.lr"]) == pytest.approx(t["params"]["optim.lr"])
        logged = _history(client, run.info.run_id, "val/mse_v")
        assert logged == [(h["epoch"], pytest.approx(h["val/mse_v"])) for h in t["history"]]
        assert [step for step, _ in logged] == [1, 2]
    best = [r for r in runs if r.info.run_name == "best"]
    assert len(best) == 1 and best[0].data.tags["abr_tune.best_trial"] == summary["best"]["trial_id"]
    names = sorted(a.path for a in client.list_artifacts(best[0].info.run_id))
    assert names == ["best_config.yaml", "search_summary.json"]
    local = Path(client.download_artifacts(best[0].info.run_id, "best_config.yaml", str(tmp_path)))
    assert yaml.safe_load(local.read_text()) == yaml.safe_load((exp / "best_config.yaml").read_text())
    assert (exp / STORE_DIR / "artifacts").is_dir()  # the local store keeps its artifacts in the experiment

    # --extend logs to the tracker the search started with: its trial joins the experiment, a new `best` follows
    proc = run_cli("abr_tune.search", "--extend", str(exp), "--num-samples", "1", "--dashboard-port",
                   str(free_port()), timeout=280)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((exp / "search_summary.json").read_text())
    runs = client.search_runs([experiment.experiment_id])
    trials = {r.data.tags["trial_name"].split()[0]: r for r in runs if "trial_name" in r.data.tags}
    assert sorted(trials) == sorted(t["trial_id"] for t in summary["trials"]) and len(trials) == 3
    new = next(t for t in summary["trials"] if "/extend_2/" in t["trial_dir"])
    assert _history(client, trials[new["trial_id"]].info.run_id, "val/mse_v") == [
        (h["epoch"], pytest.approx(h["val/mse_v"])) for h in new["history"]]
    best = sorted((r for r in runs if r.info.run_name == "best"), key=lambda r: r.info.start_time)
    assert len(best) == 2 and best[-1].data.tags["abr_tune.best_trial"] == summary["best"]["trial_id"]


@pytest.mark.timeout(300)
def test_search_logs_each_trial_to_wandb_offline_when_not_logged_in(tmp_path):
    wandb = pytest.importorskip("wandb")
    env = {k: v for k, v in os.environ.items() if k not in ("WANDB_API_KEY", "WANDB_MODE")}
    env.update(HOME=str(tmp_path), PYTHONPATH=os.pathsep.join([str(ROOT), str(Path(wandb.__file__).parents[1])]))
    proc = subprocess.run([sys.executable, "-m", "abr_tune.search", "--space", str(_space(tmp_path)), "--storage-path",
                           str(tmp_path / "runs"), "--name", "wb", "--dashboard-port", str(free_port()),
                           "--logger", "wandb"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    exp = tmp_path / "runs" / "wb"
    summary = json.loads((exp / "search_summary.json").read_text())
    runs = {p.name.rsplit("-", 1)[1]: next(p.glob("run-*.wandb")) for p in (exp / "wandb").glob("offline-run-*")}
    trial_ids = {t["trial_id"] for t in summary["trials"]}
    assert trial_ids < set(runs) and len(runs) == len(trial_ids) + 1, sorted(runs)  # the trials' and `best`
    for trial_id in trial_ids:  # each trial's whole run was written (W&B's record file: config and history)
        assert b"optim.lr" in runs[trial_id].read_bytes() and b"val/mse_v" in runs[trial_id].read_bytes()
    (best,) = set(runs) - trial_ids
    assert b"best_config.yaml" in runs[best].read_bytes()  # the best config's artifact


def test_wandb_is_offline_unless_the_user_is_logged_in(tmp_path, monkeypatch):
    from abr_tune.tracking.backends import wandb_mode

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("NETRC", raising=False)
    for key in ("WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    assert wandb_mode() == "offline" and os.environ["WANDB_MODE"] == "offline"
    monkeypatch.delenv("WANDB_MODE")
    (tmp_path / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password 0123abcd\n")
    (tmp_path / ".netrc").chmod(0o600)
    assert wandb_mode() == "online"  # `wandb login` stored a key
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wandb_mode() == "disabled"  # the user's choice wins


class _Trial:
    """What Tune's Trial offers a logger callback here: its id, config and name."""

    trial_id, config = "abc12_00000", {"optim.lr": 0.001, "model.d_model": 32}

    def __str__(self) -> str:
        return "abc12_00000 lr=0.001"


def test_a_resumed_search_continues_each_trials_mlflow_run(tmp_path):
    pytest.importorskip("mlflow")
    import pickle

    from abr_tune.tracking.backends import TrackingChoice, mlflow_experiment
    from abr_tune.tracking.mlflow_trials import MlflowTrialRuns

    uri, experiment = mlflow_experiment(TrackingChoice("mlflow"), tmp_path, "resumed")
    first = MlflowTrialRuns(uri, experiment, {"abr_tune.stage": "search"})
    first.setup()
    first.log_trial_start(_Trial())
    first.log_trial_result(1, _Trial(), {"epoch": 1, "val/mse_v": 0.5, "done": False, "config": {"optim.lr": 0.001}})
    # killed here; Tune restores its callbacks from the experiment's saved state (tuner.pkl)
    second = pickle.loads(pickle.dumps(first))
    second.setup()
    second.log_trial_start(_Trial())
    second.log_trial_result(1, _Trial(), {"epoch": 2, "val/mse_v": 0.25})
    second.log_trial_end(_Trial())
    client = _client(tmp_path)
    runs = client.search_runs([experiment])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].data.params == {"optim.lr": "0.001", "model.d_model": "32"}
    assert runs[0].data.tags["trial_name"] == "abc12_00000 lr=0.001"
    assert _history(client, runs[0].info.run_id, "val/mse_v") == [(1, 0.5), (2, 0.25)]  # stepped by epoch
    assert "done" not in runs[0].data.metrics and "config" not in runs[0].data.metrics


@pytest.mark.timeout(200)
def test_training_run_logs_to_mlflow_without_ray_and_resume_continues_it(tmp_path):
    pytest.importorskip("mlflow")
    raw = tiny_config(tmp_path)
    raw["trainer"].update(max_epochs=1)
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(raw))
    store = tmp_path / "store"
    uri = f"sqlite:///{store / STORE_DIR / STORE_DB}"
    (store / STORE_DIR).mkdir(parents=True)
    code = ("import sys, abr_tune.train as t; rc = t.main(sys.argv[1:]); "
            "assert 'ray' not in sys.modules, 'Ray imported'; sys.exit(rc)")
    def train(*args: str) -> None:
        proc = subprocess.run([sys.executable, "-c", code, *args, "--logger", "mlflow", "--tracking-uri", uri],
                              cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},  # MLflow's ./mlruns
                              capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    train("--config", str(config))
    last = tmp_path / "runs" / "tiny" / "checkpoints" / "tiny_last.pt"
    train("--resume", str(last), "--override", "trainer.max_epochs: 2")
    client = _client(store)
    runs = client.search_runs([client.get_experiment_by_name("abr-tune train").experiment_id])
    assert len(runs) == 1, [r.info.run_name for r in runs]  # the resume continued the same run
    run = runs[0]
    assert run.info.run_name == "tiny" and run.info.status == "FINISHED"
    assert run.data.params["optim.lr"] == str(raw["optim"]["lr"]) and run.data.params["model.d_model"] == "32"
    assert [step for step, _ in _history(client, run.info.run_id, "val/mse_v")] == [1, 2]
    assert [step for step, _ in _history(client, run.info.run_id, "epoch/train_loss_avg")] == [1, 2]
    assert sorted(a.path for a in client.list_artifacts(run.info.run_id)) == ["config.yaml", "train_summary.json"]


@pytest.mark.parametrize("logger,package", [("mlflow", "MLflow"), ("wandb", "Weights & Biases")])
def test_missing_tracker_package_is_one_error_line_before_any_work(tmp_path, monkeypatch, capsys, logger, package):
    monkeypatch.setitem(sys.modules, logger, None)  # `import mlflow` raises ImportError, installed or not
    monkeypatch.chdir(tmp_path)
    from abr_tune import search, train

    for cli in (train.main, search.main):
        with pytest.raises(SystemExit) as exit_:
            cli(["--logger", logger, "--config" if cli is train.main else "--space", str(tmp_path / "absent.yaml")])
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith(f"abr-tune: error: --logger {logger} needs {package}: "
                              f"pip install 'abr-tune[{logger}]'"), err
        assert len(err.strip().splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []  # nothing was written


def test_tracking_uri_without_mlflow_logger_is_refused(tmp_path):
    proc = run_cli("abr_tune.train", "--tracking-uri", "http://127.0.0.1:5000", cwd=tmp_path, timeout=60)
    assert_user_error(proc, "--tracking-uri is MLflow's; add --logger mlflow")
