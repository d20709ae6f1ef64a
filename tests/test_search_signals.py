"""SIGTERM stops a search as Ctrl-C does (Tune saves, exit 130, one line saying how to resume, no Ray
stack dump), and so do two quick Ctrl-Cs (no traceback); the study stays resumable."""

from __future__ import annotations

import json
import signal
import time

import optuna
import pytest
import yaml
from background import Background
from conftest import free_port, search_base


@pytest.mark.timeout(600)
def test_sigterm_and_a_double_ctrl_c_stop_a_search_resumably(tmp_path):
    space = {"base": search_base(tmp_path, max_epochs=3), "num_samples": 4, "max_concurrent": 2,
             "scheduler": {"max_t": 3, "grace_period": 3, "reduction_factor": 2},
             "params": {"optim.lr": {"dist": "loguniform", "low": 1e-4, "high": 1e-2}}}
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(space, sort_keys=False))
    exp = tmp_path / "runs" / "s"
    flags = ("--dashboard-port", str(free_port()))
    search = Background("abr_tune.search", "--space", str(tmp_path / "space.yaml"), "--storage-path",
                        str(tmp_path / "runs"), "--name", "s", *flags)
    search.wait_for("started with configuration", count=2)
    time.sleep(1)
    search.signal(signal.SIGTERM, group=False)  # a scheduler's stop: to the search's process only
    rc = search.finish()
    assert rc == 130, search.output[-3000:]
    assert "Traceback" not in search.output and "*** SIGTERM received" not in search.output
    assert f"--resume {exp}" in search.output
    assert json.loads((exp / "search_summary.json").read_text())["interrupted"] is True

    again = Background("abr_tune.search", "--resume", str(exp), *flags)
    again.wait_for("started with configuration")
    time.sleep(1)
    again.signal(signal.SIGINT)
    time.sleep(0.3)
    again.signal(signal.SIGINT)
    assert again.finish() == 130, again.output[-3000:]
    assert "Traceback" not in again.output and f"--resume {exp}" in again.output
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{exp / 'optuna.db'}")
    assert len({t.user_attrs.get("ray_trial_id") for t in study.trials}) == len(study.trials)

    last = Background("abr_tune.search", "--resume", str(exp), *flags)
    assert last.finish() == 0, last.output[-3000:]
    summary = json.loads((exp / "search_summary.json").read_text())
    assert summary["interrupted"] is False and len(summary["trials"]) == 4
