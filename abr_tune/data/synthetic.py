"""Physiology-driven click-ABR simulator: the embedded default dataset.

Each subject has an age, a hearing threshold (dB nHL), a latency offset and an amplitude
scale; each recording an intensity (every subject gets an intensity series), a click rate
and a residual-noise level. Waves I–V are Gaussian peaks, I/III/V each followed by a
trough, V by the slow negativity SN10. Below threshold a recording is noise only.
Ground truth comes with every recording: response present, and wave V latency and
peak-to-trough amplitude measured on the noise-free trace with the peak picker (`abr_tune/physiology/peaks.py`).
Deterministic per seed; fully vectorised (one numpy pass over all recordings).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ..config import SEQUENCE_LENGTH
from ..physiology.peaks import measure_peak
from .arrays import TRUTH_SIMULATOR, ABRArrays

# Waves I, II, III, IV, V. Adult click ABR at 80 dB nHL: I 1.66, III 3.82, V 5.75 ms;
# the small waves II and IV sit between their neighbours.
ADULT_80DB_MS = np.array([1.66, 2.80, 3.82, 5.00, 5.75])
REFERENCE_RATE = 11.1  # clicks/s at which the 80 dB norms apply (lowest clinical rate)

# Latency-intensity function: Elberling et al. 2010 report wave V at 5.88 / 6.59 / 7.60 ms
# for 60 / 40 / 20 dB nHL. Their level *differences* (0.71 ms from 60 to 40 dB, 1.01 ms
# from 40 to 20 dB) fix an exponential B*exp(-I/C), anchored at 5.75 ms at 80 dB: the slope
# grows as intensity falls (0.021 ms/dB at 80 dB, 0.036 at 50, 0.050 at 30 dB; a linear fit
# over 30–80 dB gives 0.034 ms/dB). Their absolute values run ~0.4 ms earlier than this
# curve (another lab's calibration); the two published sets cannot both be met exactly.
LATENCY_DECAY_DB = 20.0 / np.log(1.01 / 0.71)  # C ≈ 56.8 dB
LATENCY_GAIN_MS = 0.71 / (np.exp(-40.0 / LATENCY_DECAY_DB) - np.exp(-60.0 / LATENCY_DECAY_DB))  # B ≈ 4.84
# Extra delay near the subject's own threshold (the function steepens there).
NEAR_THRESHOLD_MS, NEAR_THRESHOLD_DB = 0.5, 10.0
# Rate: wave V is ~0.4–0.5 ms later at 100/s than at 10/s; linear within
# 11.1–49.1/s, shared by the waves in proportion to their latency (the effect is mostly central).
RATE_DELAY_MS_PER_HZ = 0.45 / 90.0
RATE_AMPLITUDE_LOSS_PER_HZ = 0.003  # wave V ~11% smaller at 49.1/s than at 11.1/s
# Maturation: neonatal I–V ~5 ms vs ~4.1 ms in adults, mature by ~18 months;
# the cochlear wave I matures earlier (months).
NEONATE_WAVE_I_DELAY_MS, WAVE_I_MATURATION_YEARS = 0.3, 0.15
NEONATE_CENTRAL_DELAY_MS, CENTRAL_MATURATION_YEARS = 0.9, 0.4  # e^(-1.5/0.4) ≈ 2% left at 18 months

# Peak-to-trough amplitude growth with sensation level SL = intensity - threshold:
# A_V = 0.42 µV * (0.15 + 0.85 * (1 - exp(-SL / 20 dB))). With threshold 0 dB nHL this
# gives 0.40 / 0.37 / 0.29 µV at 60 / 40 / 20 dB against Elberling et al.'s 407 / 368 / 256 nV.
V_AMPLITUDE_UV, V_AMPLITUDE_FLOOR, AMPLITUDE_GROWTH_DB = 0.42, 0.15, 20.0
# Relative size and the SL each wave needs before it appears (I and III vanish first).
WAVE_AMPLITUDE_UV = np.array([0.30, 0.08, 0.30, 0.10, V_AMPLITUDE_UV])
WAVE_ONSET_SL_DB = np.array([20.0, 20.0, 10.0, 0.0, 0.0])
# Shapes: peak sigma, trough delay and sigma (ms), fraction of the peak-to-trough above 0.
PEAK_SIGMA_MS = np.array([0.15, 0.15, 0.20, 0.20, 0.28])
TROUGH_DELAY_MS = np.array([0.45, 0.0, 0.55, 0.0, 1.2])  # V's trough is SN10
TROUGH_SIGMA_MS = np.array([0.20, 1.0, 0.25, 1.0, 0.60])
PEAK_FRACTION = np.array([0.6, 1.0, 0.6, 1.0, 0.5])  # 1.0: a peak without a trough

# Residual noise after averaging: 20–80 nV RMS, coloured like EEG (1/f power)
# inside a typical 100–3000 Hz recording band.
NOISE_RMS_UV = (0.020, 0.080)
NOISE_BAND_HZ = (100.0, 3000.0)
INTENSITY_GRID_DB = np.arange(0.0, 101.0, 5.0)  # clinical 5 dB steps over 0–100 dB nHL
RATE_RANGE = (11.1, 49.1)  # clicks/s


def wave_latencies_ms(
    intensity_db: ArrayLike, age_years: ArrayLike, rate_hz: ArrayLike, threshold_db: ArrayLike
) -> np.ndarray:
    """Model latencies (ms) of waves I, II, III, IV, V, shape (..., 5); no individual offset."""
    intensity, age, rate, threshold = (
        a[..., None] for a in np.broadcast_arrays(*map(np.asarray, (intensity_db, age_years, rate_hz, threshold_db)))
    )
    level = LATENCY_GAIN_MS * (np.exp(-intensity / LATENCY_DECAY_DB) - np.exp(-80.0 / LATENCY_DECAY_DB))
    sensation = np.clip(intensity - threshold, 0.0, None)
    near = NEAR_THRESHOLD_MS * np.exp(-sensation / NEAR_THRESHOLD_DB)
    position = ADULT_80DB_MS / ADULT_80DB_MS[-1]
    rate_delay = RATE_DELAY_MS_PER_HZ * (rate - REFERENCE_RATE) * position
    return ADULT_80DB_MS + level + near + rate_delay + _maturation_delay_ms(age)


def wave_v_latency_ms(
    intensity_db: ArrayLike, age_years: ArrayLike, rate_hz: ArrayLike, threshold_db: ArrayLike
) -> np.ndarray:
    """Model wave V latency (ms) before the individual offset; see `wave_latencies_ms`."""
    return wave_latencies_ms(intensity_db, age_years, rate_hz, threshold_db)[..., -1]


def wave_amplitudes_uv(intensity_db: ArrayLike, rate_hz: ArrayLike, threshold_db: ArrayLike) -> np.ndarray:
    """Nominal peak-to-trough sizes (µV) of waves I–V, shape (..., 5); 0 below threshold."""
    sensation = (np.asarray(intensity_db) - np.asarray(threshold_db))[..., None]
    growth = 1.0 - np.exp(-np.clip(sensation - WAVE_ONSET_SL_DB, 0.0, None) / AMPLITUDE_GROWTH_DB)
    growth = np.where(WAVE_ONSET_SL_DB == 0, V_AMPLITUDE_FLOOR + (1 - V_AMPLITUDE_FLOOR) * growth, growth)
    rate_factor = 1.0 - RATE_AMPLITUDE_LOSS_PER_HZ * (np.asarray(rate_hz)[..., None] - REFERENCE_RATE)
    return np.where(sensation >= 0, WAVE_AMPLITUDE_UV * growth * rate_factor, 0.0)


def wave_v_amplitude_uv(intensity_db: ArrayLike, rate_hz: ArrayLike, threshold_db: ArrayLike) -> np.ndarray:
    """Nominal wave V peak-to-trough amplitude (µV) before the individual scale; 0 below threshold."""
    return wave_amplitudes_uv(intensity_db, rate_hz, threshold_db)[..., -1]


def simulate(
    n_subjects: int, recordings_per_subject: int, seed: int, sample_rate_hz: float = 20000.0
) -> ABRArrays:
    """Simulate n_subjects × recordings_per_subject click ABRs (µV) with ground truth."""
    rng = np.random.default_rng(seed)
    age, threshold, offset_ms, scale = _draw_subjects(rng, n_subjects)
    r = recordings_per_subject
    intensity, rate = _draw_recordings(rng, n_subjects, r)
    age, threshold, offset_ms, scale = (np.repeat(v, r) for v in (age, threshold, offset_ms, scale))
    present = intensity >= threshold

    clean, latency = _responses(intensity, age, rate, threshold, offset_ms, scale, sample_rate_hz)
    noise_rms = _draw_noise_rms(rng, intensity.shape[0])
    noise = _coloured_noise(rng, intensity.shape[0], sample_rate_hz) * noise_rms[:, None]
    fmp = _fmp(clean, noise_rms)

    # Ground truth with the picker's own definition, on the noise-free trace near the model
    # latency; NaN when wave V falls past the epoch (slow infants near threshold, <1%).
    nominal_v = latency[:, -1]
    v_lat, v_amp = measure_peak(clean, sample_rate_hz, nominal_v - 0.5, nominal_v + 0.5)
    v_lat, v_amp = np.where(present, v_lat, np.nan), np.where(present, v_amp, np.nan)
    static = np.stack([age, intensity, rate, fmp], axis=1)
    return ABRArrays(
        signals=(clean + noise).astype(np.float32),
        static=static.astype(np.float32),
        patient_id=np.repeat(np.arange(n_subjects, dtype=np.int64), r),
        v_latency_ms=v_lat.astype(np.float32),
        v_amplitude_uv=v_amp.astype(np.float32),
        response_present=present,
        clean_uv=clean.astype(np.float32),
        truth=TRUTH_SIMULATOR,
        sample_rate_hz=float(sample_rate_hz),
    )


def _responses(intensity: ArrayLike, age: ArrayLike, rate: ArrayLike, threshold: np.ndarray,
               offset_ms: np.ndarray, scale: np.ndarray, sample_rate_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free responses (N, T) µV (zero where absent) and the waves' latencies (N, 5) ms of
    subjects with these thresholds, latency offsets and amplitude scales under these conditions."""
    t_ms = np.arange(SEQUENCE_LENGTH) * 1000.0 / sample_rate_hz  # sample k at k / fs
    position = ADULT_80DB_MS / ADULT_80DB_MS[-1]
    latency = wave_latencies_ms(intensity, age, rate, threshold) + offset_ms[:, None] * position
    amplitude = wave_amplitudes_uv(intensity, rate, threshold) * scale[:, None]
    return _render(t_ms, latency, amplitude), latency


def _draw_noise_rms(rng: np.random.Generator, n: int) -> np.ndarray:
    """Residual-noise RMS (µV) per recording, log-uniform over NOISE_RMS_UV."""
    return np.exp(rng.uniform(*np.log(NOISE_RMS_UV), size=n))


def _fmp(clean: np.ndarray, noise_rms: np.ndarray) -> np.ndarray:
    """Fmp (Don & Elberling): variance of the averaged waveform over the residual-noise variance in
    the response window (the whole 10 ms epoch) = 1 + response/noise variance, so a noise-only
    recording scores ~1 and ~3.1 means 99% confidence of a response."""
    return 1.0 + clean.var(axis=1) / noise_rms**2


def _maturation_delay_ms(age_years: np.ndarray) -> np.ndarray:
    """Infant delay per wave: wave I's own part plus a central part growing along the pathway."""
    central_share = (ADULT_80DB_MS - ADULT_80DB_MS[0]) / (ADULT_80DB_MS[-1] - ADULT_80DB_MS[0])
    wave_i = NEONATE_WAVE_I_DELAY_MS * np.exp(-age_years / WAVE_I_MATURATION_YEARS)
    central = NEONATE_CENTRAL_DELAY_MS * np.exp(-age_years / CENTRAL_MATURATION_YEARS)
    return wave_i + central * central_share


def _draw_subjects(rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
    """Age (years), threshold (dB nHL), latency offset (ms) and amplitude scale per subject."""
    # Clinical ABR cohorts are mostly infants: 70% 0–3 y (skewed to newborns), 10% children
    # 3–18 y, 20% adults 18–75 y.
    group = rng.choice(3, size=n, p=[0.7, 0.1, 0.2])
    age = np.choose(group, [3.0 * rng.random(n) ** 2, rng.uniform(3, 18, n), rng.uniform(18, 75, n)])
    # 75% normal hearing (0–30 dB nHL), 25% hearing loss up to 90 dB nHL.
    hearing_loss = rng.random(n) < 0.25
    threshold = np.where(hearing_loss, rng.uniform(30, 90, n), rng.uniform(0, 30, n))
    offset_ms = rng.normal(0.0, 0.15, n)  # inter-subject SD of wave V latency ~0.15–0.2 ms
    scale = rng.lognormal(0.0, 0.25, n)
    return age, threshold, offset_ms, scale


def _draw_recordings(rng: np.random.Generator, n_subjects: int, r: int) -> tuple[np.ndarray, np.ndarray]:
    """An intensity series per subject (distinct 5 dB levels while they last) and click rates."""
    order = rng.random((n_subjects, INTENSITY_GRID_DB.size)).argsort(axis=1)
    levels = order[:, np.arange(r) % INTENSITY_GRID_DB.size]
    intensity = INTENSITY_GRID_DB[levels].ravel()
    rate = np.round(rng.uniform(*RATE_RANGE, size=n_subjects * r), 1)
    return intensity, rate


def _render(t_ms: np.ndarray, latency: np.ndarray, amplitude: np.ndarray) -> np.ndarray:
    """Sum of the waves' peaks and troughs, (N, T) µV; waves broaden as they are delayed.

    Computed in float32 throughout (the output's precision) for speed.
    """
    f32 = np.float32
    t_ms, latency, amplitude = t_ms.astype(f32), latency.astype(f32), amplitude.astype(f32)
    peak_sigma, trough_delay, trough_sigma, fraction = (
        a.astype(f32) for a in (PEAK_SIGMA_MS, TROUGH_DELAY_MS, TROUGH_SIGMA_MS, PEAK_FRACTION)
    )
    widen = (latency[:, -1:] / f32(ADULT_80DB_MS[-1])).clip(1.0, None)
    out = np.zeros((latency.shape[0], t_ms.size), dtype=f32)
    for w in range(latency.shape[1]):
        a = amplitude[:, w : w + 1]
        out += a * fraction[w] * _gauss(t_ms, latency[:, w : w + 1], peak_sigma[w] * widen)
        if fraction[w] < 1.0:
            trough_at = latency[:, w : w + 1] + trough_delay[w] * widen
            out -= a * (1 - fraction[w]) * _gauss(t_ms, trough_at, trough_sigma[w] * widen)
    return out


def _gauss(t_ms: np.ndarray, centre: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    z = (t_ms - centre) / sigma
    return np.exp(-0.5 * z * z)


def _coloured_noise(rng: np.random.Generator, n: int, sample_rate_hz: float) -> np.ndarray:
    """Unit-RMS noise, (n, T): 1/f power spectrum band-limited to NOISE_BAND_HZ."""
    length = 2 * SEQUENCE_LENGTH  # generate twice as long and crop: no circular wrap-around
    f = np.fft.rfftfreq(length, 1.0 / sample_rate_hz)
    lo, hi = NOISE_BAND_HZ
    # 1/f power → 1/sqrt(f) magnitude; first-order high- and low-pass edges.
    gain = 1.0 / np.sqrt(np.maximum(f, lo)) / np.sqrt(1 + (lo / np.maximum(f, 1e-9)) ** 2) / np.sqrt(1 + (f / hi) ** 2)
    spectrum = np.fft.rfft(rng.standard_normal((n, length), dtype=np.float32), axis=1) * gain.astype(np.float32)
    noise = np.fft.irfft(spectrum, n=length, axis=1)[:, :SEQUENCE_LENGTH]
    return noise / np.sqrt((noise**2).mean(axis=1, keepdims=True))


def fresh_recordings(arrays: ABRArrays, seed: int, sample_rate_hz: float = 20000.0) -> np.ndarray:
    """New recordings (µV) of the same simulated conditions: each noise-free response plus a fresh
    draw of residual noise at that recording's own noise level (`signals - clean_uv`)."""
    if arrays.clean_uv is None:
        raise ValueError("fresh recordings need the simulator's noise-free responses (synthetic data only)")
    rms = np.sqrt(((arrays.signals - arrays.clean_uv).astype(np.float64) ** 2).mean(axis=1, keepdims=True))
    noise = _coloured_noise(np.random.default_rng(seed), len(arrays), sample_rate_hz) * rms
    return (arrays.clean_uv + noise).astype(np.float32)


def new_subject_recordings(arrays: ABRArrays, seed: int, candidates: int = 2000,
                           sample_rate_hz: float = 20000.0) -> np.ndarray:
    """Recordings (µV) of *new* simulated subjects under each row's conditions: what a perfect
    conditional generator would draw. Age, intensity and rate are the row's own; threshold,
    latency offset, amplitude scale and noise level are drawn from the simulator's priors,
    `candidates` at a time, and one candidate whose Fmp lies nearest the row's (in log) is kept,
    so the draw follows p(recording | age, intensity, rate, Fmp) up to that rounding.
    """
    rng = np.random.default_rng(seed)
    out = np.empty((len(arrays), SEQUENCE_LENGTH), dtype=np.float32)
    for i, (age, intensity, rate, fmp) in enumerate(np.asarray(arrays.static, dtype=np.float64)):
        _, threshold, offset_ms, scale = _draw_subjects(rng, candidates)
        clean, _ = _responses(intensity, age, rate, threshold, offset_ms, scale, sample_rate_hz)  # conditions broadcast
        noise_rms = _draw_noise_rms(rng, candidates)
        gap = np.abs(np.log(_fmp(clean, noise_rms)) - np.log(max(fmp, 1.0)))
        near = np.flatnonzero(gap <= np.quantile(gap, 0.01))  # the nearest 1%: one drawn among them
        k = rng.choice(near)
        out[i] = clean[k] + _coloured_noise(rng, 1, sample_rate_hz)[0] * noise_rms[k]
    return out
