"""Transfer from the search to full-length re-training: which configs, rank agreement, gains."""

from __future__ import annotations

import math

import pytest

from abr_tune.hpo.transfer import BASE_LABEL, Entry, format_transfer, rank_agreement, top_entries, transfer_rows


def _summary(confirmation=None):
    trials = [
        {"trial_id": "a", "overrides": {"optim.lr": 1e-3}, "best_value": 0.50, "status": "completed"},
        {"trial_id": "b", "overrides": {"optim.lr": 2e-3}, "best_value": 0.51, "status": "stopped early by ASHA"},
        {"trial_id": "d", "overrides": {"optim.lr": 9e-2}, "best_value": None, "status": "diverged: non-finite"},
        {"trial_id": "r", "overrides": {"optim.lr": 1e-4}, "best_value": 0.53, "status": "completed",
         "is_reference": True},
        {"trial_id": "c", "overrides": {"optim.lr": 3e-3}, "best_value": 0.52, "status": "completed"},
    ]
    return {"trials": trials, **({"confirmation": confirmation} if confirmation else {})}


def test_top_entries_follow_the_ranking_then_the_base():
    entries = top_entries(_summary(), 2)
    assert [(e.label, e.search_value) for e in entries] == [("a", 0.50), ("b", 0.51), (BASE_LABEL, 0.53)]
    assert entries[-1].overrides == {"optim.lr": 1e-4}


def test_top_entries_follow_the_confirmed_order_when_there_is_one():
    confirmation = {"rows": [{"label": "c", "mean": 0.49}, {"label": BASE_LABEL, "mean": 0.52},
                             {"label": "a", "mean": 0.505}]}
    entries = top_entries(_summary(confirmation), 2)
    assert [(e.label, e.search_value) for e in entries] == [("c", 0.49), ("a", 0.505), (BASE_LABEL, 0.52)]


def test_more_than_the_confirmed_are_taken_from_the_search_ranking(capsys):
    confirmation = {"rows": [{"label": "c", "mean": 0.49}, {"label": BASE_LABEL, "mean": 0.52}]}
    entries = top_entries(_summary(confirmation), 2)
    assert [(e.label, e.search_value) for e in entries] == [("a", 0.50), ("b", 0.51), (BASE_LABEL, 0.53)]
    assert "confirmed only its top 1 over seeds; the top 2 are taken from its ranking" in capsys.readouterr().err


def test_rank_agreement_known_answers():
    assert rank_agreement([1, 2, 3, 4], [10, 20, 30, 40]) == {"spearman_rho": 1.0, "kendall_tau": 1.0, "n": 4}
    reversed_ = rank_agreement([1, 2, 3], [3, 2, 1])
    assert reversed_["spearman_rho"] == pytest.approx(-1.0) and reversed_["kendall_tau"] == pytest.approx(-1.0)
    assert math.isnan(rank_agreement([1, 2], [1, 2])["spearman_rho"])


def test_rows_give_gains_against_the_base_at_both_lengths():
    entries = [Entry("a", {}, 0.50), Entry(BASE_LABEL, {}, 0.52)]
    rows = transfer_rows(entries, {"a": 0.47, BASE_LABEL: 0.50})
    assert rows[0]["search_vs_base_pct"] == pytest.approx(-3.846, abs=1e-3)
    assert rows[0]["full_vs_base_pct"] == pytest.approx(-6.0)
    text = format_transfer(rows, rank_agreement([0.5, 0.52], [0.47, 0.5]), "val/mse_v", 30)
    assert "30-epoch val/mse_v" in text and "-6.0%" in text and "needs 3 or more" in text


@pytest.mark.parametrize("primary, shown, absent", [("I", "sample/wave_i_latency_mae_ms", "wave_v"),
                                                    ("V", "sample/wave_v_latency_mae_ms", "wave_i")])
def test_the_retrain_table_shows_the_latency_of_the_wave_the_species_reports(primary, shown, absent):
    from abr_tune.retrain import comparison

    test = {"test/mse_v": 0.4, "sample/corr": 0.5, "sample/mse_uv": 2.0, shown: 0.25}
    result = {"search_best": {"best_value": 0.5}, "search_max_epochs": 3, "primary_wave": primary,
              "retrain": {"epochs_run": 9, "best_val_mse_v": 0.45}, "test": test,
              "search_checkpoint_test": {**test, shown: 0.3}}
    rows = {line.split()[0]: line.split()[1:] for line in comparison(result).splitlines()[1:]}
    assert rows[shown] == ["0.3", "0.25"] and not [name for name in rows if absent in name]
