"""Classifier two-sample test (C2ST; Lopez-Paz & Oquab 2017, "Revisiting Classifier Two-Sample Tests").

A fixed classifier is trained to tell generated waveforms from recordings of the same
conditions; its held-out accuracy is the test statistic: 0.5 means the two sets cannot be
told apart, 1.0 that they always can. The classifier is deliberately fixed (features, model
and regularisation never change between runs or checkpoints) so that accuracies are
comparable across runs, configs and searches: L2-regularised logistic regression on
standardised features — the waveform (every 4th sample), its log-magnitude spectrum up to
3 kHz, and all products of degree ≤ 2 of the peak picker's wave V latency and amplitude (with
a found flag) and the conditions (age and Fmp through log1p). The products let a linear model
judge a latency against its condition (the latency–intensity function); the conditions alone
carry no label information because both sets share them. Folds are grouped by patient: a
generated waveform belongs to the patient whose recording's condition it was generated for,
so no patient is in both a training and a test fold.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..physiology.peaks import pick_wave_v

FOLDS = 5
WAVEFORM_STRIDE = 4  # every 4th sample (0.2 ms at 20 kHz): shape at a quarter of the features
REGULARISATION_C = 0.1  # inverse L2 strength of the logistic regression (fixed: comparable numbers)
SPECTRUM_MAX_HZ = 3000.0
Z_95 = 1.959963984540054


def features(signals_uv: np.ndarray, static_raw: np.ndarray, sample_rate_hz: float, clinic: bool = True) -> np.ndarray:
    """(N, F) features of (N, T) waveforms in µV with their raw (N, 4) clinic conditions (log1p of age and Fmp),
    or with `clinic` False any (N, K) numeric conditions as they are."""
    from sklearn.preprocessing import PolynomialFeatures

    x = np.asarray(signals_uv, dtype=np.float64)
    freqs = np.fft.rfftfreq(x.shape[1], 1.0 / sample_rate_hz)
    spectrum = np.log(np.abs(np.fft.rfft(x, axis=1))[:, freqs <= SPECTRUM_MAX_HZ] + 1e-4)
    latency, amplitude = pick_wave_v(x, sample_rate_hz)
    found = np.isfinite(latency)
    peak = np.stack([found.astype(float), np.where(found, latency, 0.0), np.where(found, amplitude, 0.0)], axis=1)
    s = np.asarray(static_raw, dtype=np.float64)
    conditions = np.stack([np.log1p(np.maximum(s[:, 0], 0)), s[:, 1], s[:, 2], np.log1p(np.maximum(s[:, 3], 0))],
                          1) if clinic else s.reshape(len(s), -1)
    products = PolynomialFeatures(2, include_bias=False).fit_transform(np.concatenate([peak, conditions], axis=1))
    return np.concatenate([x[:, ::WAVEFORM_STRIDE], spectrum, products], axis=1)


def wilson_interval(correct: int, n: int) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion."""
    if n == 0:
        return math.nan, math.nan
    p, z2 = correct / n, Z_95**2
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z_95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return centre - half, centre + half


def c2st(real_uv: np.ndarray, generated_uv: np.ndarray, static_raw: np.ndarray, patient_id: np.ndarray,
         sample_rate_hz: float, seed: int = 0, clinic: bool = True) -> dict[str, Any]:
    """Accuracy (with its 95% interval) of the fixed classifier telling `generated_uv` from `real_uv`.

    Row i of both (N, T) sets has the condition `static_raw[i]` and belongs to `patient_id[i]`;
    every row is scored once, by the fold that did not train on its patient.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(generated_uv) != len(real_uv):
        raise ValueError("C2ST compares one generated waveform per recording (same conditions, same order)")
    x = np.concatenate([features(real_uv, static_raw, sample_rate_hz, clinic),
                        features(generated_uv, static_raw, sample_rate_hz, clinic)])
    y = _labels(len(real_uv))
    folds = patient_folds(patient_id, seed)
    predicted = np.empty_like(y)
    for train, test in folds:
        model = make_pipeline(StandardScaler(), LogisticRegression(C=REGULARISATION_C, max_iter=5000))
        predicted[test] = model.fit(x[train], y[train]).predict(x[test])
    correct = int((predicted == y).sum())
    low, high = wilson_interval(correct, len(y))
    return {"accuracy": correct / len(y), "ci_low": low, "ci_high": high, "n": int(len(y)), "folds": len(folds)}


def patient_folds(patient_id: np.ndarray, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) row indices over the doubled set (recordings, then generated), grouped by patient."""
    from sklearn.model_selection import StratifiedGroupKFold

    groups = np.r_[np.asarray(patient_id), np.asarray(patient_id)]
    folds = min(FOLDS, len(np.unique(groups)))
    if folds < 2:
        raise ValueError("C2ST needs recordings of at least 2 patients")
    y = _labels(len(patient_id))
    return list(StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed).split(y, y, groups))


def _labels(n: int) -> np.ndarray:
    return np.r_[np.zeros(n, dtype=int), np.ones(n, dtype=int)]
