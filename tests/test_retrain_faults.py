"""retrain never overwrites a re-training and says how to go on; an unwritable log_dir is one line;
--top K beyond the confirmed top ranks by the search, and says so."""

from __future__ import annotations

import json

import yaml
from conftest import assert_user_error, run_cli, tiny_config

from abr_tune.hpo.transfer import top_entries


def _experiment(tmp_path):
    exp = tmp_path / "exp"
    exp.mkdir()
    cfg = tiny_config(tmp_path, trainer={"max_epochs": 1})
    cfg.update(log_dir=str(exp), exp_name="retrain")
    (exp / "best_config.yaml").write_text(yaml.safe_dump(cfg))
    (exp / "search_summary.json").write_text(json.dumps(
        {"name": "exp", "experiment_dir": str(exp), "metric": "val/mse_v", "best": None, "max_epochs": 1,
         "trials": []}))
    return exp


def test_a_second_retrain_is_refused_with_the_commands_that_exist(tmp_path):
    exp = _experiment(tmp_path)
    first = run_cli("abr_tune.retrain", "--experiment", str(exp))
    assert first.returncode == 0, first.stderr[-2000:]
    before = (exp / "retrain" / "checkpoints" / "retrain_best.pt").stat().st_mtime_ns
    proc = run_cli("abr_tune.retrain", "--experiment", str(exp))
    assert_user_error(proc, f"'{exp / 'retrain'}' already holds a re-training; train another with --override "
                            "\"exp_name: retrain_2\", or continue this one with: python -m abr_tune.train --resume "
                            f"{exp / 'retrain' / 'checkpoints' / 'retrain_last.pt'}")
    assert (exp / "retrain" / "checkpoints" / "retrain_best.pt").stat().st_mtime_ns == before
    proc = run_cli("abr_tune.retrain", "--experiment", str(exp), "--override", "log_dir: /proc/x")
    assert_user_error(proc, "the re-training cannot write '/proc/x/retrain'")
    assert "--override \"log_dir: <a writable directory>\"" in proc.stderr


def test_top_k_beyond_the_confirmed_ones_ranks_by_the_search_and_says_so(capsys):
    trials = [{"trial_id": t, "overrides": {"optim.lr": lr}, "best_value": v, "status": "completed",
               "is_reference": t == "a"} for t, lr, v in (("a", 1e-3, 0.5), ("b", 2e-3, 0.3), ("c", 3e-3, 0.4),
                                                          ("d", 4e-3, 0.6))]
    summary = {"trials": trials, "confirmation": {"rows": [{"label": "b", "mean": 0.31}, {"label": "base",
                                                                                         "mean": 0.5}]}}
    entries = top_entries(summary, 3)
    assert [e.label for e in entries] == ["b", "c", "d", "base"]
    assert "confirmed only its top 1 over seeds; the top 3 are taken from its ranking" in capsys.readouterr().err
    assert [e.label for e in top_entries(summary, 1)] == ["b", "base"]  # within the confirmed: as confirmed
