"""The one registry of reported metrics: what the trainer's samples report is registered, and the search's
objectives, constraints and trial histories read their directions, ranges and epochs from it."""

from __future__ import annotations

import math

import pytest

from abr_tune.data import simulate
from abr_tune.errors import UserError
from abr_tune.fidelity.metrics import sample_metrics
from abr_tune.hpo.objectives import parse_constraint
from abr_tune.metrics_registry import (
    HISTORY_KEYS,
    METRIC_MODES,
    METRIC_RANGES,
    REGISTRY,
    SAMPLED,
    WORST_WHEN_UNDEFINED,
    sampled,
    wave_metric,
)

FS = 20000.0


def test_every_sample_metric_the_trainer_reports_is_registered_and_measured_on_sampling_epochs():
    sim = simulate(12, 4, seed=5)
    reported = set(sample_metrics(sim.signals, sim.signals, sim.v_latency_ms, FS))
    assert reported - set(REGISTRY) == set()
    assert all(REGISTRY[name].sampled for name in reported)
    assert not sampled("val/mse_v") and not REGISTRY["epoch/train_loss_avg"].sampled


def test_wave_metrics_are_named_after_the_primary_wave():
    assert wave_metric("V", "latency_mae_ms") == "sample/wave_v_latency_mae_ms"
    assert wave_metric("I", "missed_frac") == "sample/wave_i_missed_frac"
    assert SAMPLED == wave_metric("V", "missed_frac") and SAMPLED in REGISTRY
    assert WORST_WHEN_UNDEFINED == (wave_metric("V", "latency_mae_ms"),)


def test_objectives_ranges_and_history_come_from_the_registry():
    assert METRIC_MODES["sample/corr"] == "max" and METRIC_MODES["sample/c2st_acc"] == "min"
    assert METRIC_RANGES["sample/corr"] == (-1.0, 1.0) and METRIC_RANGES["val/mse_v"] == (0.0, math.inf)
    assert "train/lr" not in METRIC_MODES and "train/lr" in HISTORY_KEYS  # history only, not an objective
    assert "sample/c2st_acc" in METRIC_MODES and "sample/c2st_acc" not in HISTORY_KEYS
    assert parse_constraint("sample/detection_acc >= 0.9", METRIC_RANGES).bound == 0.9
    with pytest.raises(UserError, match=r"\[0, 1\]"):
        parse_constraint("sample/detection_acc >= 1.5", METRIC_RANGES)
