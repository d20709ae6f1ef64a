"""The "look here" commands a search prints work: optuna-dashboard serves the study, TensorBoard
finds the trials' runs, and Ray Tune's own TensorBoard hint (a directory without trial logs) is gone.

One tiny search runs through the CLI for the module; optuna-dashboard runs as the printed
command, with a free loopback port added, and is read back through its HTTP API.
"""

from __future__ import annotations

import json
import math
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import optuna
import pytest
from conftest import free_port, run_search, search_base
from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer

DASHBOARD_STATES = {"Complete", "Pruned", "Fail", "Running", "Waiting"}  # TrialState names, capitalized


@pytest.fixture(scope="module")
def search(tmp_path_factory) -> tuple[Path, str]:
    """(experiment dir, the search's stdout) of a finished 3-trial search with ASHA rungs at epochs 1 and 2."""
    tmp = tmp_path_factory.mktemp("dashboard")
    space = {
        "base": search_base(tmp), "num_samples": 3, "max_concurrent": 2,
        "scheduler": {"max_t": 2, "grace_period": 1, "reduction_factor": 2},
        "search": {"seed": 0, "n_startup_trials": 3},
        "params": {"optim.lr": {"dist": "loguniform", "low": 1e-4, "high": 5e-3}},
    }
    exp, proc = run_search(tmp, space)
    return exp, proc.stdout + proc.stderr


def _printed(output: str, prefix: str) -> list[str]:
    """The commands printed after `prefix` (e.g. 'TensorBoard: '), in order."""
    return [line.split(prefix, 1)[1].strip() for line in output.splitlines() if line.startswith(prefix)]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def _wait_ready(base: str, proc: subprocess.Popen, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        assert proc.poll() is None, f"optuna-dashboard exited with {proc.returncode}: {proc.stderr.read()}"
        try:
            _get(base + "/api/meta")
            return
        except (urllib.error.URLError, ConnectionError):
            assert time.monotonic() < deadline, f"optuna-dashboard not answering at {base}"
            time.sleep(0.2)


def _executable(name: str) -> str:
    """A console script of this environment: beside its python, else on PATH."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.is_file() else shutil.which(name)
    assert found, f"{name} is not installed (pip install -r requirements.txt)"
    return found


@pytest.mark.timeout(360)
def test_printed_optuna_dashboard_command_serves_the_study_and_its_trials(search):
    exp, output = search
    commands = _printed(output, "Optuna study: optuna-dashboard ")
    assert len(commands) == 1, output[-3000:]
    storage = shlex.split(commands[0])[0]
    assert storage == f"sqlite:///{exp / 'optuna.db'}" and (exp / "optuna.db").is_file()
    summary = json.loads((exp / "search_summary.json").read_text())
    study = optuna.load_study(study_name=summary["study"]["study_name"], storage=storage)
    assert len(study.trials) == summary["num_trials"] == 3

    port = free_port()
    # The command as printed: it binds 127.0.0.1 unless told otherwise; only the port is added.
    proc = subprocess.Popen([_executable("optuna-dashboard"), *shlex.split(commands[0]), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, proc)
        summaries = _get(base + "/api/studies")["study_summaries"]
        ids = [s["study_id"] for s in summaries if s["study_name"] == study.study_name]
        assert len(ids) == 1, summaries
        served = _get(f"{base}/api/studies/{ids[0]}?after=0")["trials"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert "Listening on http://127.0.0.1:" in proc.stderr.read()  # loopback, not every interface
    by_number = {t.number: t for t in study.trials}
    assert sorted(t["number"] for t in served) == sorted(by_number)
    for t in served:
        mine = by_number[t["number"]]
        assert t["state"] in DASHBOARD_STATES and t["state"] == mine.state.name.capitalize(), t
        if mine.state == optuna.trial.TrialState.COMPLETE:
            assert len(t["values"]) == 1 and math.isclose(float(t["values"][0]), mine.value, rel_tol=1e-9), t
        assert [p["step"] for p in t["intermediate_values"]] == sorted(mine.intermediate_values)


def test_only_the_experiment_tensorboard_command_is_printed_and_it_finds_every_trial(search):
    exp, output = search
    assert "driver_artifacts" not in output  # Ray Tune's hint points at a directory without trial logs
    assert "To visualize your results with TensorBoard" not in output
    commands = _printed(output, "TensorBoard: ")
    assert commands == [f"tensorboard --logdir {exp}"] * 2, commands  # at the start and at the end
    lines = output.splitlines()
    start = lines.index(f"Experiment: {exp}")
    assert lines[start + 1] == f"TensorBoard: tensorboard --logdir {exp}"

    runs = EventMultiplexer().AddRunsFromDirectory(str(exp)).Reload().Runs()  # what --logdir lists
    summary = json.loads((exp / "search_summary.json").read_text())
    trial_runs = {str(Path(t["trial_dir"]).relative_to(exp) / "train") for t in summary["trials"]}
    assert set(runs) == trial_runs, sorted(runs)
    assert all(re.match(r"trial_\w+", run) for run in runs)
