"""The search service with real Ray: CLI errors, ASHA, dashboard, restore, resume, two nodes.

Every search runs `python -m abr_tune.search` in a subprocess (its own local Ray, started
and shut down by the CLI) except the two-node test, which starts a `ray.cluster_utils.Cluster`
and points the CLI at it with --address. Trials are tiny: an epoch takes about a second.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml
from conftest import ROOT, assert_user_error, free_port, run_cli, run_main, tiny_config

from abr_tune.config import load_config

TOKEN_FILE = Path.home() / ".ray" / "auth_token"


def _space_file(tmp_path: Path, **fields) -> Path:
    """A tiny search space: the conftest tiny model, lr searched, 4 epochs at most."""
    base = tiny_config(tmp_path)
    base["trainer"].update(sample_every_epochs=2, log_every_steps=5)
    base["advanced"]["lr_warmup_steps"] = 0
    raw = {
        "base": base, "num_samples": 4, "max_concurrent": 2,
        "scheduler": {"max_t": 4, "grace_period": 1, "reduction_factor": 2},
        "search": {"seed": 0, "n_startup_trials": 2},
        "params": {"optim.lr": {"dist": "loguniform", "low": 1e-6, "high": 5e-3}},
        **fields,
    }
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _summary(exp: Path) -> dict:
    return json.loads((exp / "search_summary.json").read_text())


def _assert_complete_histories(summary: dict) -> None:
    """Every trial reported val/mse_v at every epoch it ran and kept a checkpoint (unless it diverged)."""
    for t in summary["trials"]:
        assert not t["status"].startswith("error"), t["status"]
        epochs = [h["epoch"] for h in t["history"]]
        assert epochs == list(range(1, t["epochs_run"] + 1)), (t["trial_id"], epochs)
        if t["status"].startswith("diverged"):
            continue
        assert all(h["val/mse_v"] is not None for h in t["history"]), t["trial_id"]
        assert t["best_checkpoint"] and Path(t["best_checkpoint"]).is_file(), t["trial_id"]


def _headers() -> dict:
    return {"Authorization": f"Bearer {TOKEN_FILE.read_text().strip()}"} if TOKEN_FILE.is_file() else {}


# ---------------------------------------------------------------- bad flags and spaces

def _bad_space_files(tmp_path: Path) -> tuple[Path, Path, str]:
    space = _space_file(tmp_path)
    bad_heads = tmp_path / "heads.yaml"
    bad_heads.write_text(yaml.safe_dump({"base": {"model": {"d_model": 64}}, "params": {
        "model.n_heads": {"dist": "choice", "values": [4, 6]}}}))
    (tmp_path / "runs" / "taken").mkdir(parents=True)
    return space, bad_heads, str(tmp_path / "runs")


@pytest.mark.timeout(120)
def test_bad_flags_and_spaces_exit_2_before_anything_starts(tmp_path, capsys, monkeypatch):
    space, bad_heads, runs = _bad_space_files(tmp_path)
    monkeypatch.chdir(ROOT)
    cases = [
        (("--space", str(space), "--num-samples", "many"), "argument --num-samples: invalid int value"),
        (("--space", str(space), "--bogus"), "unrecognized arguments: --bogus"),
        (("--space", str(bad_heads)), "model.n_heads (6) must divide model.d_model (64)"),
        (("--space", str(tmp_path / "missing.yaml")), "file not found"),
        (("--space", str(space), "--override", "optim.lrr: 1"), "did you mean 'optim.lr'"),
        (("--space", str(space), "--override", "optim.lr: 1e-3"),
         "--override sets 'optim.lr', which is searched by the space; remove it from --override or from params"),
        (("--space", str(space), "--num-samples", "0"), "num_samples must be >= 1"),
        (("--space", str(space), "--storage-path", runs, "--name", "taken"), "already exists; pass --resume"),
        (("--space", str(space), "--gpus-per-trial", "0.5"), "--gpus-per-trial 0.5 but this machine has 0 GPUs"),
        (("--space", "search_spaces/training.yaml", "--override", "data.synthetic.n_subjects: 12"),
         "loader.batch_size=128 exceeds the"),
        (("--resume", str(tmp_path)), "is not an abr-tune search experiment"),
    ]
    for args, fragment in cases:
        assert_user_error(run_main(capsys, "abr_tune.search", "--storage-path", runs, *args), fragment)
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["taken"]  # nothing written
    assert_user_error(run_main(capsys, "abr_tune.retrain", "--experiment", runs), "has no best_config.yaml")


@pytest.mark.timeout(120)
def test_cli_errors_exit_2_without_a_traceback_and_before_ray_starts(tmp_path):
    space, _, runs = _bad_space_files(tmp_path)
    not_ray = socket.create_server(("127.0.0.1", 0))  # accepts TCP, speaks no gRPC: not a cluster
    cases = [
        ((), "--space is required"),
        (("--space", str(space), "--address", f"127.0.0.1:{free_port()}"), "cannot reach the Ray cluster"),
        (("--space", str(space), "--address", f"127.0.0.1:{not_ray.getsockname()[1]}"), "no Ray GCS answers"),
    ]
    with not_ray:
        for args, fragment in cases:
            started = time.monotonic()
            proc = run_cli("abr_tune.search", "--storage-path", runs, *args, timeout=60)
            assert_user_error(proc, fragment)
            assert time.monotonic() - started < 30, args  # fails fast, no Ray start-up
    assert_user_error(run_cli("abr_tune.retrain", "--experiment", runs), "has no best_config.yaml")


# ---------------------------------------------------------------- smoke test + dashboard

@pytest.mark.timeout(150)
def test_smoke_test_runs_in_well_under_a_minute_and_the_dashboard_answers(tmp_path):
    port = free_port()
    cmd = [sys.executable, "-m", "abr_tune.search", "--space", "search_spaces/lr_stft.yaml", "--smoke-test",
           "--storage-path", str(tmp_path), "--name", "smoke", "--dashboard-port", str(port)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    codes: dict[str, int] = {}
    url = f"http://127.0.0.1:{port}"
    while proc.poll() is None and len(codes) < 3:
        try:
            for path in ("/nodes?view=summary", "/api/jobs/"):
                codes[path] = requests.get(url + path, headers=_headers(), timeout=5).status_code
            codes["no token"] = requests.get(url + "/api/jobs/", timeout=5).status_code
            if set(codes.values()) - {200, 401}:
                codes.clear()
        except requests.ConnectionError:
            time.sleep(0.5)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out[-3000:]
    assert codes.get("/nodes?view=summary") == 200 and codes.get("/api/jobs/") == 200, codes
    if os.environ.get("RAY_AUTH_MODE", "token") == "token":
        assert codes["no token"] == 401  # the page loads, its API needs the token we print how to get
    assert f"Ray dashboard: http://127.0.0.1:{port}" in out and "ray get-auth-token" in out
    summary = _summary(tmp_path / "smoke")
    assert summary["num_trials"] == 4 and summary["wall_time_sec"] < 60
    _assert_complete_histories(summary)
    assert "python -m abr_tune.retrain --experiment" in out


# ---------------------------------------------------------------- ASHA, restore, best config, re-train

@pytest.mark.timeout(180)
def test_asha_stops_a_bad_trial_and_the_best_config_retrains(tmp_path):
    # Two good learning rates run first; the hopeless lr = 1e-6 reaches rung 1 after them
    # and is worse than their median, so asynchronous HyperBand must stop it there.
    # lr = 1 (the largest optim.lr a config accepts) diverges in its first epoch: it must end
    # cleanly and never be best.
    points = [{"optim.lr": 4e-3}, {"optim.lr": 3e-3}, {"optim.lr": 1e-6}, {"optim.lr": 1.0}]
    space = _space_file(tmp_path, num_samples=5,
                        search={"seed": 0, "n_startup_trials": 4, "points_to_evaluate": points},
                        params={"optim.lr": {"dist": "loguniform", "low": 1e-6, "high": 1.0}})
    proc = run_cli("abr_tune.search", "--space", str(space), "--storage-path", str(tmp_path / "runs"),
                   "--name", "asha", "--dashboard-port", str(free_port()), timeout=170)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    exp = tmp_path / "runs" / "asha"
    summary = _summary(exp)
    assert summary["num_trials"] == 5
    _assert_complete_histories(summary)
    hopeless = [t for t in summary["trials"] if t["params"]["optim.lr"] == 1e-6]
    assert hopeless[0]["stopped_early"] and hopeless[0]["epochs_run"] < 4, hopeless[0]
    # A trial that got to write train_abr's summary (a stopped one does when its worker is kept
    # for the next trial) says what the ranked table says.
    for trial in summary["trials"]:
        path = Path(trial["trial_dir"]) / "train_summary.json"
        if path.exists():
            assert json.loads(path.read_text())["status"] == trial["status"], trial
    assert summary["num_stopped_early"] >= 1
    diverged = [t for t in summary["trials"] if t["params"]["optim.lr"] == 1.0][0]
    assert diverged["status"] == "diverged: non-finite loss at epoch 1" and diverged["best_value"] is None
    assert summary["best"]["params"]["optim.lr"] not in (1e-6, 1.0)
    assert summary["trials"][-1]["trial_id"] == diverged["trial_id"]  # ranked last
    assert "Trials ranked by val/mse_v" in proc.stdout and "stopped early by ASHA" in proc.stdout

    from ray import tune

    from abr_tune.hpo.trial import run_trial

    results = tune.Tuner.restore(str(exp), trainable=run_trial).get_results()
    assert len(results) == 5 and results.num_errors == 0
    assert len(tune.ExperimentAnalysis(str(exp)).trials) == 5
    assert (exp / "optuna.db").is_file()
    # The study tells the truth: the stopped trial PRUNED, the diverged one FAIL, the others at their best epoch.
    import optuna

    study = {t.user_attrs["ray_trial_id"]: t for t in optuna.load_study(
        study_name="asha", storage=f"sqlite:///{exp / 'optuna.db'}").trials}
    assert study[hopeless[0]["trial_id"]].state == optuna.trial.TrialState.PRUNED
    assert study[diverged["trial_id"]].state == optuna.trial.TrialState.FAIL
    for trial in summary["trials"]:
        if trial["status"] == "completed":  # a completed trial's value is its best epoch's, as ranked
            got = study[trial["trial_id"]]
            assert got.state == optuna.trial.TrialState.COMPLETE and got.value == pytest.approx(trial["best_value"])

    cfg = load_config(exp / "best_config.yaml")
    assert cfg.optim.lr == summary["best"]["params"]["optim.lr"]
    assert cfg.trainer.max_epochs == 4 and cfg.run_dir == exp / "retrain"  # the length the search measured: max_t
    # Re-train after the experiment moved (e.g. copied off a cluster): into the moved copy,
    # compared against the moved copy's best checkpoint; nothing is written at the old path.
    moved = tmp_path / "elsewhere" / "asha"
    moved.parent.mkdir()
    exp.rename(moved)
    retrain = run_cli("abr_tune.retrain", "--experiment", str(moved), "--max-epochs", "1", timeout=120)
    assert retrain.returncode == 0, retrain.stderr[-3000:]
    result = json.loads((moved / "retrain" / "retrain_result.json").read_text())
    assert result["retrain"]["epochs_run"] == 1 and result["test"]["test/mse_v"] > 0
    assert result["search_checkpoint_test"]["test/mse_v"] > 0
    assert "test/mse_v" in retrain.stdout and not exp.exists()


# ---------------------------------------------------------------- resume after the driver is killed

def _reported_epochs(exp: Path) -> dict[str, int]:
    out = {}
    for path in exp.glob("trial_*/progress.csv"):
        out[path.parent.name] = max(0, len(path.read_text().strip().splitlines()) - 1)
    return out


def _study_trials(exp: Path) -> list[tuple[int, str, float | None]]:
    with sqlite3.connect(exp / "optuna.db") as db:
        return db.execute(
            "SELECT t.number, t.state, v.value FROM trials t LEFT JOIN trial_values v USING (trial_id) "
            "ORDER BY t.number").fetchall()


@pytest.mark.timeout(240)
def test_resume_after_the_driver_is_killed_finishes_every_trial(tmp_path):
    # A point to evaluate first: a searcher rebuilt from scratch on resume would enqueue it again.
    space = _space_file(tmp_path, num_samples=4, scheduler={"max_t": 4, "grace_period": 4, "reduction_factor": 2},
                        search={"seed": 0, "n_startup_trials": 2, "points_to_evaluate": [{"optim.lr": 3e-3}]})
    runs, exp = tmp_path / "runs", tmp_path / "runs" / "resume"
    cmd = [sys.executable, "-m", "abr_tune.search", "--space", str(space), "--storage-path", str(runs),
           "--name", "resume", "--dashboard-port", str(free_port())]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    # Its own session: killing the group takes the driver and the Ray it started, like a reboot.
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline and sum(n >= 2 for n in _reported_epochs(exp).values()) < 2:
        assert proc.poll() is None, "the search ended before it could be interrupted"
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = _reported_epochs(exp)
    finished_before = {n: v for n, state, v in _study_trials(exp) if state == "COMPLETE"}
    assert any(n >= 2 for n in before.values()) and not (exp / "search_summary.json").exists()

    resumed = run_cli("abr_tune.search", "--resume", str(exp), "--dashboard-port", str(free_port()), timeout=200)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    summary = _summary(exp)
    assert summary["resumed"] and summary["num_trials"] == 4
    _assert_complete_histories(summary)
    assert all(t["epochs_run"] == 4 for t in summary["trials"])  # grace = max_t: nothing stops early
    for name, n in before.items():  # interrupted trials continued from their checkpoints
        with open(exp / name / "progress.csv") as f:
            epochs = [float(row["epoch"]) for row in csv.DictReader(f)]
        assert 1.0 not in epochs[n:], (name, "restarted from epoch 1", epochs)
    study = _study_trials(exp)  # the searcher kept its history: same study, no trial asked twice
    assert len(study) == 4 and all(state == "COMPLETE" for _, state, _ in study)
    assert {n: v for n, _, v in study if n in finished_before} == finished_before


# ---------------------------------------------------------------- a trial's worker is killed

@pytest.mark.timeout(120)
def test_a_killed_trial_worker_is_retried_from_its_checkpoint(tmp_path):
    space = _space_file(tmp_path, num_samples=1, scheduler={"max_t": 6, "grace_period": 6})
    exp = tmp_path / "runs" / "killed"
    cmd = [sys.executable, "-m", "abr_tune.search", "--space", str(space), "--storage-path", str(exp.parent),
           "--name", exp.name, "--dashboard-port", str(free_port())]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 90
    results: list[str] = []
    while time.monotonic() < deadline and len(results) < 2:
        results = [line for f in exp.glob("trial_*/result.json") for line in f.read_text().splitlines()]
        time.sleep(0.2)
    os.kill(json.loads(results[-1])["pid"], signal.SIGKILL)  # the trial's worker, mid-training
    out, _ = proc.communicate(timeout=100)
    assert proc.returncode == 0, out[-3000:]
    (trial,) = _summary(exp)["trials"]
    assert (Path(trial["trial_dir"]) / "error.txt").is_file()  # Tune saw the failure ...
    assert trial["status"] == "completed" and trial["epochs_run"] == 6  # ... and retried from the checkpoint
    _assert_complete_histories(_summary(exp))
    with open(Path(trial["trial_dir"]) / "progress.csv") as f:
        epochs = [int(float(row["epoch"])) for row in csv.DictReader(f)]
    assert len(epochs) - len(set(epochs)) <= 1 and epochs[-1] == 6  # at most the epoch in flight re-ran


# ---------------------------------------------------------------- two nodes

@pytest.mark.timeout(180)
def test_trials_run_on_both_nodes_of_a_two_node_cluster(tmp_path):
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        space = _space_file(tmp_path, num_samples=4, scheduler={"max_t": 2, "grace_period": 2})
        proc = run_cli("abr_tune.search", "--space", str(space), "--storage-path", str(tmp_path / "runs"),
                       "--name", "two", "--address", cluster.address, timeout=170)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        summary = _summary(tmp_path / "runs" / "two")
        _assert_complete_histories(summary)
        nodes = {n for t in summary["trials"] for n in t["nodes"]}
        assert nodes == {node.node_id for node in cluster.list_all_nodes()}, nodes
    finally:
        cluster.shutdown()
