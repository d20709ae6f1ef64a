"""Simulated mouse click level series with known truth, for the mouse picker and detector tests.

Shaped after the development recordings (Tucker-Davis BioSigRZ, 24,414 Hz, 244 samples):
waves I-V at the mouse literature's latencies (Henry 1979; Zhou et al. 2006) plus the
profile's 0.9 ms system delay, each a peak followed ~0.35 ms later by a trough; wave I
~0.8-2 µV peak-to-trough at 90 dB SPL, growing linearly from a quarter of that at threshold; latency +0.008
ms/dB below 90 dB. Noise is what those recordings carry below threshold: ~0.15 µV RMS,
band-limited (power falls ~12 dB/octave above ~600 Hz; nothing above ~3 kHz to estimate
it from) with slow drift.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import butter, sosfilt

FS = 24414.0625
LENGTH = 244
DELAY_MS = 0.9
LATENCIES_MS = (1.4, 2.25, 3.1, 4.1, 5.6)  # waves I-V at high click levels, after the stimulus at the ear
RELATIVE_SIZE = (1.0, 1.3, 0.6, 0.5, 0.4)  # relative to wave I
SHIFT_MS_PER_DB = 0.008
NOISE_RMS_UV = 0.15
LEVELS = np.arange(20.0, 95.0, 5.0)


@dataclass
class Series:
    """Records of simulated subjects (rows), with their truth."""

    signals: np.ndarray  # (N, LENGTH) µV
    levels: np.ndarray  # dB SPL
    subject: np.ndarray  # series label
    present: np.ndarray  # response present (level >= the subject's threshold)
    wave_i_ms: np.ndarray  # true wave I peak latency on the record (NaN where absent)
    threshold: dict[int, float]  # per subject


def waves(level_db: float, threshold_db: float, size_uv: float, t_ms: np.ndarray) -> tuple[np.ndarray, float]:
    """Noise-free record at one level and its wave I latency (NaN below threshold)."""
    if level_db < threshold_db:
        return np.zeros_like(t_ms), float("nan")
    scale = size_uv * (0.25 + 0.75 * (level_db - threshold_db) / (90.0 - threshold_db))  # visible at threshold
    shift = DELAY_MS + SHIFT_MS_PER_DB * (90.0 - level_db)
    out = np.zeros_like(t_ms)
    for latency, rel in zip(LATENCIES_MS, RELATIVE_SIZE, strict=True):
        peak = np.exp(-0.5 * ((t_ms - latency - shift) / 0.12) ** 2)
        trough = np.exp(-0.5 * ((t_ms - latency - shift - 0.35) / 0.14) ** 2)
        out += scale * rel * (0.55 * peak - 0.45 * trough)
    return out, LATENCIES_MS[0] + shift


def band_limited_noise(rng: np.random.Generator, n: int, rms_uv: float = NOISE_RMS_UV,
                       length: int = LENGTH) -> np.ndarray:
    """Gaussian noise shaped like the recordings' residual EEG: 2nd-order low-pass at 600 Hz."""
    white = rng.normal(size=(n, length + 200))
    x = sosfilt(butter(2, 600.0, fs=FS, output="sos"), white, axis=1)[:, 200:]
    return rms_uv * x / np.sqrt((x**2).mean(axis=1, keepdims=True))


def level_series(n_subjects: int, seed: int, thresholds_db=(30.0, 70.0)) -> Series:
    rng = np.random.default_rng(seed)
    t_ms = np.arange(LENGTH) * 1000.0 / FS
    rows, truth = [], {}
    for subject in range(n_subjects):
        threshold = float(rng.choice(np.arange(thresholds_db[0], thresholds_db[1] + 1, 5.0)))
        truth[subject] = threshold
        size = rng.uniform(0.8, 2.0)
        for level in LEVELS:
            clean, latency = waves(level, threshold, size, t_ms)
            rows.append((clean, level, subject, level >= threshold, latency))
    clean, levels, subject, present, latency = (np.array(c) for c in zip(*rows, strict=True))
    signals = clean + band_limited_noise(rng, len(clean))
    return Series(signals, levels, subject, present, latency, truth)


def write_recordings(path, n_subjects: int, seed: int) -> None:
    """Simulated level series as `python -m abr_tune.convert` writes a lab's: signals as recorded (244
    samples), intensity (dB SPL) and age (months), time point and treatment labels, one subject per mouse."""
    series = level_series(n_subjects, seed)
    n = len(series.levels)
    time_point = np.where(series.subject % 2 == 0, "baseline", "24h")
    np.savez(path, signals=series.signals.astype(np.float32), sample_rate_hz=np.float64(FS),
             patient_id=series.subject.astype(str), static=np.c_[series.levels, np.full(n, 3.0)].astype(np.float32),
             static_order=np.array(["intensity", "age"]), static_units=np.array(["dB SPL", "months"]),
             labels=np.c_[time_point, np.full(n, "PSI")], label_order=np.array(["time_point", "treatment"]))
