"""The racing confirmation's loop with a fake runner: who runs at each seed, when it stops, what it says."""

from abr_tune.hpo.confirm import BASE_LABEL, Candidate, format_table, summarise
from abr_tune.hpo.confirm_race import race, raced_rows

# label -> seed -> value (mode "min"): "good" is 10% better than the base at every seed, "same" is the base ± noise
VALUES = {"good": {1: 0.90, 2: 0.91, 3: 0.89, 4: 0.90}, "same": {1: 1.001, 2: 0.999, 3: 1.002, 4: 0.998},
          BASE_LABEL: {1: 1.0, 2: 1.0, 3: 1.0, 4: 1.0}}


def _runner(calls):
    def run_round(exp, cands, seeds, arrays, stage):
        calls.append((stage, [c.label for c in cands]))
        return {c.label: {s: {"m": VALUES[c.label][s]} for s in seeds} for c in cands}, 0
    return run_round


def _cands(*labels):
    return [Candidate(lb, {"x": i}) for i, lb in enumerate([*labels, BASE_LABEL])]


def test_a_clear_winner_is_decided_and_stops_the_race_before_the_cap():
    calls = []
    runs, missing, log = race(None, _cands("good"), [1, 2, 3, 4], None, "confirm", "m", "min", 0.05, _runner(calls))
    assert missing == 0 and [c[0] for c in calls] == ["confirm/seed1", "confirm/seed2"]  # min 2 seeds, then decided
    assert log[-1]["decisions"]["good"]["vs_base"] == "better"
    rows = raced_rows(summarise({k: {s: r["m"] for s, r in v.items()} for k, v in runs.items()},
                                _cands("good"), [1, 2, 3, 4], "min"), log, 4)
    good = next(r for r in rows if r.label == "good")
    assert good.beats_base and "better than the base after 2 of 4 seeds" in good.race_note
    assert "Racing decisions:" in format_table(rows, "m", [1, 2])


def test_a_candidate_inside_the_noise_runs_to_the_cap_and_stays_undecided():
    calls = []
    _, _, log = race(None, _cands("good", "same"), [1, 2, 3, 4], None, "confirm", "m", "min", 0.05, _runner(calls))
    assert [c[1] for c in calls] == [["good", "same", BASE_LABEL], ["good", "same", BASE_LABEL],
                                     ["same", BASE_LABEL], ["same", BASE_LABEL]]  # "good" left once decided
    assert log[-1]["decisions"]["same"]["vs_base"] == "undecided"


def test_the_report_states_the_race_decisions_and_run_counts():
    from abr_tune.hpo.report.confirmation import confirmation_blocks

    row = {"label": "good", "mean": 0.9, "ci95": 0.01, "search_value": 0.88, "diff_mean": -0.1, "diff_ci95": 0.01,
           "p_value": 0.01, "beats_base": True, "race_note": "better than the base after 2 of 3 seeds: ..."}
    base = {"label": BASE_LABEL, "mean": 1.0, "ci95": 0.01, "search_value": None, "race_note": None}
    summary = {"max_epochs": 10, "confirmation": {
        "state": "done", "seeds": [43, 44, 45], "top_k": 1, "verdict": "Confirmed winner: good", "rows": [row, base],
        "race": {"alpha": 0.05, "seed_cap": 3, "runs": 4, "runs_fixed": 6, "rounds": []}}}
    text = " ".join(str(payload) for _, payload in confirmation_blocks(summary, "val/mse_v"))
    assert "4 runs instead of 6" in text and "better than the base after 2 of 3 seeds" in text
