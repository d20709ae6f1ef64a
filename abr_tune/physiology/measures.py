"""Physiology fidelity of ABRs in physical units: response detection, peak errors, latency
effects, diversity and spectral distance. Pure numpy; `abr_tune.fidelity.metrics.fidelity_metrics` assembles them.

Definitions (one each, shared by generated and reference waveforms):
- response detected: the documented picker finds the profile's primary wave (human: wave V,
  `peaks.pick_wave_v`), i.e. a peak-to-trough that stands MIN_SNR times above the trace's
  noise (human: its fast part; mouse: its response-free parts), and that peak-to-trough is
  at least DETECT_MIN_UV. Level series of real recordings can do better
  (`detection.detect_series`). The absolute floor matters for generated
  traces: an over-smooth, nearly flat trace has no fast noise, so any ripple would pass
  the relative test alone. On the simulator this detector is right for ~89% of all
  recordings (it misses responses within a few dB of threshold, smaller than the noise)
  and ~99% of the clinically clear ones (no response, or a response with Fmp >= 3.1).
- latency effects: one least-squares fit of wave V latency on intensity (dB), click rate
  (/s) and an infant indicator (age < INFANT_YEARS), so each effect is read at equal
  values of the others (the split mixes ages and rates at every intensity).
- diversity: the spread of repeated samples of one condition (RMS over time of the
  across-sample SD) against the real spread, estimated from pairs of recordings of
  different patients with the nearest condition: RMS(x_i - x_j) / sqrt(2), which equals
  the same SD for two independent draws of one condition.
- spectral distance: RMS over the recording band of the dB difference between the mean
  power spectra of two sets of waveforms (0 for a generator with the right spectral
  content; single-trace spectra are too noisy to compare pairwise).
"""

from __future__ import annotations

import math

import numpy as np

from .peaks import pick_primary
from .profiles import HUMAN, Profile

DETECT_MIN_UV = 0.04  # below the smallest wave V the simulator makes at threshold (~0.06 µV)
CLEAR_FMP = 3.1  # Don & Elberling: Fmp >= 3.1 means 99% confidence of a response
INFANT_YEARS = 1.0  # central maturation is mostly done by 1 year (~18 months)
SPECTRUM_BAND_HZ = (100.0, 3000.0)  # a typical ABR recording band
COLLAPSE_RATIO = 0.25  # generated spread below a quarter of the real spread: a collapsed generator
POWER_FLOOR_UV2 = 1e-12  # keeps log10 finite for an all-zero set


def detect_response(signals_uv: np.ndarray, sample_rate_hz: float, profile: Profile = HUMAN) -> np.ndarray:
    """True per trace where a response is detected (see the module docstring): the profile's primary wave
    (V for human, with the same window and criterion as `pick_wave_v`)."""
    _, amplitude = pick_primary(signals_uv, sample_rate_hz, profile)
    return np.nan_to_num(amplitude, nan=0.0) >= DETECT_MIN_UV


def detection_scores(detected: np.ndarray, truth: np.ndarray, clear: np.ndarray | None = None) -> dict[str, float]:
    """Accuracy, sensitivity, specificity of `detected` against `truth`; accuracy on the `clear` rows too."""
    detected, truth = np.asarray(detected, dtype=bool), np.asarray(truth, dtype=bool)
    clear = np.ones_like(truth) if clear is None else np.asarray(clear, dtype=bool)
    return {
        "detection_acc": _mean(detected == truth),
        "detection_acc_clear": _mean((detected == truth)[clear]),
        "detection_sensitivity": _mean(detected[truth]),
        "detection_specificity": _mean(~detected[~truth]),
    }


def clear_truth(truth: np.ndarray, fmp: np.ndarray) -> np.ndarray:
    """Rows whose truth is clinically unambiguous: no response, or a response with Fmp >= CLEAR_FMP."""
    return ~np.asarray(truth, dtype=bool) | (np.asarray(fmp) >= CLEAR_FMP)


def peak_errors(latency: np.ndarray, amplitude: np.ndarray, ref_latency: np.ndarray,
                ref_amplitude: np.ndarray) -> dict[str, float]:
    """Latency error (ms) and amplitude error (% of the reference) where both peaks exist.

    Keys: latency_mae_ms, latency_bias_ms (generated - reference), amplitude_error_pct
    (mean |error|), amplitude_bias_pct, found_frac (share of reference peaks found again).
    """
    has_ref = np.isfinite(ref_latency)
    both = has_ref & np.isfinite(latency)
    dt = (latency - ref_latency)[both]
    sized = both & np.isfinite(amplitude) & np.isfinite(ref_amplitude) & (ref_amplitude > 0)
    pct = 100.0 * (amplitude - ref_amplitude)[sized] / ref_amplitude[sized]
    return {
        "latency_mae_ms": _mean(np.abs(dt)),
        "latency_bias_ms": _mean(dt),
        "amplitude_error_pct": _mean(np.abs(pct)),
        "amplitude_bias_pct": _mean(pct),
        "found_frac": _mean(np.isfinite(latency[has_ref])),
    }


def latency_effects(latency_ms: np.ndarray, static: np.ndarray) -> dict[str, float]:
    """Least-squares wave V effects over the finite rows: ms/dB of intensity, ms per click/s, infant delay (ms).

    `static` is raw (N, 4) age, intensity, rate, fmp. An effect whose regressor does not
    vary among those rows is NaN (e.g. no infants in the split).
    """
    ok = np.isfinite(latency_ms)
    age, intensity, rate = (static[ok, c].astype(np.float64) for c in range(3))
    columns = {"intensity_ms_per_db": intensity, "rate_ms_per_hz": rate, "infant_ms": (age < INFANT_YEARS) * 1.0}
    varying = {k: v for k, v in columns.items() if v.size and np.ptp(v) > 0}
    out = dict.fromkeys(columns, float("nan"))
    if ok.sum() < len(varying) + 3:  # need residual degrees of freedom for a meaningful fit
        return out
    design = np.column_stack([np.ones(ok.sum()), *varying.values()])
    coef, *_ = np.linalg.lstsq(design, latency_ms[ok].astype(np.float64), rcond=None)
    out.update(zip(varying, (float(c) for c in coef[1:]), strict=True))
    return out


def generated_spread_uv(generated_uv: np.ndarray) -> np.ndarray:
    """Per condition, RMS over time of the SD across repeats; `generated_uv` is (K, M, T), K >= 2."""
    return np.sqrt(generated_uv.var(axis=0, ddof=1).mean(axis=-1))


def real_spread_uv(signals_uv: np.ndarray, static: np.ndarray, patient_id: np.ndarray,
                   idx: np.ndarray) -> np.ndarray:
    """Per condition `idx`, RMS(x_i - x_j)/sqrt(2) with j the nearest-condition recording of another patient.

    Conditions are compared on log1p(age), intensity, rate and log1p(Fmp), each scaled by
    its SD in the pool; intensity counts 3x because wave V moves most with it. NaN where
    no other patient exists.
    """
    features = np.column_stack([np.log1p(np.clip(static[:, 0], 0, None)), static[:, 1], static[:, 2],
                                np.log1p(np.clip(static[:, 3], 0, None))]).astype(np.float64)
    features -= features.mean(axis=0)  # centred: a constant column is ~0 and drops out
    features /= np.where(features.std(axis=0) > 1e-9, features.std(axis=0), 1.0)
    features[:, 1] *= 3.0
    sq = (features**2).sum(axis=1)
    dist = sq[idx, None] + sq[None, :] - 2.0 * features[idx] @ features.T  # (M, N) squared distances
    dist[patient_id[idx, None] == patient_id[None, :]] = np.inf
    partner = dist.argmin(axis=1)
    found = np.isfinite(dist[np.arange(len(idx)), partner])
    diff = signals_uv[idx].astype(np.float64) - signals_uv[partner]
    return np.where(found, np.sqrt((diff**2).mean(axis=-1) / 2.0), np.nan)


def noise_floor_uv(signals_uv: np.ndarray, fmp: np.ndarray) -> np.ndarray:
    """Residual-noise RMS implied by Fmp = var(average) / var(residual noise) (Don & Elberling)."""
    return np.sqrt(signals_uv.var(axis=-1) / np.clip(fmp, 1.0, None))


def diversity_scores(generated_uv: np.ndarray, real_spread: np.ndarray) -> dict[str, float | bool | None]:
    """Mean generated vs real spread (µV), their ratio, and the collapse flag (None when the ratio is unknown,
    e.g. with fewer than 2 repeats)."""
    gen = _mean(generated_spread_uv(generated_uv)) if generated_uv.shape[0] >= 2 else float("nan")
    real = _mean(real_spread[np.isfinite(real_spread)])
    ratio = gen / real if real > 0 else float("nan")
    return {"diversity_generated_uv": gen, "diversity_real_uv": real, "diversity_ratio": ratio,
            "collapsed": bool(ratio < COLLAPSE_RATIO) if math.isfinite(ratio) else None}


def spectral_distance_db(generated_uv: np.ndarray, reference_uv: np.ndarray, sample_rate_hz: float) -> float:
    """RMS over SPECTRUM_BAND_HZ of 10·log10 of the ratio of the two sets' mean power spectra (Hann window)."""
    gen, ref = (_mean_power(x) for x in (generated_uv, reference_uv))
    freqs = np.fft.rfftfreq(np.shape(generated_uv)[-1], 1.0 / sample_rate_hz)
    band = (freqs >= SPECTRUM_BAND_HZ[0]) & (freqs <= SPECTRUM_BAND_HZ[1])
    diff_db = 10.0 * np.log10((gen[band] + POWER_FLOOR_UV2) / (ref[band] + POWER_FLOOR_UV2))
    return float(np.sqrt((diff_db**2).mean()))


def _mean_power(signals_uv: np.ndarray) -> np.ndarray:
    x = np.asarray(signals_uv, dtype=np.float64).reshape(-1, np.shape(signals_uv)[-1])
    x = (x - x.mean(axis=1, keepdims=True)) * np.hanning(x.shape[1])
    return (np.abs(np.fft.rfft(x, axis=1)) ** 2).mean(axis=0)


def _mean(x: np.ndarray) -> float:
    return float(np.mean(x)) if np.size(x) else float("nan")
