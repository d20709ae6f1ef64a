"""Constraints are honoured with one objective: a trial that misses one is never the best, the table,
the summary, the study and the report say which trials met them."""

from __future__ import annotations

import json

import optuna
import pytest
import yaml
from conftest import free_port, run_cli, search_base

BOUND = 1.0  # sample/detection_acc >= 1: every condition's response detected


@pytest.mark.timeout(400)
def test_the_best_trial_of_one_objective_meets_the_constraints(tmp_path):
    space = {"base": search_base(tmp_path, max_epochs=2), "num_samples": 3, "max_concurrent": 2,
             "metric": "val/mse_v", "constraints": [f"sample/detection_acc >= {BOUND:g}"],
             "scheduler": {"max_t": 2, "grace_period": 2, "reduction_factor": 2},
             "search": {"seed": 0, "points_to_evaluate": ["base"]},
             "params": {"optim.lr": {"dist": "loguniform", "low": 1e-4, "high": 1e-2}}}
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(space, sort_keys=False))
    proc = run_cli("abr_tune.search", "--space", str(tmp_path / "space.yaml"), "--storage-path",
                   str(tmp_path / "runs"), "--name", "k", "--dashboard-port", str(free_port()), timeout=380)
    exp = tmp_path / "runs" / "k"
    summary = json.loads((exp / "search_summary.json").read_text())
    trials = summary["trials"]
    assert summary["constraints"] == ["sample/detection_acc >= 1"] and len(trials) == 3
    for t in trials:  # judged at the valued epoch: the best val/mse_v among the sampling epochs
        acc = t["objectives"].get("sample/detection_acc")
        assert t["feasible"] is (acc is not None and acc >= BOUND), t
    report = (exp / "report" / "summary.md").read_text()
    feasible = [t for t in trials if t["feasible"] and t["best_value"] is not None]
    assert "constraints" in proc.stdout.splitlines()[[i for i, line in enumerate(proc.stdout.splitlines())
                                                       if line.startswith("Trials ranked by")][0] + 1]
    assert "Constraints sample/detection_acc >= 1" in proc.stdout
    if feasible:
        best = min(feasible, key=lambda t: t["best_value"])
        assert proc.returncode == 0 and summary["best"]["trial_id"] == best["trial_id"]
        assert "meets the constraints `sample/detection_acc >= 1`" in (exp / "report" / "summary.md").read_text()
    else:  # the unconstrained best is not picked: nothing is
        assert proc.returncode == 1 and summary["best"] is None and not (exp / "best_config.yaml").exists()
        assert "No trial meets the constraints sample/detection_acc >= 1; no best config written." in proc.stdout
        assert "no trial meets the constraints `sample/detection_acc >= 1`" in report
    # The study holds the same verdict: each COMPLETE trial's violation is <= 0 exactly when it is feasible.
    study = optuna.load_study(study_name="k", storage=f"sqlite:///{exp / 'optuna.db'}")
    by_ray = {t.user_attrs["ray_trial_id"]: t for t in study.trials}
    assert set(by_ray) == {t["trial_id"] for t in trials}
    for t in trials:
        frozen = by_ray[t["trial_id"]]
        if frozen.state == optuna.trial.TrialState.COMPLETE:
            assert (frozen.user_attrs["constraints"][0] <= 0) is t["feasible"]
