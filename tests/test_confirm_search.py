"""The winner confirmed over seeds on a real search, and what was searched re-trained (--trial, --top).

One tiny search runs per module: the base config and one other learning rate, 2 epochs each,
then the confirmation stage re-runs both at 2 training seeds as Ray trials.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from conftest import assert_user_error, run_cli, run_search, search_base

from abr_tune.config import load_config


@pytest.fixture(scope="module")
def experiment(tmp_path_factory) -> tuple[Path, str]:
    tmp = tmp_path_factory.mktemp("confirm")
    base = search_base(tmp, max_epochs=3)  # the base's own full length: what --top re-trains at
    base["seed"] = 42
    space = {
        "base": base, "num_samples": 2, "max_concurrent": 2,
        "scheduler": {"max_t": 2, "grace_period": 2, "reduction_factor": 2},
        "search": {"seed": 0, "points_to_evaluate": ["base", {"optim.lr": 3e-3}]},
        "confirm": {"top_k": 1, "seeds": 2, "race": False},
        "params": {"optim.lr": {"dist": "loguniform", "low": 1e-4, "high": 1e-2}},
    }
    exp, proc = run_search(tmp, space)
    return exp, proc.stdout


@pytest.mark.timeout(300)
def test_the_top_config_and_the_base_are_confirmed_over_seeds(experiment):
    exp, stdout = experiment
    summary = json.loads((exp / "search_summary.json").read_text())
    confirmation = summary["confirmation"]
    assert confirmation["seeds"] == [43, 44] and confirmation["top_k"] == 1  # the base seed is 42
    rows = {r["label"]: r for r in confirmation["rows"]}
    assert set(rows) == {"base", next(t["trial_id"] for t in summary["trials"] if not t["is_reference"])}
    for row in rows.values():
        assert sorted(row["values"]) == ["43", "44"] and all(math.isfinite(v) for v in row["values"].values())
        assert row["mean"] == pytest.approx(sum(row["values"].values()) / 2)
    # Four confirmation runs of max_t epochs each, in the experiment's own confirm/ directory.
    runs = sorted(p.name for p in (exp / "confirm").glob("confirm_*_seed*"))
    assert len(runs) == 4
    winner = confirmation["winner"]
    assert summary["best"]["trial_id"] == (winner if winner != "base" else
                                           next(t["trial_id"] for t in summary["trials"] if t["is_reference"]))
    header = (exp / "best_config.yaml").read_text().splitlines()[1]
    assert header.startswith("# Confirmed over seeds 43, 44: ") and confirmation["verdict"] in header
    assert "Confirmation over seeds 43, 44" in stdout and confirmation["verdict"] in stdout
    report = (exp / "report" / "summary.md").read_text()
    assert "## Confirmation over seeds" in report
    assert f"{confirmation['verdict']} (seeds 43, 44)" in report
    # The re-train's default length is what the search measured: max_t.
    assert load_config(exp / "best_config.yaml").trainer.max_epochs == 2


@pytest.mark.timeout(300)
def test_any_trial_retrains_and_the_top_k_transfer_is_measured(experiment):
    exp, _ = experiment
    summary = json.loads((exp / "search_summary.json").read_text())
    other = next(t for t in summary["trials"] if not t["is_reference"])
    proc = run_cli("abr_tune.retrain", "--experiment", str(exp), "--trial", other["trial_id"], "--max-epochs", "1",
                   timeout=200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((exp / f"retrain_{other['trial_id']}" / "retrain_result.json").read_text())
    assert result["search_best"]["trial_id"] == other["trial_id"] and result["retrain"]["epochs_run"] == 1
    cfg = load_config(exp / f"retrain_{other['trial_id']}" / "config.yaml")
    assert cfg.optim.lr == pytest.approx(other["params"]["optim.lr"])

    proc = run_cli("abr_tune.retrain", "--experiment", str(exp), "--top", "1", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    transfer = json.loads((exp / "transfer" / "transfer.json").read_text())
    assert transfer["epochs"] == 3 and transfer["search_max_epochs"] == 2  # the base config's full length
    labels = [r["label"] for r in transfer["rows"]]
    assert labels[-1] == "base" and len(labels) == 2
    assert all(math.isfinite(r["full_value"]) for r in transfer["rows"])
    assert transfer["agreement"]["n"] == 2 and "Rank agreement needs 3 or more" in proc.stdout

    assert_user_error(run_cli("abr_tune.retrain", "--experiment", str(exp), "--trial", "nope", timeout=60),
                      "--trial 'nope' is not a trial of this search")
