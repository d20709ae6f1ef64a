"""A confirmation over seeds is either complete or recorded as interrupted and resumable.

One tiny search (2 trials of 2 epochs, its top 1 and the base config confirmed over 3 seeds:
6 runs) is interrupted with Ctrl-C (SIGINT to its process group) during the confirmation,
then resumed and killed with kill -9 during the confirmation, then resumed to the end.
"""

from __future__ import annotations

import json
import math
import signal
import time

import optuna
import pytest
import yaml
from background import Background
from conftest import free_port, run_cli, search_base


@pytest.mark.timeout(900)
def test_an_interrupted_or_killed_confirmation_records_no_verdict_and_resumes(tmp_path):
    base = search_base(tmp_path)
    base["seed"] = 42
    space = {"base": base, "num_samples": 2, "max_concurrent": 2,
             "scheduler": {"max_t": 2, "grace_period": 2, "reduction_factor": 2},
             "search": {"seed": 0, "points_to_evaluate": ["base", {"optim.lr": 3e-3}]},
             "confirm": {"top_k": 1, "seeds": 3, "race": False},
             "params": {"optim.lr": {"dist": "loguniform", "low": 1e-4, "high": 1e-2}}}
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(space, sort_keys=False))
    exp = tmp_path / "runs" / "c"
    flags = ("--dashboard-port", str(free_port()))

    # Ctrl-C 4 s into the confirmation: exit 130, no verdict, best_config.yaml not "confirmed".
    search = Background("abr_tune.search", "--space", str(tmp_path / "space.yaml"), "--storage-path",
                        str(tmp_path / "runs"), "--name", "c", *flags)
    search.wait_for("Confirming")
    time.sleep(4)
    search.signal(signal.SIGINT)
    assert search.finish() == 130, search.output[-3000:]
    summary = json.loads((exp / "search_summary.json").read_text())
    record = summary["confirmation"]
    assert summary["interrupted"] is True and record["state"] == "interrupted" and record["stage"] == "confirm"
    assert record["runs"] == 6 and record["runs_finished"] < 6
    assert "Confirmation interrupted" in search.output and "--resume" in search.output
    assert "No configuration beats" not in search.output and "Confirmed winner" not in search.output
    assert "Confirmed over seeds" not in (exp / "best_config.yaml").read_text()
    assert "rows" not in record and not (exp / "report").exists()
    report = run_cli("abr_tune.report", str(exp))  # a report asked for now says there is no verdict yet
    assert report.returncode == 0, report.stderr[-2000:]
    assert "The confirmation did not finish" in (exp / "report" / "summary.md").read_text()

    # kill -9 of the search's main process during the resumed confirmation: still resumable.
    again = Background("abr_tune.search", "--resume", str(exp), *flags)
    again.wait_for("Continuing the confirmation")
    time.sleep(2)
    again.signal(signal.SIGKILL, group=False)
    again.kill_group()  # the Ray processes it started
    summary = json.loads((exp / "search_summary.json").read_text())
    assert summary["confirmation"]["state"] in ("pending", "interrupted")

    # The last resume finishes the same confirmation (confirm/, not a second stage) with every run.
    last = Background("abr_tune.search", "--resume", str(exp), *flags)
    assert last.finish(timeout=600) == 0, last.output[-3000:]
    summary = json.loads((exp / "search_summary.json").read_text())
    record = summary["confirmation"]
    assert summary["interrupted"] is False and record["state"] == "done" and record["seeds"] == [43, 44, 45]
    assert not (exp / "confirm_2").exists()
    assert len(list((exp / "confirm").glob("confirm_*_seed*"))) == 6
    for row in record["rows"]:  # every candidate, the base included, scored on every seed
        assert sorted(row["values"]) == ["43", "44", "45"] and all(math.isfinite(v) for v in row["values"].values())
        assert row["seeds_missing"] == []
    assert (exp / "best_config.yaml").read_text().splitlines()[1].startswith("# Confirmed over seeds 43, 44, 45: ")
    assert (exp / "report" / "summary.md").is_file()
    # The study holds the search's 2 trials, once each, finished.
    study = optuna.load_study(study_name="c", storage=f"sqlite:///{exp / 'optuna.db'}")
    assert len(study.trials) == 2 and all(t.state.is_finished() for t in study.trials)
