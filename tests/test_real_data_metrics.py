"""The held-out real-data metrics (abr_tune/fidelity/heldout.py) on cases with known answers, and the
real-data benchmark's JSON on a tiny run over a simulated mouse recordings file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mouse_like
import numpy as np
import pytest
from mouse_like import FS, LENGTH, LEVELS, band_limited_noise, level_series, waves

from abr_tune.fidelity.heldout import (
    Recordings,
    c2st_accuracy,
    heldout_metrics,
    level_slopes,
    median_waveform_r,
    responding_conditions,
    threshold_error_db,
    within_group_slope,
)
from abr_tune.physiology.profiles import MOUSE

ROOT = Path(__file__).resolve().parents[1]


def recordings(series, age: float = 3.0) -> Recordings:
    """Simulated level series as held-out recordings: level and age conditions, one group."""
    static = np.c_[series.levels, np.full(len(series.levels), age)]
    return Recordings(series.signals, static, None, series.subject, level_column=0)


@pytest.fixture(scope="module")
def real() -> Recordings:
    return recordings(level_series(24, seed=1, thresholds_db=(45.0, 45.0)))


def quiet(n_subjects: int, threshold_db: float) -> Recordings:
    """Level series whose responses stand far above their noise (0.02 µV RMS): every subject is detected from
    its threshold up, so a subject's threshold and the group's 50%-detection level are the same level."""
    t_ms = np.arange(LENGTH) * 1000.0 / FS
    clean = np.stack([waves(level, threshold_db, 1.5, t_ms)[0] for _ in range(n_subjects) for level in LEVELS])
    signals = clean + band_limited_noise(np.random.default_rng(0), len(clean), rms_uv=0.02)
    levels, subject = np.tile(LEVELS, n_subjects), np.repeat(np.arange(n_subjects), len(LEVELS))
    return Recordings(signals, np.c_[levels, np.full(len(levels), 3.0)], None, subject, level_column=0)


def test_identical_sets_score_r_1_ratios_1_and_no_threshold_error(real):
    m = heldout_metrics(real.signals, real, real, FS, MOUSE)
    assert m["mean_waveform_r"] == pytest.approx(1.0) and m["mean_waveform_r_oracle"] == pytest.approx(1.0)
    assert m["latency_slope_ratio"] == pytest.approx(1.0) and m["amplitude_growth_ratio"] == pytest.approx(1.0)
    assert m["c2st_acc"] == pytest.approx(0.5, abs=0.05)  # the same waveforms in both classes: chance
    assert m["detail"]["generated"]["latency_slope_ms_per_db"] < 0  # latency falls as the level rises
    # With noise near threshold the median subject's threshold and the level where half the records respond
    # can differ by a step (a subject detected late at 50 dB, strays at 45): at most the level step.
    assert m["threshold_error_db"] <= 5.0
    assert m["threshold_error_db_oracle"] == m["threshold_error_db"]  # the training set is the same set here
    clear = quiet(8, 45.0)
    assert heldout_metrics(clear.signals, clear, clear, FS, MOUSE)["threshold_error_db"] == 0.0


def test_responding_conditions_are_the_levels_at_and_above_a_shared_threshold(real):
    levels = sorted(float(k.split("|")[1]) for k in responding_conditions(real, FS, MOUSE))
    assert levels[0] in (45.0, 50.0) and levels[-1] == 90.0  # the detector finds the 45 dB threshold (late by <= 5)
    assert levels == list(np.arange(levels[0], 95.0, 5.0))


def test_doubled_amplitudes_double_the_growth_and_keep_the_latency_slope(real):
    m = heldout_metrics(2 * real.signals, real, real, FS, MOUSE)
    assert m["amplitude_growth_ratio"] == pytest.approx(2.0)
    assert m["latency_slope_ratio"] == pytest.approx(1.0)
    assert m["mean_waveform_r"] == pytest.approx(1.0)  # r ignores scale


def test_a_doubled_latency_shift_per_db_doubles_the_slope_ratio(real, monkeypatch):
    monkeypatch.setattr(mouse_like, "SHIFT_MS_PER_DB", 2 * mouse_like.SHIFT_MS_PER_DB)
    steeper = level_series(24, seed=1, thresholds_db=(45.0, 45.0)).signals  # same subjects and noise
    conditions = responding_conditions(real, FS, MOUSE)
    gen, ref = (level_slopes(x, conditions, FS, MOUSE) for x in (real.with_signals(steeper), real))
    ratio = gen["latency_slope_ms_per_db"] / ref["latency_slope_ms_per_db"]
    assert ratio == pytest.approx(2.0, abs=0.25)


def test_thresholds_10_db_higher_give_a_10_db_error(real):
    higher = level_series(24, seed=1, thresholds_db=(55.0, 55.0)).signals
    error, groups = threshold_error_db(real.with_signals(higher), real, FS, MOUSE)
    assert groups == 1 and error == pytest.approx(10.0, abs=5.0)
    noise = mouse_like.band_limited_noise(np.random.default_rng(3), len(real.signals))
    silent, _ = threshold_error_db(real.with_signals(noise), real, FS, MOUSE)
    assert silent >= 40.0  # no response anywhere: the top level plus a step, far above 45-50 dB


def test_pooled_draws_keep_their_series_apart_and_score_the_threshold_of_all_of_them():
    """Draws of one record are separate animals: the generated threshold of 16 draws of the same 10 dB higher
    series stays 10 dB off, and a set of draws of which most are silent does not pass for responding."""
    real_rows = quiet(4, 45.0)
    pooled = real_rows.tiled(np.stack([quiet(4, 55.0).signals] * 4))
    assert len(np.unique(pooled.series())) == 4 * len(np.unique(real_rows.series()))
    assert threshold_error_db(pooled, real_rows, FS, MOUSE)[0] == pytest.approx(10.0, abs=5.0)
    noise = np.stack([band_limited_noise(np.random.default_rng(k), len(real_rows.signals)) for k in range(3)])
    mostly_silent = real_rows.tiled(np.concatenate([real_rows.signals[None], noise]))
    assert threshold_error_db(mostly_silent, real_rows, FS, MOUSE)[0] >= 40.0


def test_within_group_slope_takes_one_intercept_per_group():
    x = np.array([0.0, 1.0, 2.0, 0.0, 1.0, 2.0])
    y = 3.0 * x + np.array([0, 0, 0, 100, 100, 100])  # the same slope, groups far apart
    assert within_group_slope(x, y, np.array([0, 0, 0, 1, 1, 1])) == pytest.approx(3.0)
    assert np.isnan(within_group_slope(np.ones(3), np.arange(3.0), np.zeros(3)))


def test_c2st_of_two_halves_of_one_distribution_is_near_chance_and_of_noise_near_1():
    both = recordings(level_series(40, seed=2))
    half = np.isin(both.patient_id, np.arange(20))
    a, b = both.subset(half), both.subset(~half)  # the same levels in the same order: rows share conditions
    assert c2st_accuracy(a, b, FS) == pytest.approx(0.5, abs=0.1)
    noise = mouse_like.band_limited_noise(np.random.default_rng(4), len(b.signals), rms_uv=0.5)
    assert c2st_accuracy(b.with_signals(noise), b, FS) > 0.9


def test_median_waveforms_of_noise_do_not_correlate_with_responses(real):
    noise = mouse_like.band_limited_noise(np.random.default_rng(5), len(real.signals))
    r, n = median_waveform_r(real.with_signals(noise), real, responding_conditions(real, FS, MOUSE))
    assert n >= 8 and abs(r) < 0.3


def test_extra_draws_sharpen_the_generated_medians_and_leave_the_c2st():
    """A generator right on average but noisy per draw: its median over 16 draws per record tracks the real
    median far better than one draw's; the C2ST sees the first draw only."""
    real = quiet(2, 45.0)  # 2 records per condition: a one-draw median is the mean of 2 noisy waveforms
    rng = np.random.default_rng(7)
    draws = real.signals[None] + np.stack([band_limited_noise(rng, len(real.signals), rms_uv=0.3) for _ in range(16)])
    one = heldout_metrics(draws[0], real, real, FS, MOUSE)
    pooled = heldout_metrics(draws[0], real, real, FS, MOUSE, extra_draws=draws[1:])
    assert pooled["detail"]["median_draws"] == 16 and one["detail"]["median_draws"] == 1
    assert pooled["detail"]["mean_waveform_r_one_draw"] == one["mean_waveform_r"]
    assert one["mean_waveform_r"] < 0.8 and pooled["mean_waveform_r"] > 0.9
    assert pooled["detail"]["threshold_error_db_one_draw"] == one["threshold_error_db"]
    assert pooled["c2st_acc"] == one["c2st_acc"]
    for key in ("latency_slope_ratio", "amplitude_growth_ratio"):
        assert pooled["detail"][f"{key}_one_draw"] == pytest.approx(one[key], nan_ok=True)


def test_pooled_draws_steady_the_generated_slopes_and_the_oracle_ratio_is_what_two_real_groups_give(real):
    """The generator's latency slope is taken on the medians of all its draws: draws whose picked latencies
    jitter by +-0.1 ms (two samples, as much as a mouse's latency moves over 40 dB) give a ratio further from 1 on
    one draw than on 16. The oracle ratio is the training set's slope over the held-out set's."""
    rng = np.random.default_rng(11)
    draws = np.stack([np.stack([np.roll(row, int(rng.integers(-2, 3))) for row in real.signals]) for _ in range(16)])
    one = heldout_metrics(draws[0], real, real, FS, MOUSE)
    pooled = heldout_metrics(draws[0], real, real, FS, MOUSE, extra_draws=draws[1:])
    assert abs(pooled["latency_slope_ratio"] - 1.0) < abs(one["latency_slope_ratio"] - 1.0)
    assert pooled["latency_slope_ratio"] == pytest.approx(1.0, abs=0.25)
    assert pooled["latency_slope_ratio_oracle"] == pytest.approx(1.0) and pooled["amplitude_growth_ratio_oracle"] \
        == pytest.approx(1.0)  # train = real here
    others = recordings(level_series(24, seed=9, thresholds_db=(45.0, 45.0)))
    oracle = heldout_metrics(real.signals, real, others, FS, MOUSE)["latency_slope_ratio_oracle"]
    assert oracle == pytest.approx(1.0, abs=0.35)  # other simulated mice of the same slope


def test_benchmark_writes_the_issue_keys_on_a_tiny_run(tmp_path):
    data, out = tmp_path / "mice.npz", tmp_path / "bench"
    mouse_like.write_recordings(data, 12, seed=6)
    tiny = ["model.d_model=16", "model.n_layers=1", "model.n_heads=2", "diffusion.sample_steps=3",
            "trainer.sample_every_epochs=1", "loader.batch_size=32"]
    cmd = [sys.executable, str(ROOT / "benchmarks" / "real_data.py"), "--data", str(data), "--window", "0",
           "--epochs", "1", "--out", str(out), "--threads", "1", "--cfg-scale", "1", "2", "--draws", "3",
           "--series-eta", "0.5",
           *[a for o in tiny for a in ("--override", o)]]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((out / "real_data.json").read_text())
    keys = ("c2st_acc", "c2st_acc_oracle", "mean_waveform_r", "mean_waveform_r_oracle", "latency_slope_ratio",
            "amplitude_growth_ratio", "threshold_error_db", "minutes", "epochs", "config")
    assert all(k in result for k in keys) and result["epochs"] == 1
    assert set(result["by_cfg_scale"]) == {"1", "2"} and result["species"] == "mouse"
    assert 0.0 <= result["c2st_acc"] <= 1.0 and result["config"].endswith("configs/mouse.yaml")
    assert result["overrides"]["data.window"] == 0.0
    assert result["draws"] == 3 and result["by_cfg_scale"]["1"]["detail"]["median_draws"] == 3
    assert result["series_eta"] == 0.5
    for key in ("latency_slope_ratio", "amplitude_growth_ratio", "threshold_error_db"):
        oracle = result[f"{key}_oracle"]
        assert oracle == result["by_cfg_scale"]["1"][f"{key}_oracle"] and f"{key}_oracle" in done.stdout
        assert isinstance(result["as_close_as_oracle"][key], bool)
    assert "as close as the training subjects" in done.stdout
    assert all(k in done.stdout for k in keys)
    with np.load(out / "generated.npz") as generated:
        assert generated["cfg_2"].shape == (result["by_cfg_scale"]["2"]["detail"]["n_heldout"], 200)
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert again.returncode == 2 and "real_data.json exists" in again.stderr  # nothing written is overwritten


def test_as_close_as_the_oracle_compares_ratios_on_a_log_scale_and_errors_directly():
    sys.path.insert(0, str(ROOT))
    from benchmarks.real_data import as_close_as_oracle

    m = {"latency_slope_ratio": 1.6, "latency_slope_ratio_oracle": 0.5,  # |log 1.6| < |log 0.5|
         "amplitude_growth_ratio": 0.7, "amplitude_growth_ratio_oracle": 1.2,
         "threshold_error_db": 10.0, "threshold_error_db_oracle": float("nan")}
    assert as_close_as_oracle(m) == {"latency_slope_ratio": True, "amplitude_growth_ratio": False,
                                     "threshold_error_db": False}
    m.update(threshold_error_db_oracle=18.3, latency_slope_ratio=-0.2)
    assert as_close_as_oracle(m)["threshold_error_db"] and not as_close_as_oracle(m)["latency_slope_ratio"]


@pytest.mark.parametrize("flag, value, message", [("--series-eta", "1.5", "--series-eta must lie in 0-1"),
                                                  ("--draws", "0", "--draws must lie in 1-256"),
                                                  ("--cfg-scale", "nan", "--cfg-scale values must lie in 0-50")])
def test_benchmark_refuses_bad_numbers_before_any_work(tmp_path, capsys, flag, value, message):
    sys.path.insert(0, str(ROOT))
    from benchmarks import real_data

    data = tmp_path / "mice.npz"
    data.write_bytes(b"")
    with pytest.raises(SystemExit) as exit_info:
        real_data.parse(["--data", str(data), "--out", str(tmp_path / "out"), flag, value])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
