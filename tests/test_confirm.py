"""Confirmation statistics over seeds, on the figures measured by hand on the quick start's winner."""

from __future__ import annotations

import math

import pytest

from abr_tune.hpo.confirm import (
    BASE_LABEL,
    Candidate,
    format_table,
    paired,
    summarise,
    t_half_width,
    verdict_line,
    winner,
)

SEEDS = [1, 2, 3]
BASE = {1: 0.5352, 2: 0.5327, 3: 0.5403}
WINNER = {1: 0.5168, 2: 0.5161, 3: 0.5203}


def _candidates(*labels: str) -> list[Candidate]:
    return [Candidate(label, {"optim.lr": 1e-3}) for label in labels]


def test_t_interval_matches_the_textbook_value():
    # mean 0.5361, sd 0.003873; t(0.975, 2) = 4.3027 -> 0.00962
    assert t_half_width(list(BASE.values())) == pytest.approx(4.302653 * 0.0038734 / math.sqrt(3), rel=1e-4)
    assert math.isnan(t_half_width([0.5]))


def test_the_measured_winner_beats_the_base_beyond_seed_noise():
    rows = summarise({BASE_LABEL: BASE, "w": WINNER}, _candidates("w", BASE_LABEL), SEEDS, "min")
    assert [r.label for r in rows] == ["w", BASE_LABEL]  # best mean first
    w = rows[0]
    assert w.diff_mean == pytest.approx(-0.018333, abs=1e-6)
    assert w.beats_base and w.p_value < 0.01
    assert winner(rows) is w
    assert "-3.4%" in verdict_line(rows)
    table = format_table(rows, "val/mse_v", SEEDS)
    assert "beats the base" in table and "0.5177 ± " in table


def test_a_difference_inside_seed_noise_confirms_nothing():
    noisy = {1: 0.5332, 2: 0.5351, 3: 0.5371}  # better on average by 0.0009, seed sd ~0.004
    rows = summarise({BASE_LABEL: BASE, "n": noisy}, _candidates("n", BASE_LABEL), SEEDS, "min")
    assert rows[0].label == "n" and not rows[0].beats_base and not rows[0].worse_than_base
    assert winner(rows) is None
    assert verdict_line(rows).startswith("No configuration beats the base config beyond seed noise")


def test_direction_follows_the_mode_and_missing_seeds_are_reported():
    higher = {1: 0.62, 2: 0.63}  # a max metric, one seed lost
    base = {1: 0.55, 2: 0.56, 3: 0.55}
    rows = summarise({BASE_LABEL: base, "h": higher}, _candidates("h", BASE_LABEL), SEEDS, "max")
    h = rows[0]
    assert h.label == "h" and h.seeds_missing == [3]
    assert paired(higher, base)[0] == pytest.approx(0.07)
    assert h.beats_base  # constant paired difference: certain sign


def test_a_configuration_worse_beyond_seed_noise_is_said_to_be_worse():
    worse = {1: 0.5552, 2: 0.5547, 3: 0.5601}  # the quick start's fourth-ranked trial: +3.9%
    rows = summarise({BASE_LABEL: BASE, "x": worse}, _candidates("x", BASE_LABEL), SEEDS, "min")
    x = next(r for r in rows if r.label == "x")
    assert x.worse_than_base and not x.beats_base
    assert "worse than the base" in format_table(rows, "val/mse_v", SEEDS)
    assert winner(rows) is None
