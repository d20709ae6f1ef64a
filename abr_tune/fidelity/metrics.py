"""Waveform metrics in physical units (µV, ms) for generated vs reference ABRs.

`sample_metrics` is the fast subset train_abr logs at each sampling round (and a search
can optimise); `fidelity_metrics` is the full physiology report of `abr_tune.evaluate`, and
`class_metrics` the same per hearing-loss class. Amplitudes are in the data's unit: µV, or z
for per-recording z-scored files (`ABRArrays.signal_unit`); the `_uv` keys then hold z units.
Truth (`ABRArrays.truth`) is the simulator's, the file's wave V marks, or, for a file without
marks, the detector and picker on the recordings.
"""

from __future__ import annotations

import numpy as np

from ..data import ABRArrays
from ..data.arrays import TRUTH_MARKS, TRUTH_SIMULATOR
from ..data.synthetic import fresh_recordings, new_subject_recordings
from ..metrics_registry import wave_metric
from ..physiology.detection import keyed_series_truth
from ..physiology.measures import (
    clear_truth,
    detect_response,
    detection_scores,
    diversity_scores,
    latency_effects,
    noise_floor_uv,
    peak_errors,
    real_spread_uv,
    spectral_distance_db,
)
from ..physiology.peaks import pick_peaks, pick_primary, pick_wave_v
from ..physiology.profiles import HUMAN, Profile
from .c2st import c2st


def pearson_r(generated: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per-row Pearson correlation of two (N, T) arrays (0 where a row is constant)."""
    g = generated - generated.mean(axis=1, keepdims=True)
    r = reference - reference.mean(axis=1, keepdims=True)
    denom = np.sqrt((g * g).sum(axis=1) * (r * r).sum(axis=1))
    return np.divide((g * r).sum(axis=1), denom, out=np.zeros(len(g)), where=denom > 0)


def primary_latency_errors(generated: np.ndarray, reference_latency_ms: np.ndarray, sample_rate_hz: float,
                           profile: Profile = HUMAN) -> np.ndarray:
    """|picked primary-wave latency of each generated row - reference latency| in ms (NaN where either is missing)."""
    picked, _ = pick_primary(generated, sample_rate_hz, profile)
    return np.abs(picked - reference_latency_ms)


def reference_latencies(reference: np.ndarray, known_ms: np.ndarray, sample_rate_hz: float,
                        profile: Profile = HUMAN) -> np.ndarray:
    """Ground-truth primary-wave latency where marked (the marks are wave V's: used when V is primary), else
    the peak picker's on the reference waveform."""
    picked, _ = pick_primary(reference, sample_rate_hz, profile)
    known = np.asarray(known_ms, dtype=np.float64) if profile.primary == "V" else np.full(len(picked), np.nan)
    return np.where(np.isfinite(known), known, picked)


def sample_metrics(
    generated_uv: np.ndarray,
    reference_uv: np.ndarray,
    reference_latency_ms: np.ndarray,
    sample_rate_hz: float,
    *,
    response_present: np.ndarray | None = None,
    profile: Profile = HUMAN,
) -> dict[str, float]:
    """`sample/corr`, `sample/mse_uv`, `sample/wave_<p>_latency_mae_ms`, `sample/wave_<p>_missed_frac`,
    `sample/detection_acc` and `sample/spectral_distance_db` for (N, T) µV arrays; <p> is the profile's
    primary wave (v for human, i for mouse). Each is registered, with its direction and range, in
    `abr_tune/metrics_registry.py`.

    Detection is scored against `response_present` (the simulator's truth, the file's marks or the level
    series' agreement), or, when None, against the same detector run on the reference recording.
    Where `response_present` is False the reference has no primary wave to compare latencies with.
    """
    if response_present is not None:
        reference_latency_ms = np.where(response_present, reference_latency_ms, np.nan)
    detect = detect_response(reference_uv, sample_rate_hz, profile)
    truth = detect if response_present is None else response_present
    errors = primary_latency_errors(generated_uv, reference_latency_ms, sample_rate_hz, profile)
    has_ref = np.isfinite(reference_latency_ms)
    found = np.isfinite(errors)
    return {
        "sample/corr": float(pearson_r(generated_uv, reference_uv).mean()),
        "sample/mse_uv": float(((generated_uv - reference_uv) ** 2).mean()),
        wave_metric(profile.primary, "latency_mae_ms"): float(errors[found].mean()) if found.any() else float("nan"),
        # Share of reference responses whose generated primary wave the picker could not find.
        wave_metric(profile.primary, "missed_frac"): float((has_ref & ~found).sum() / max(1, has_ref.sum())),
        "sample/detection_acc": float((detect_response(generated_uv, sample_rate_hz, profile) == truth).mean()),
        "sample/spectral_distance_db": spectral_distance_db(generated_uv, reference_uv, sample_rate_hz),
    }


def reference_targets(ref: ABRArrays, sample_rate_hz: float, profile: Profile = HUMAN,
                      truth: np.ndarray | None = None) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """Per recording: {wave: (latency ms, amplitude µV)} to compare against, and response truth.

    With wave V primary (human), wave V uses the marked `v_latency_ms`/`v_amplitude_uv` where
    finite, else the peak picker on the reference; the other waves always the picker. Truth is
    `response_present` when known (the simulator's, or the file's marks: then absent rows
    have no targets), else `truth` (e.g. `reference_truth` over the whole split), else the
    detector on the reference.
    """
    picked = pick_peaks(ref.signals, sample_rate_hz, profile)
    if profile.primary == "V":
        v_lat, v_amp = picked["V"]
        picked["V"] = (np.where(np.isfinite(ref.v_latency_ms), ref.v_latency_ms, v_lat),
                       np.where(np.isfinite(ref.v_amplitude_uv), ref.v_amplitude_uv, v_amp))
    if ref.response_present is None and truth is None:
        return picked, detect_response(ref.signals, sample_rate_hz, profile)
    present = np.asarray(ref.response_present if ref.response_present is not None else truth, dtype=bool)
    return {w: (np.where(present, lat, np.nan), np.where(present, amp, np.nan)) for w, (lat, amp) in
            picked.items()}, present


def _corr_truth(flat: np.ndarray, ref: ABRArrays, repeats: int) -> float:
    """Mean Pearson r of each generated waveform with the noise-free response of its condition,
    over the conditions that have a response (synthetic data only: NaN without `clean_uv`)."""
    if ref.clean_uv is None or ref.response_present is None or not ref.response_present.any():
        return float("nan")
    rows = np.tile(np.asarray(ref.response_present, dtype=bool), repeats)
    return float(pearson_r(flat[rows], np.tile(ref.clean_uv, (repeats, 1))[rows]).mean())


def split_truth(split: ABRArrays, sample_rate_hz: float, profile: Profile = HUMAN) -> np.ndarray | None:
    """Response truth of a file without marks, for a profile that reads it from level series (mouse): the
    cross-level agreement within each patient's series (`physiology.detection.series_truth`); else None."""
    levels = split.column("intensity")
    if split.response_present is not None or not profile.truth_from_series or levels is None:
        return None
    return keyed_series_truth(split.signals, levels, split.level_series(), sample_rate_hz, profile)


def fidelity_metrics(generated_uv: np.ndarray, split: ABRArrays, idx: np.ndarray, sample_rate_hz: float,
                     profile: Profile = HUMAN) -> dict[str, float | bool | None]:
    """The full report for (K, M, T) µV samples: K repeats of the M conditions `split[idx]`.

    Waveform agreement (corr, corr_truth, mse_uv, spectral_distance_db), peak errors of each of the
    profile's waves (wave_<i|iii|v>_* for human), detection, latency effects of the primary wave vs truth
    on the same rows, diversity.
    """
    ref = split.subset(idx)
    repeats, m, length = generated_uv.shape
    flat = generated_uv.reshape(repeats * m, length)
    whole = split_truth(split, sample_rate_hz, profile)
    targets, truth = reference_targets(ref, sample_rate_hz, profile, None if whole is None else whole[idx])
    reference = np.tile(ref.signals, (repeats, 1))
    out: dict[str, float | bool | None] = {
        "corr": float(pearson_r(flat, reference).mean()),
        "corr_truth": _corr_truth(flat, ref, repeats),
        "mse_uv": float(((flat - reference) ** 2).mean()),
        "spectral_distance_db": spectral_distance_db(flat, ref.signals, sample_rate_hz),
    }
    picks = pick_peaks(flat, sample_rate_hz, profile)
    for wave in profile.waves:
        errors = peak_errors(*picks[wave], *(np.tile(t, repeats) for t in targets[wave]))
        out.update({f"wave_{wave.lower()}_{k}": v for k, v in errors.items()})
    clear = clear_truth(truth, ref.static[:, 3])
    out.update(detection_scores(detect_response(flat, sample_rate_hz, profile), np.tile(truth, repeats),
                                np.tile(clear, repeats)))
    primary = profile.primary
    out.update(_effects(picks[primary][0], np.tile(targets[primary][0], repeats), np.tile(ref.static, (repeats, 1))))
    real = real_spread_uv(split.signals, split.static, split.patient_id, idx)
    out.update(diversity_scores(generated_uv, real))
    out["diversity_noise_floor_uv"] = float(noise_floor_uv(ref.signals, ref.static[:, 3]).mean())
    out.update(realism(ref.signals, generated_uv[0], ref, sample_rate_hz, profile))
    return out


def realism(real_uv: np.ndarray, generated_uv: np.ndarray, ref: ABRArrays, sample_rate_hz: float,
            profile: Profile = HUMAN) -> dict[str, float]:
    """C2ST accuracy (and its 95% interval) of telling `generated_uv` from `real_uv`, row i of both having
    the condition and patient of `ref`'s row i, peak features on the `profile`'s primary wave; NaN with fewer
    than two patients."""
    if len(np.unique(ref.patient_id)) < 2:
        return dict.fromkeys(("c2st_acc", "c2st_ci_low", "c2st_ci_high"), float("nan"))
    if ref.conditions.is_clinic:
        result = c2st(real_uv, generated_uv, ref.static, ref.patient_id, sample_rate_hz, profile=profile)
    else:  # the declared conditions as they are, categories one-hot
        spec = ref.conditions
        conditions = np.concatenate([ref.static, spec.one_hot(ref.labels, len(ref))], axis=1) if spec.labels \
            else ref.static
        result = c2st(real_uv, generated_uv, conditions, ref.patient_id, sample_rate_hz, clinic=False,
                      profile=profile)
    return {"c2st_acc": result["accuracy"], "c2st_ci_low": result["ci_low"], "c2st_ci_high": result["ci_high"]}


def oracle_metrics(split: ABRArrays, idx: np.ndarray, sample_rate_hz: float,
                   profile: Profile = HUMAN) -> dict[str, float | bool | None]:
    """The reference recordings scored as if generated: the ceiling of each measurement.

    Detection and wave V errors are the detector's and picker's own accuracy against the
    ground truth (wave V only where it is marked, NaN otherwise); corr_truth is the recordings'
    own r with their noise-free responses (synthetic data); corr and mse_uv are the
    best any waveform can reach against a noisy recording, from Fmp (noise-free response:
    r = sqrt(1 - 1/Fmp), MSE = the residual-noise power). Nothing to compare for the
    others (NaN): spectral distance, the waves without marks (I/III; every wave when V is not primary).
    """
    ref = split.subset(idx)
    out: dict[str, float | bool | None] = dict(fidelity_metrics(ref.signals[None], split, idx, sample_rate_hz,
                                                                profile))
    marks_scored = profile.primary == "V"
    if marks_scored:
        marked = np.isfinite(ref.v_latency_ms)
        lat, amp = pick_wave_v(ref.signals[marked], sample_rate_hz)
        errors = peak_errors(lat, amp, ref.v_latency_ms[marked], ref.v_amplitude_uv[marked])
        out.update({f"wave_v_{k}": v for k, v in errors.items()})
    fmp = np.clip(ref.static[:, 3].astype(np.float64), 1.0, None)
    out["corr"] = float(np.sqrt(1.0 - 1.0 / fmp).mean())
    out["mse_uv"] = float((noise_floor_uv(ref.signals, fmp) ** 2).mean())
    nothing = ["spectral_distance_db", "diversity_generated_uv", "diversity_ratio"]
    nothing += [k for k in out if k.startswith("wave_") and not (marks_scored and k.startswith("wave_v_"))]
    out.update(dict.fromkeys(nothing, float("nan")))
    out["collapsed"] = None
    # Recordings against fresh recordings of the same simulated conditions: the test's own chance level.
    fresh = fresh_recordings(ref, seed=0, sample_rate_hz=sample_rate_hz) if ref.clean_uv is not None else None
    out.update(realism(ref.signals, fresh, ref, sample_rate_hz, profile) if fresh is not None else
               dict.fromkeys(("c2st_acc", "c2st_ci_low", "c2st_ci_high"), float("nan")))
    return out


def ideal_metrics(split: ABRArrays, idx: np.ndarray, sample_rate_hz: float, repeats: int,
                  profile: Profile = HUMAN) -> dict[str, float | bool | None] | None:
    """The full report for a perfect conditional generator (simulator data only, else None): `repeats`
    recordings of new simulated subjects under each condition (`new_subject_recordings`), scored
    exactly like generated waveforms. A recording shares its subject's latency offset and amplitude
    scale with the truth, which no generator knows from the conditions: this row, not the oracle's,
    is the best a generator that samples the true distribution can score.
    """
    ref = split.subset(idx)
    if split.truth != TRUTH_SIMULATOR or ref.clean_uv is None:
        return None
    draws = np.stack([new_subject_recordings(ref, seed=k, sample_rate_hz=sample_rate_hz) for k in range(repeats)])
    return fidelity_metrics(draws, split, idx, sample_rate_hz, profile)


def _effects(latency: np.ndarray, truth_latency: np.ndarray, static: np.ndarray) -> dict[str, float]:
    """Latency effects of the generated and true primary wave on the same rows (both found), and the slope's error."""
    rows = np.isfinite(latency) & np.isfinite(truth_latency)
    gen = latency_effects(np.where(rows, latency, np.nan), static)
    true = latency_effects(np.where(rows, truth_latency, np.nan), static)
    slope, true_slope = gen["intensity_ms_per_db"], true["intensity_ms_per_db"]
    return {
        "li_slope_ms_per_db": slope,
        "li_slope_truth_ms_per_db": true_slope,
        "li_slope_rel_error": abs(slope - true_slope) / abs(true_slope) if true_slope else float("nan"),
        "rate_effect_ms_per_hz": gen["rate_ms_per_hz"],
        "rate_effect_truth_ms_per_hz": true["rate_ms_per_hz"],
        "infant_delay_ms": gen["infant_ms"],
        "infant_delay_truth_ms": true["infant_ms"],
        "effects_n": float(rows.sum()),
    }


TRUTH_TEXT = {
    TRUTH_SIMULATOR: "the simulator's (response present, noise-free wave V)",
    TRUTH_MARKS: "the file's wave V marks (response present where wave V is marked, its latency from the mark; "
                 "a recording without a mark counts as no response)",
}
NO_MARKS = ("no marks in the file: the detector and the peak picker on each recording (the oracle row then "
            "scores them against themselves)")


SERIES = ("no marks in the file: response presence from each level series' cross-level agreement "
          "(`physiology/detection.py`), latencies from the peak picker on each recording")


def truth_description(arrays: ABRArrays, profile: Profile = HUMAN) -> str:
    """Which truth the metrics on `arrays` are scored against, for the evaluation summary."""
    return TRUTH_TEXT.get(arrays.truth, SERIES if profile.truth_from_series else NO_MARKS)


def class_metrics(generated_uv: np.ndarray, split: ABRArrays, idx: np.ndarray, sample_rate_hz: float,
                  profile: Profile = HUMAN) -> dict[str, dict[str, float | bool | None]]:
    """`fidelity_metrics` per hearing-loss class of the conditions `split[idx]` ({} without `target`);
    keyed by the class's name (the file's label encoder) with `n_conditions` added."""
    if split.target is None:
        return {}
    names, classes = split.class_names or (), split.target[idx]
    out: dict[str, dict[str, float | bool | None]] = {}
    for c in np.unique(classes):
        rows = classes == c
        name = names[c] if c < len(names) else f"class {c}"
        out[name] = {"n_conditions": float(rows.sum()),
                     **fidelity_metrics(generated_uv[:, rows], split, idx[rows], sample_rate_hz, profile)}
    return out
