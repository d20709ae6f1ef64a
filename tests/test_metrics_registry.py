"""The one registry of reported metrics: what the trainer's samples report is registered, and the search's
objectives, constraints and trial histories read their directions, ranges and epochs from it."""

from __future__ import annotations

import math

import mouse_like
import pytest

from abr_tune.data import simulate
from abr_tune.errors import UserError
from abr_tune.fidelity.metrics import sample_metrics
from abr_tune.hpo.objectives import objective_value, parse_constraint, shown, valued_epoch
from abr_tune.hpo.space_file import parse_space
from abr_tune.metrics_registry import (
    METRIC_MODES,
    METRIC_RANGES,
    REGISTRY,
    SAMPLED,
    in_history,
    mode_of,
    range_of,
    registry,
    sampled,
    sampled_marker,
    wave_metric,
    worst_when_undefined,
)
from abr_tune.physiology.profiles import HUMAN, MOUSE, PROFILES

FS = 20000.0


def test_every_sample_metric_the_trainer_reports_is_registered_and_measured_on_sampling_epochs():
    sim = simulate(12, 4, seed=5)
    reported = set(sample_metrics(sim.signals, sim.signals, sim.v_latency_ms, FS))
    assert reported - set(REGISTRY) == set()
    assert all(REGISTRY[name].sampled for name in reported)
    assert not sampled("val/mse_v") and not REGISTRY["epoch/train_loss_avg"].sampled


@pytest.mark.parametrize("species", sorted(PROFILES))
def test_a_species_registry_lists_exactly_the_sample_metrics_its_runs_report(species):
    """A mouse run names its wave metrics after wave I: its registry holds no wave V metric it never reports."""
    profile = PROFILES[species]
    if species == "mouse":
        series = mouse_like.level_series(4, seed=2)
        signals, latency, fs = series.signals, series.wave_i_ms, mouse_like.FS
    else:
        sim = simulate(12, 4, seed=5)
        signals, latency, fs = sim.signals, sim.v_latency_ms, FS
    reported = set(sample_metrics(signals, signals, latency, fs, profile=profile))
    reported.add("sample/c2st_acc")  # the trainer's validation adds it beside sample_metrics' own
    listed = registry(profile.primary)
    assert {name for name, m in listed.items() if m.sampled} == reported
    assert sampled_marker(profile.primary) in reported
    assert [m.name for m in listed.values() if m.worst_when_undefined] == [wave_metric(profile.primary,
                                                                                      "latency_mae_ms")]


def test_the_mouse_registry_names_wave_i_where_the_human_one_names_wave_v():
    mouse, human = registry(MOUSE.primary), registry(HUMAN.primary)
    assert not [name for name in mouse if "wave_v" in name] and not [name for name in human if "wave_i_" in name]
    assert sampled_marker(MOUSE.primary) == "sample/wave_i_missed_frac" and sampled_marker() == SAMPLED
    assert list(mouse) == [name.replace("wave_v_", "wave_i_") for name in human]  # same rows, same order
    assert human == REGISTRY  # the module's constants are the human profile's


def test_wave_metrics_are_named_after_the_primary_wave():
    assert wave_metric("V", "latency_mae_ms") == "sample/wave_v_latency_mae_ms"
    assert wave_metric("I", "missed_frac") == "sample/wave_i_missed_frac"
    assert SAMPLED == wave_metric("V", "missed_frac") and SAMPLED in REGISTRY
    assert [n for n in REGISTRY if worst_when_undefined(n)] == [wave_metric("V", "latency_mae_ms")]


def test_objectives_ranges_and_history_come_from_the_registry():
    assert METRIC_MODES["sample/corr"] == "max" and METRIC_MODES["sample/c2st_acc"] == "min"
    assert METRIC_RANGES["sample/corr"] == (-1.0, 1.0) and METRIC_RANGES["val/mse_v"] == (0.0, math.inf)
    assert "train/lr" not in METRIC_MODES and in_history("train/lr")  # history only, not an objective
    assert "sample/c2st_acc" in METRIC_MODES and not in_history("sample/c2st_acc")
    assert parse_constraint("sample/detection_acc >= 0.9").bound == 0.9
    with pytest.raises(UserError, match=r"\[0, 1\]"):
        parse_constraint("sample/detection_acc >= 1.5")


def test_a_mouse_runs_wave_metrics_are_objectives_with_the_human_rows_directions_and_ranges():
    latency, missed = wave_metric("I", "latency_mae_ms"), sampled_marker("I")
    assert mode_of(latency) == "min" and worst_when_undefined(latency) and in_history(missed)
    assert range_of(missed) == (0.0, 1.0) and parse_constraint(f"{missed} <= 0.2").bound == 0.2
    assert mode_of("sample/wave_i_no_such_measure") is None and mode_of("val/no_such") is None
    # a sampling epoch of a mouse run (its own marker finite) that found no wave I: the worst latency error
    sampling, other = {"epoch": 4, missed: 1.0}, {"epoch": 3, "val/mse_v": 0.2}
    assert objective_value(latency, sampling) == math.inf and objective_value(latency, other) is None
    assert shown(latency, math.inf) == "no wave I" and shown(wave_metric("V", "latency_mae_ms"), None) == "no wave V"
    history = [{"epoch": 2, missed: 0.0, latency: 0.3}, sampling]
    assert valued_epoch(history, [latency], "min")["epoch"] == 2


def _space(species: str, metric: str):
    return parse_space({"base": {"data": {"species": species}}, "metric": metric,
                        "params": {"optim.lr": {"dist": "loguniform", "low": 1e-4, "high": 1e-3}}})


def test_a_search_may_optimise_the_wave_its_species_scores_and_no_other():
    _space("mouse", "sample/wave_i_latency_mae_ms").check(_space("mouse", "val/mse_v").base_raw(), n_random=2)
    human = _space("human", "sample/wave_i_latency_mae_ms")
    with pytest.raises(UserError, match=r"scores wave I, but the base config's human runs score wave V; "
                                        r"use 'sample/wave_v_latency_mae_ms'"):
        human.check(human.base_raw(), n_random=2)
    with pytest.raises(UserError, match=r"'sample/wave_x_y' is not reported every epoch.*sample/wave_i_latency"):
        _space("mouse", "sample/wave_x_y")
