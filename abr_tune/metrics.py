"""Waveform metrics in physical units (µV, ms) for generated vs reference ABRs."""

from __future__ import annotations

import numpy as np

from .peaks import pick_wave_v


def pearson_r(generated: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per-row Pearson correlation of two (N, T) arrays (0 where a row is constant)."""
    g = generated - generated.mean(axis=1, keepdims=True)
    r = reference - reference.mean(axis=1, keepdims=True)
    denom = np.sqrt((g * g).sum(axis=1) * (r * r).sum(axis=1))
    return np.divide((g * r).sum(axis=1), denom, out=np.zeros(len(g)), where=denom > 0)


def wave_v_latency_errors(
    generated: np.ndarray, reference_latency_ms: np.ndarray, sample_rate_hz: float
) -> np.ndarray:
    """|picked wave V latency of each generated row - reference latency| in ms (NaN where either is missing)."""
    picked, _ = pick_wave_v(generated, sample_rate_hz)
    return np.abs(picked - reference_latency_ms)


def reference_latencies(reference: np.ndarray, known_ms: np.ndarray, sample_rate_hz: float) -> np.ndarray:
    """Ground-truth wave V latency where marked, else the peak picker's on the reference waveform."""
    picked, _ = pick_wave_v(reference, sample_rate_hz)
    known = np.asarray(known_ms, dtype=np.float64)
    return np.where(np.isfinite(known), known, picked)


def sample_metrics(
    generated_uv: np.ndarray,
    reference_uv: np.ndarray,
    reference_latency_ms: np.ndarray,
    sample_rate_hz: float,
) -> dict[str, float]:
    """`sample/corr`, `sample/mse_uv`, `sample/wave_v_latency_mae_ms` for (N, T) µV arrays."""
    errors = wave_v_latency_errors(generated_uv, reference_latency_ms, sample_rate_hz)
    has_ref = np.isfinite(reference_latency_ms)
    found = np.isfinite(errors)
    return {
        "sample/corr": float(pearson_r(generated_uv, reference_uv).mean()),
        "sample/mse_uv": float(((generated_uv - reference_uv) ** 2).mean()),
        "sample/wave_v_latency_mae_ms": float(errors[found].mean()) if found.any() else float("nan"),
        # Share of reference responses whose generated wave V the picker could not find.
        "sample/wave_v_missed_frac": float((has_ref & ~found).sum() / max(1, has_ref.sum())),
    }
