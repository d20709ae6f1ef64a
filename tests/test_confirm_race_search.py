"""The racing confirmation on a real search: seed rounds as Ray experiments, decisions recorded."""

from __future__ import annotations

import json

import pytest
from conftest import run_search, search_base


@pytest.mark.timeout(300)
def test_a_raced_confirmation_runs_seed_rounds_and_records_its_decisions(tmp_path):
    base = search_base(tmp_path, max_epochs=2)
    base["seed"] = 42
    space = {
        "base": base, "num_samples": 2, "max_concurrent": 2,
        "scheduler": {"max_t": 2, "grace_period": 2, "reduction_factor": 2},
        "search": {"seed": 0, "points_to_evaluate": ["base", {"optim.lr": 3e-3}]},
        "confirm": {"top_k": 1, "seeds": 3, "race": True},
        "params": {"optim.lr": {"dist": "loguniform", "low": 1e-4, "high": 1e-2}},
    }
    exp, proc = run_search(tmp_path, space)
    confirmation = json.loads((exp / "search_summary.json").read_text())["confirmation"]
    race = confirmation["race"]
    rounds = [r["ran"] for r in race["rounds"]]
    assert ["base", 43] in rounds[0] and [seed for _, seed in rounds[0]] == [43, 43]  # the base and the candidate
    assert 2 <= len(rounds) <= 3 and race["runs_fixed"] == 6  # 2 runs a round; decisions wait for 2 seeds
    assert race["runs"] == sum(len(r) for r in rounds) <= 6 and race["seeds_run"]["base"] >= 2
    assert all((exp / "confirm" / f"round{i + 1}").is_dir() for i in range(len(rounds)))
    note = next(r["race_note"] for r in confirmation["rows"] if r["label"] != "base")
    assert "of 3 seeds" in note and "confidence sequence" in note
    assert "Racing decisions:" in proc.stdout and confirmation["verdict"] in proc.stdout
