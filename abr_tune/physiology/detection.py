"""Response detection from the recordings themselves, and a threshold per subject.

Real level series carry their own evidence of a response: an ABR repeats, slightly later
and smaller, at the next level of the same subject, while noise does not. A record is a
response when its waveform inside the profile's response window correlates with the
next-higher level's record of the same series (the top level: with the next lower one)
by at least `R_MIN`, over lags of up to `MAX_LAG_MS` (latency grows by ~0.04-0.1 ms per
5 dB step), after a zero-phase 300 Hz high-pass (first order). Cross-level agreement is
the basis of automated ABR thresholds (Suthakar & Liberman 2019, Hear Res 381:107782:
cross-covariance of adjacent levels); it needs no high-frequency noise estimate, so it
works on band-limited hardware. A subject's threshold is the lowest level that responds
with every higher level of its series responding too (a stray correlation below
threshold does not set it).

Measured on the development click series (docs/evaluation.md, "Species and waves"): 1 of the 39
records at 10-30 dB SPL responds, 76% of those at >= 60 dB SPL.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, sosfiltfilt

from .measures import detect_response
from .profiles import HUMAN, Profile

R_MIN = 0.5  # simulated mouse series (tests/mouse_like.py): thresholds within 5 dB for ~78%, mean error +4 dB
MAX_LAG_MS = 0.1  # wider lags add chance agreement of noise (simulated, 10 dB below threshold: 5%, 9% at 0.25 ms)
HIGHPASS_HZ = 300.0  # the usual lower edge of the ABR band: removes the drift that dominates mouse EEG noise


def level_series_r(signals_uv: np.ndarray, levels_db: np.ndarray, series: np.ndarray, sample_rate_hz: float,
                   profile: Profile = HUMAN) -> np.ndarray:
    """Per record, the best lagged Pearson r (|lag| <= MAX_LAG_MS) inside the response window with the mean
    record of the next-higher level of its series (the highest level: the next lower). NaN for a series of
    one level. `series` labels the records that form one level series (a subject, ear and stimulus)."""
    sos = butter(1, HIGHPASS_HZ, "highpass", fs=sample_rate_hz, output="sos")
    x = sosfiltfilt(sos, np.asarray(signals_uv, dtype=np.float64), axis=1)
    levels = np.asarray(levels_db, dtype=np.float64)
    lo, hi = (round(ms * sample_rate_hz / 1000.0) for ms in profile.response_ms())
    window = x[:, max(0, lo):min(x.shape[1], hi)]
    max_lag = max(1, round(MAX_LAG_MS * sample_rate_hz / 1000.0))
    out = np.full(len(x), np.nan)
    for key in np.unique(series):
        rows = np.flatnonzero(series == key)
        steps = np.unique(levels[rows])
        if len(steps) < 2:
            continue
        for i, level in enumerate(steps):
            partner = steps[i + 1] if i + 1 < len(steps) else steps[i - 1]
            ref = window[rows[levels[rows] == partner]].mean(axis=0)
            for row in rows[levels[rows] == level]:
                out[row] = _best_lagged_r(window[row], ref, max_lag)
    return out


def detect_series(signals_uv: np.ndarray, levels_db: np.ndarray, series: np.ndarray, sample_rate_hz: float,
                  profile: Profile = HUMAN, r_min: float = R_MIN) -> np.ndarray:
    """True per record where it agrees with its neighbouring level (`level_series_r` >= r_min)."""
    r = level_series_r(signals_uv, levels_db, series, sample_rate_hz, profile)
    return np.nan_to_num(r, nan=-1.0) >= r_min


def series_truth(signals_uv: np.ndarray, static: np.ndarray, patient_id: np.ndarray, sample_rate_hz: float,
                 profile: Profile = HUMAN, level_column: int = 1, condition_columns: tuple[int, ...] = (0, 2)
                 ) -> np.ndarray:
    """Response truth of unmarked recordings: `keyed_series_truth` with the series formed by the records of
    one patient that share the `condition_columns` of `static` (age and rate; not Fmp, a per-recording
    quality number) and differ in `static[:, level_column]`."""
    static = np.asarray(static, dtype=np.float64)
    keys = np.column_stack([np.asarray(patient_id).astype(str), static[:, list(condition_columns)].astype(str)])
    series_key = np.array(["|".join(row) for row in keys])
    return keyed_series_truth(signals_uv, static[:, level_column], series_key, sample_rate_hz, profile)


def keyed_series_truth(signals_uv: np.ndarray, levels_db: np.ndarray, series_key: np.ndarray, sample_rate_hz: float,
                       profile: Profile = HUMAN) -> np.ndarray:
    """`detect_series` within each series (the records sharing a `series_key`); a record alone at its
    conditions falls back to the single-trace detector (`measures.detect_response`)."""
    _, series = np.unique(np.asarray(series_key).astype(str), return_inverse=True)
    r = level_series_r(signals_uv, levels_db, series.ravel(), sample_rate_hz, profile)
    single = detect_response(signals_uv, sample_rate_hz, profile)
    return np.where(np.isfinite(r), r >= R_MIN, single)


def thresholds(levels_db: np.ndarray, series: np.ndarray, detected: np.ndarray) -> dict:
    """{series: threshold dB}: the lowest level with a response at it and at every higher level of the series
    (a level recorded more than once counts as responding when at least half its records do: a blank repeat
    does not veto it); NaN where the top level has no response."""
    levels = np.asarray(levels_db, dtype=np.float64)
    detected = np.asarray(detected, dtype=bool)
    out = {}
    for key in np.unique(series):
        rows = series == key
        steps = np.unique(levels[rows])[::-1]  # highest first
        threshold = np.nan
        for level in steps:
            if detected[rows & (levels == level)].mean() < 0.5:
                break
            threshold = float(level)
        out[key.item() if hasattr(key, "item") else key] = threshold
    return out


def _best_lagged_r(a: np.ndarray, b: np.ndarray, max_lag: int) -> float:
    """Best Pearson r of `a` delayed by 0..max_lag samples against `b`, or `b` delayed against `a` (the partner
    can lie below: the top level's)."""
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")  # a blank record (an aborted average) is no evidence either way
    best = -1.0
    for lag in range(-max_lag, max_lag + 1):
        x, y = (a[lag:], b[: len(b) - lag]) if lag >= 0 else (a[:lag], b[-lag:])
        x, y = x - x.mean(), y - y.mean()
        denom = np.sqrt((x * x).sum() * (y * y).sum())
        if denom > 0:
            best = max(best, float((x * y).sum() / denom))
    return best
