"""Physiology per species: the profiles' windows, the config that picks and overrides them, the mouse
picker on known answers (simulated mouse-like series with band-limited noise), metric names per profile."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import tiny_config
from matplotlib.text import Text
from mouse_like import FS, LATENCIES_MS, LENGTH, band_limited_noise, level_series, waves
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from abr_tune.config import load_config
from abr_tune.data import ABRArrays, simulate
from abr_tune.errors import UserError
from abr_tune.fidelity.c2st import features
from abr_tune.fidelity.evaluation import EvalOptions, evaluate
from abr_tune.fidelity.metrics import fidelity_metrics, sample_metrics
from abr_tune.physiology.detection import series_truth
from abr_tune.physiology.measures import detect_response
from abr_tune.physiology.peaks import pick_peaks, pick_primary, pick_wave_v
from abr_tune.physiology.profiles import HUMAN, MOUSE
from abr_tune.train import train_abr

T_MS = np.arange(LENGTH) * 1000.0 / FS


def test_human_profile_is_todays_picker_exactly():
    assert HUMAN.windows_ms() == {"I": (1.0, 3.0), "III": (3.0, 5.0), "V": (4.5, 10.0)} and HUMAN.primary == "V"
    sim = simulate(60, 10, seed=5)
    for a, b in zip(pick_primary(sim.signals, 20000.0, HUMAN), pick_wave_v(sim.signals, 20000.0), strict=True):
        np.testing.assert_array_equal(a, b)
    assert load_config().profile == HUMAN


def test_mouse_windows_hold_each_wave_from_90_db_to_threshold():
    windows = MOUSE.windows_ms()
    assert list(windows) == ["I", "II", "III", "IV", "V"] and MOUSE.primary == "I"
    for level in (90.0, 60.0, 40.0):  # threshold 40: the latest latencies
        shift = 0.9 + 0.008 * (90.0 - level)
        for (lo, hi), latency in zip(windows.values(), LATENCIES_MS, strict=True):
            assert lo < latency + shift < hi
    assert windows["I"][1] < LATENCIES_MS[1] + 0.9  # wave II at 90 dB lies past wave I's window
    assert MOUSE.baseline_ms() == (0.0, 1.9) and windows["V"][1] < 200 * 1000.0 / FS  # inside a 200-sample crop


def test_mouse_picker_finds_every_wave_on_clean_traces():
    clean = np.stack([waves(level, 30.0, 1.5, T_MS)[0] for level in (90.0, 70.0, 50.0)])
    picked = pick_peaks(clean, FS, MOUSE)
    for i, level in enumerate((90.0, 70.0, 50.0)):
        shift = 0.9 + 0.008 * (90.0 - level)
        for wave, latency in zip(picked, LATENCIES_MS, strict=True):
            assert picked[wave][0][i] == pytest.approx(latency + shift, abs=0.03), (wave, level)


def test_mouse_wave_i_is_the_first_clear_peak_not_a_larger_wave_ii_entering_its_window():
    lo, hi = MOUSE.primary_window_ms()

    def wave(latency: float, size: float) -> np.ndarray:  # a peak and its trough 0.35 ms later
        return size * (np.exp(-0.5 * ((T_MS - latency) / 0.12) ** 2) - 0.8 * np.exp(-0.5 * ((T_MS - latency - 0.35)
                                                                                          / 0.14) ** 2))

    wave_ii = wave(hi - 0.05, 1.5)  # a loud wave II just inside wave I's window (an early system delay)
    assert pick_primary((wave(lo + 0.3, 1.0) + wave_ii)[None], FS, MOUSE)[0][0] == pytest.approx(lo + 0.3, abs=0.02)
    # Under half of wave II's size it is not the clear first peak: the larger one is taken.
    assert pick_primary((wave(lo + 0.3, 0.5) + wave_ii)[None], FS, MOUSE)[0][0] == pytest.approx(hi - 0.05, abs=0.02)


def test_mouse_wave_i_through_band_limited_noise():
    s = level_series(60, seed=2)
    latency, _ = pick_primary(s.signals, FS, MOUSE)
    above = s.levels - np.array([s.threshold[k] for k in s.subject])
    loud = above >= 30  # wave I 0.5-2 µV against 0.15 µV RMS of noise
    assert np.isfinite(latency[loud]).mean() > 0.85  # measured 0.90 (a small wave I is refused, not misplaced)
    assert np.nanmean(np.abs(latency - s.wave_i_ms)[loud]) < 0.05  # measured 0.018 ms
    assert np.isfinite(latency[~s.present]).mean() < 0.08  # measured 3% false wave I


def test_fast_noise_criterion_fails_on_band_limited_noise_and_the_baseline_one_does_not():
    noise = band_limited_noise(np.random.default_rng(4), 400)
    human = np.isfinite(pick_primary(noise, FS, HUMAN)[0]).mean()
    mouse = np.isfinite(pick_primary(noise, FS, MOUSE)[0]).mean()
    assert human > 0.9 and mouse < 0.08  # measured 99% and 4%: the fast part of low-passed noise is ~0


def test_a_species_window_may_run_past_a_short_record_but_a_given_one_may_not():
    assert load_config(overrides={"data.sample_rate_hz": 25000.0}).profile == HUMAN  # 8 ms: V's 4.5-10 is searched
    with pytest.raises(UserError, match=r"physiology.waves.V lies at \[4.5, 9\] ms .* outside the record's \[0, 8\]"):
        load_config(overrides={"data.sample_rate_hz": 25000.0, "physiology.waves": {"V": [4.5, 9.0]}})


def test_species_and_overrides_from_the_config():
    cfg = load_config(overrides={"data.species": "mouse", "physiology.delay_ms": 0.4,
                                 "physiology.waves": {"I": [1.0, 1.9]}, "physiology.primary_wave": "II"})
    assert cfg.profile.windows_ms()["I"] == (1.4, 2.3) and cfg.profile.primary == "II"
    assert cfg.profile.windows_ms()["V"] == (5.2, 7.2)  # the species' own, shifted by the new delay


@pytest.mark.parametrize("override, message", [
    ({"physiology.waves": {"I": [2.0, 1.0]}}, "physiology.waves.I must be [start_ms, end_ms]"),
    ({"physiology.waves": {"I": [1.0, float("nan")]}}, "two finite numbers"),
    ({"physiology.waves": {"VIII": [1.0, 2.0]}}, "wave names are I, II, III"),
    ({"physiology.waves": {"V": [4.5, 12.0]}}, "outside the record's [0, 10] ms"),
    ({"data.species": "mouse", "physiology.waves": {"II": [0.5, 0.9]}}, "must start in latency order"),
    ({"physiology.primary_wave": "II"}, "'II' is not one of the waves (I, III, V)"),
    ({"physiology.delay_ms": -1.0}, "physiology.delay_ms must be in [0, 10)"),
    ({"data.species": "mouse", "physiology.delay_ms": 9.0}, "physiology.waves.IV lies at [12.6, 14] ms"),
    ({"data.species": "dog"}, "allowed values: 'human', 'mouse'"),
])
def test_bad_physiology_config_is_refused_with_the_fix(override, message):
    with pytest.raises(UserError, match=None) as err:
        load_config(overrides=override)
    assert message in str(err.value)


def test_metric_names_carry_the_primary_wave():
    s = level_series(6, seed=3)
    latency, _ = pick_primary(s.signals, FS, MOUSE)
    mouse = sample_metrics(s.signals, s.signals, latency, FS, response_present=s.present, profile=MOUSE)
    assert {"sample/wave_i_latency_mae_ms", "sample/wave_i_missed_frac"} <= set(mouse)
    assert not any("wave_v" in k for k in mouse)
    assert mouse["sample/wave_i_latency_mae_ms"] == 0.0 and mouse["sample/detection_acc"] == pytest.approx(
        (detect_response(s.signals, FS, MOUSE) == s.present).mean())
    human = sample_metrics(s.signals, s.signals, latency, FS)
    assert {"sample/wave_v_latency_mae_ms", "sample/wave_v_missed_frac"} <= set(human)


def test_fidelity_report_follows_the_mouse_profile():
    s = level_series(8, seed=6)
    static = np.column_stack([np.full(len(s.levels), 0.5), s.levels, np.full(len(s.levels), 21.1),
                              np.full(len(s.levels), 1.0)])
    nan = np.full(len(s.levels), np.nan)
    arrays = ABRArrays(signals=s.signals, static=static, patient_id=s.subject, v_latency_ms=nan, v_amplitude_uv=nan)
    idx = np.arange(len(s.levels))
    m = fidelity_metrics(s.signals[None], arrays, idx, FS, MOUSE)
    assert {f"wave_{w}_latency_mae_ms" for w in ("i", "ii", "iii", "iv", "v")} <= set(m)
    assert m["wave_i_latency_mae_ms"] == 0.0  # the recordings against themselves
    # No marks: the truth is each series' cross-level agreement, which the single-trace detector is scored on.
    truth = series_truth(s.signals, static, s.subject, FS, MOUSE)
    assert m["detection_acc"] == pytest.approx((detect_response(s.signals, FS, MOUSE) == truth).mean())
    assert (truth == s.present).mean() > 0.8
    # Truth from the level series (no marks): the wave I latency-level slope of these series, ~ -0.008 ms/dB.
    assert m["li_slope_truth_ms_per_db"] == pytest.approx(-0.008, abs=0.003)


@pytest.fixture(scope="module")
def mouse_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mouse")
    return train_abr(tiny_config(tmp, data={"species": "mouse", "sample_rate_hz": FS}, trainer={"max_epochs": 1}))


def test_a_mouse_run_logs_the_wave_i_scalars(mouse_run):
    summary = mouse_run
    acc = EventAccumulator(summary["run_dir"], size_guidance={"scalars": 0})
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"sample/wave_i_latency_mae_ms", "sample/wave_i_missed_frac", "sample/detection_acc"} <= tags
    assert not {t for t in tags if t.startswith("sample/wave_v")}


def _mouse_file(tmp_path) -> tuple:
    """A mouse .npz of 4 simulated level series without marks (200 samples), its series and conditions."""
    s = level_series(4, seed=12)
    n = len(s.levels)
    static = np.column_stack([np.full(n, 0.5), s.levels, np.full(n, 21.1), np.ones(n)]).astype(np.float32)
    path = tmp_path / "mouse.npz"
    np.savez(path, signals=s.signals[:, :200].astype(np.float32), static=static, patient_id=s.subject)
    return path, s, static


def test_evaluating_a_mouse_file_without_marks_scores_wave_i_against_its_level_series(mouse_run, tmp_path):
    path, s, static = _mouse_file(tmp_path)
    n = len(s.levels)
    options = EvalOptions(split="all", cfg_scales=(1.0,), repeats=2, max_conditions=n, steps=2, data_path=str(path))
    report = evaluate(mouse_run["best_checkpoint"], options, verbose=False)
    assert report["species"] == "mouse" and report["primary_wave"] == "I"
    assert "level series' cross-level agreement" in report["ground_truth_detail"]
    assert {"wave_i_latency_mae_ms", "wave_ii_found_frac", "wave_iv_latency_mae_ms"} <= set(report["by_cfg_scale"]["1"])
    truth = series_truth(s.signals[:, :200], static, s.subject, FS, MOUSE)
    oracle = report["oracle"]
    assert oracle["detection_acc"] == pytest.approx((detect_response(s.signals[:, :200], FS, MOUSE) == truth).mean())
    assert np.isnan(oracle["wave_i_latency_mae_ms"])  # nothing marked: no truth for the picker to meet


def test_a_mouse_evaluation_names_wave_i_in_its_summary_and_figures(mouse_run, tmp_path, monkeypatch):
    import abr_tune.fidelity.figures as figures

    texts, draw = {}, figures.evaluation_figures

    def keep_texts(*args, **kwargs):  # every text the written figures hold: titles, axis labels, legends
        drawn = draw(*args, **kwargs)
        texts.update({name: " | ".join(t.get_text() for t in fig.findobj(Text)) for name, fig in drawn.items()})
        return drawn

    monkeypatch.setattr(figures, "evaluation_figures", keep_texts)
    path, s, _ = _mouse_file(tmp_path)
    options = EvalOptions(split="all", cfg_scales=(1.0, 2.0), repeats=2, max_conditions=len(s.levels), steps=2,
                          data_path=str(path))
    report = evaluate(mouse_run["best_checkpoint"], options, tmp_path / "eval", verbose=False)
    summary = (tmp_path / "eval" / "summary.md").read_text()
    assert ("| I latency MAE (ms) | I latency bias (ms) | I amplitude error (%) | I amplitude bias (%) | I found | "
            "II latency MAE (ms) | III latency MAE (ms) | IV latency MAE (ms) | V latency MAE (ms) |") in summary
    assert "| I latency MAE | I amplitude error | detection |" in summary  # the table relative to the oracle
    assert "one least-squares fit of wave I latency" in summary and "**I/II/III/IV/V latency, amplitude**" in summary
    assert not {"V latency bias", "V found", "wave V latency", "V amplitude"} & {t for t in summary.split("|")}
    assert "wave V of at least" not in summary and "finds wave I of at least" in summary
    assert {"wave_i_latency_mae_ms", "wave_i_found_frac"} <= set(report["best_cfg_scale"])
    assert not any(k.startswith("wave_v") for k in report["best_cfg_scale"])
    assert set(report["relative_to_oracle"]["1"]) >= {"wave_i_latency_mae_ms", "wave_i_amplitude_error_pct"}
    assert "wave I latency (ms)" in texts["latency_intensity.png"]
    assert "Wave I latency–intensity function" in texts["latency_intensity.png"]
    assert "wave I latency error, generated − truth (ms)" in texts["error_histograms.png"]
    assert "wave I amplitude error (% of truth)" in texts["error_histograms.png"]
    assert not any("wave V" in t or "Wave V" in t for t in texts.values())


def test_the_c2st_features_carry_the_profiles_primary_wave():
    s = level_series(4, seed=3)
    conditions = s.levels[:, None]
    for profile in (MOUSE, HUMAN):
        latency, amplitude = pick_primary(s.signals, FS, profile)
        x = features(s.signals, conditions, FS, clinic=False, profile=profile)
        for column in (np.isfinite(latency), np.nan_to_num(latency), np.nan_to_num(amplitude)):
            assert np.isclose(x, column[:, None].astype(float)).all(axis=0).any()
    human = features(s.signals, conditions, FS, clinic=False, profile=HUMAN)
    np.testing.assert_array_equal(features(s.signals, conditions, FS, clinic=False), human)  # human by default
    wave_i, _ = pick_primary(s.signals, FS, MOUSE)  # a mouse's latency feature is its wave I: ~2.3 ms on the record
    assert np.nanmedian(np.abs(wave_i - s.wave_i_ms)) < 0.05  # measured 0.016 ms on the 20 of 33 found
    assert np.nanmin(pick_primary(s.signals, FS, HUMAN)[0]) >= 4.5  # the human one, wave V, lies past 4.5 ms
