"""The racing confirmation's loop with a fake runner: who runs in each round, when it stops, what it says."""

import random

from abr_tune.hpo.confirm import BASE_LABEL, Candidate, format_table, summarise
from abr_tune.hpo.confirm_race import next_runs, race, race_verdict, raced_rows

# label -> seed -> value (mode "min"): "good" is 10% better than the base at every seed, "same" is the base ± noise,
# "bad" 10% worse
VALUES = {"good": {1: 0.90, 2: 0.91, 3: 0.89, 4: 0.90}, "same": {1: 1.001, 2: 0.999, 3: 1.002, 4: 0.998},
          "bad": {1: 1.10, 2: 1.11, 3: 1.09, 4: 1.10}, BASE_LABEL: {1: 1.0, 2: 1.0, 3: 1.0, 4: 1.0}}


def _runner(calls, values=VALUES):
    def run_round(exp, cands, seeds, arrays, stage, only):
        calls.append((stage, sorted(only)))
        got = {}
        for lb, s in only:
            got.setdefault(lb, {})[s] = {"m": values[lb][s]}
        return got, 0
    return run_round


def _cands(*labels):
    return [Candidate(lb, {"x": i}) for i, lb in enumerate([*labels, BASE_LABEL])]


def _race(*labels, spread=None, calls=None):
    return race(None, _cands(*labels), [1, 2, 3, 4], None, "confirm", "m", "min", 0.05,
                _runner([] if calls is None else calls), slots=2, spread=spread)


def test_a_clear_winner_stops_after_the_minimum_seeds():
    calls = []
    runs, missing, record = _race("good", calls=calls)
    # without a declared spread no decision before 2 seeds: base and good at seeds 1, 2, then decided
    assert missing == 0 and calls == [("confirm/round1", [("base", 1), ("good", 1)]),
                                      ("confirm/round2", [("base", 2), ("good", 2)])]
    assert record["winner"] == "good" and record["comparisons"]["good vs base"]["decision"] == "better"
    rows = raced_rows(summarise({k: {s: r["m"] for s, r in v.items()} for k, v in runs.items()},
                                _cands("good"), [1, 2, 3, 4], "min"), record, 4)
    good = next(r for r in rows if r.label == "good")
    assert good.beats_base and "better than the base after 2 of 4 seeds" in good.race_note
    assert "Racing decisions:" in format_table(rows, "m", [1, 2])
    assert race_verdict(rows, record).startswith("Confirmed winner: good, -9.5% against the base config over 2 seeds")


def test_a_declared_spread_decides_from_the_first_seed():
    calls = []
    _, _, record = _race("good", spread=0.01, calls=calls)
    assert calls == [("confirm/round1", [("base", 1), ("good", 1)])]  # 0.1 apart, radius 3.08 * 0.01
    assert record["winner"] == "good" and record["comparisons"]["good vs base"]["n"] == 1


def test_a_hopeless_candidate_is_dropped_and_the_base_stops_once_nothing_needs_it():
    calls = []
    _, _, record = _race("good", "bad", spread=0.01, calls=calls)
    # round 1: the base and the leader; good beats the base, the base is dropped; round 2: bad's first seed,
    # the slot left filled by good (the base only catches up); bad is decided worse than good: nothing left open
    assert [c[1] for c in calls] == [[("base", 1), ("good", 1)], [("bad", 1), ("good", 2)]]
    assert record["dropped"] == {"base": "good", "bad": "good"} and record["alive"] == ["good"]
    assert record["needed"] == [] and record["seeds_run"] == {"base": 1, "good": 2, "bad": 1}


def test_a_candidate_inside_the_noise_is_stopped_once_the_cap_could_not_decide_it():
    _, _, record = _race("same")  # mean +0.0000 after 2 seeds; even at 4 the radius would be 0.0153 (sigma 0.01)
    assert record["comparisons"]["same vs base"]["decision"] == "noise"
    assert record["seeds_run"] == {"base": 2, "same": 2} and record["winner"] == BASE_LABEL


def test_a_small_real_gain_keeps_running_until_decided():
    values = {**VALUES, "close": {1: 0.98, 2: 0.984, 3: 0.982, 4: 0.981}}
    _, _, record = race(None, _cands("close"), [1, 2, 3, 4], None, "confirm", "m", "min", 0.05, _runner([], values))
    # after 2 seeds: mean -0.018, radius 0.0215 (undecided) but above the cap's 0.0153: on; after 3: -0.0187 < -0.0176
    assert record["comparisons"]["close vs base"] | {"mean": 0, "radius": 0} == \
        {"decision": "better", "n": 3, "mean": 0, "radius": 0, "sigma": 0.01}


def test_rounds_fill_the_slots_fewest_seeds_first():
    assert next_runs({"base": 1, "a": 1, "b": 0}, [["a", "b"], ["b", "base"]], ["base", "a", "b"], 3, 2) == \
        [("b", 0), ("base", 1)]
    assert next_runs({"base": 3, "a": 3}, [["a", "base"]], ["base", "a"], 3, 2) == []  # at the cap
    assert next_runs({"base": 0, "a": 0}, [], ["base", "a"], 3, 2) == []  # nothing open
    # the base dropped: it catches up with "b" but does not run ahead of it
    assert next_runs({"base": 1, "a": 1, "b": 0}, [["a", "b"], ["b", "base"]], ["base", "a", "b"], 3, 2,
                     frozenset({"base"})) == [("b", 0), ("a", 1)]


def test_false_beats_stay_within_alpha_in_a_seeded_null_simulation():
    # two candidates with no real difference from the base, paired spread 1% of the base, cap 5 seeds
    rng, false, trials = random.Random(7), {None: 0, 0.01: 0}, 300
    for _ in range(trials):
        values = {lb: {s: 1.0 + rng.gauss(0, 0.01 / 2 ** 0.5) for s in range(1, 6)} for lb in ("a", "b", BASE_LABEL)}
        for spread in false:
            _, _, record = race(None, _cands("a", "b"), [1, 2, 3, 4, 5], None, "confirm", "m", "min", 0.05,
                                _runner([], values), slots=2, spread=spread)
            false[spread] += sum(record["comparisons"][f"{lb} vs base"]["decision"] == "better" for lb in ("a", "b"))
    assert all(n / (2 * trials) <= 0.05 for n in false.values()), false


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


def test_the_declared_spread_is_checked_and_the_seen_one_reported():
    import pytest

    from abr_tune.errors import UserError
    from abr_tune.hpo.confirm_race import spread_line
    from abr_tune.hpo.space_file import parse_space

    params = {"optim.lr": {"dist": "loguniform", "low": 1e-4, "high": 1e-2}}
    assert parse_space({"params": params, "confirm": {"spread": 0.012}}).confirm.spread == 0.012
    assert parse_space({"params": params}).confirm.race is True  # racing is the default
    with pytest.raises(UserError, match=r"confirm.spread .* must be in \(0, 1\), got 2"):
        parse_space({"params": params, "confirm": {"spread": 2}})
    _, _, record = _race("same")  # paired differences 0.001, -0.001 about their mean 0: sd 0.0014 of 1.0
    assert spread_line(record, None).startswith("Paired seed spread seen: 0.14% of the base value (none declared")
    assert "spread: 0.0021" in spread_line(record, None)
