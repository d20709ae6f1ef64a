"""The classifier two-sample test on known answers (simulated recordings with ground truth)."""

from __future__ import annotations

import numpy as np
import pytest

from abr_tune.data import simulate
from abr_tune.data.synthetic import fresh_recordings
from abr_tune.fidelity.c2st import c2st, patient_folds, wilson_interval

FS = 20000.0


@pytest.fixture(scope="module")
def recordings():
    return simulate(80, 8, seed=3)


def test_two_draws_of_the_same_distribution_are_indistinguishable(recordings):
    result = c2st(recordings.signals, fresh_recordings(recordings, seed=1), recordings.static,
                  recordings.patient_id, FS)
    print(f"\nsame distribution: accuracy {result['accuracy']:.3f} [{result['ci_low']:.3f}, {result['ci_high']:.3f}]")
    assert abs(result["accuracy"] - 0.5) < 0.06
    assert result["ci_low"] < 0.5 + 0.02 and result["n"] == 2 * len(recordings) and result["folds"] == 5


def test_a_shifted_wave_v_is_told_apart(recordings):
    clear = recordings.subset(recordings.response_present & (recordings.static[:, 3] >= 3.1))
    noise = fresh_recordings(clear, seed=2) - clear.clean_uv
    lag = int(1.5e-3 * FS)  # every wave 1.5 ms late
    shifted = np.roll(clear.clean_uv, lag, axis=1)
    shifted[:, :lag] = 0.0
    result = c2st(clear.signals, shifted + noise, clear.static, clear.patient_id, FS)
    print(f"\nwave V 1.5 ms late: accuracy {result['accuracy']:.3f}")
    assert result["accuracy"] > 0.9 and result["ci_low"] > 0.85


def test_noise_free_generation_is_told_apart(recordings):
    """A generator without realistic residual noise is caught even where there is no response."""
    result = c2st(recordings.signals, recordings.clean_uv, recordings.static, recordings.patient_id, FS)
    assert result["accuracy"] > 0.95


def test_no_patient_is_in_a_training_and_a_test_fold(recordings):
    groups = np.r_[recordings.patient_id, recordings.patient_id]
    folds = patient_folds(recordings.patient_id)
    assert len(folds) == 5
    tested = np.concatenate([test for _, test in folds])
    assert sorted(tested) == list(range(len(groups)))  # every row scored exactly once
    for train, test in folds:
        assert not set(groups[train]) & set(groups[test])


def test_wilson_interval_known_values():
    low, high = wilson_interval(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-4) and high == pytest.approx(0.5962, abs=1e-4)
    assert wilson_interval(0, 10)[0] == pytest.approx(0.0, abs=1e-12)


def test_new_subjects_under_the_same_conditions_are_the_ideal_generator(recordings):
    """New simulated subjects under each recording's conditions: as realistic as fresh recordings (the
    C2ST at chance), but without the recorded subject's latency offset and amplitude scale, so they
    score below the oracle on r vs the noise-free response and the wave V latency: the ceiling a
    generator sampling the true distribution can reach."""
    from abr_tune.data.synthetic import new_subject_recordings
    from abr_tune.fidelity.metrics import fidelity_metrics, oracle_metrics

    rows = np.arange(0, len(recordings), 2)  # 320 recordings of 80 patients
    ref = recordings.subset(rows)
    draws = new_subject_recordings(ref, seed=0, candidates=500)
    assert draws.shape == ref.signals.shape and draws.dtype == np.float32
    np.testing.assert_array_equal(draws, new_subject_recordings(ref, seed=0, candidates=500))
    assert not np.array_equal(draws, new_subject_recordings(ref, seed=1, candidates=500))
    ideal, oracle = fidelity_metrics(draws[None], recordings, rows, FS), oracle_metrics(recordings, rows, FS)
    print(f"\nideal: r {ideal['corr_truth']:.3f} V MAE {ideal['wave_v_latency_mae_ms']:.3f} "
          f"C2ST {ideal['c2st_acc']:.3f}; oracle: r {oracle['corr_truth']:.3f} "
          f"V MAE {oracle['wave_v_latency_mae_ms']:.3f}")
    assert abs(ideal["c2st_acc"] - 0.5) < 0.07
    assert ideal["corr_truth"] < oracle["corr_truth"] - 0.04
    assert ideal["wave_v_latency_mae_ms"] > oracle["wave_v_latency_mae_ms"] + 0.05
    assert abs(ideal["detection_acc"] - oracle["detection_acc"]) < 0.06  # presence follows the conditions
    assert ideal["li_slope_rel_error"] < 0.15
