"""Wave V (and I, III) peak picking on averaged ABR traces in µV.

One measurement definition, shared with the simulator's ground truth
(`abr_tune.data.synthetic`):
- latency: time of the local maximum inside the search window with the largest
  amplitude (below), refined by parabolic interpolation between samples (sample k is
  at k / sample_rate_hz);
- amplitude: peak-to-following-trough, i.e. the peak minus the lowest point within
  `TROUGH_MS` after it (V to the SN10 trough for wave V, the usual clinical V–V′
  measure). Peak-to-baseline is not used: a trace has no reliable baseline in 0–10 ms.

`pick_wave_v` smooths lightly and rejects a peak that does not stand out of the noise
estimated from the trace's fast fluctuations (see `MIN_SNR`): noise-only traces give NaN.
That estimate assumes the recording band reaches ~3 kHz; a trace low-passed below ~2 kHz
(or an over-smooth generated one) looks noise-free and any peak passes. A profile with
`noise="baseline"` (the mouse's, `profiles.py`) takes the noise from the record's
response-free parts instead (before the first wave, after the last), which band-limited
hardware records too.
The windows, smoothing, trough span and criterion come from a species `Profile`; the
human profile reproduces the constants below exactly.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from .profiles import HUMAN, Profile

TROUGH_MS = HUMAN.trough_ms  # 2 ms: the trough is searched in (peak, peak + 2 ms]; SN10 lies ~1–1.5 ms after V
SMOOTH_MS = HUMAN.smooth_ms  # 0.15 ms Gaussian smoothing sigma: keeps wave V (~0.3 ms wide), removes noise ripple
# Noise criterion: the peak-to-trough amplitude must exceed MIN_SNR times the RMS of the
# trace's fast part (what a 0.1 ms Gaussian smoother removes, i.e. mostly > ~1.6 kHz, where
# EEG noise has power and ABR waves little). Tuned on the simulator: ~2% of noise-only
# traces pass, ~100% of responses with Fmp > 3 and ~85% of all responses above threshold do.
NOISE_SMOOTH_MS = 0.1
MIN_SNR = HUMAN.min_snr  # 10
WAVE_WINDOWS_MS = HUMAN.waves  # adult/infant ranges


def measure_peak(
    signals_uv: np.ndarray,
    sample_rate_hz: float,
    lo_ms: float | np.ndarray,
    hi_ms: float | np.ndarray,
    trough_ms: float = TROUGH_MS,
    first_fraction: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the local maximum in [lo_ms, hi_ms] with the largest peak-to-trough size (with
    `first_fraction` > 0: the earliest one at least that fraction of the largest): (latency ms,
    peak-to-trough µV), NaN where the window holds no local maximum."""
    x = np.asarray(signals_uv, dtype=np.float64)
    n, length = x.shape
    t_ms = np.arange(length) * 1000.0 / sample_rate_hz
    lo = np.broadcast_to(np.asarray(lo_ms, dtype=np.float64), (n,))[:, None]
    hi = np.broadcast_to(np.asarray(hi_ms, dtype=np.float64), (n,))[:, None]
    n_trough = max(1, round(trough_ms * sample_rate_hz / 1000.0))
    # Ranking by peak-to-trough, not height, keeps the V–SN10 complex ahead of a tall
    # wave III or IV that precedes it (infants' III can be as tall as V).
    size = np.where(_local_maxima(x) & (t_ms >= lo) & (t_ms <= hi), x - _following_min(x, n_trough), -np.inf)
    k = size.argmax(axis=1)
    found = np.isfinite(size[np.arange(n), k])
    if first_fraction > 0:  # the first clear peak: a later, larger wave entering the window is not this one
        big = np.isfinite(size) & (size >= first_fraction * np.where(found, size[np.arange(n), k], np.inf)[:, None])
        k = np.where(found, big.argmax(axis=1), k)
    offset, peak = _parabolic(x, k)
    latency = np.where(found, (k + offset) * 1000.0 / sample_rate_hz, np.nan)
    amplitude = np.where(found, peak - _trough(x, k, n_trough), np.nan)
    return latency, amplitude


def pick_wave_v(
    signals_uv: np.ndarray,
    sample_rate_hz: float,
    search_ms: tuple[float, float] = WAVE_WINDOWS_MS["V"],
) -> tuple[np.ndarray, np.ndarray]:
    """Wave V latency (ms) and peak-to-trough amplitude (µV) per trace; NaN where no clear peak."""
    return _pick(signals_uv, sample_rate_hz, search_ms, HUMAN)


def pick_primary(signals_uv: np.ndarray, sample_rate_hz: float,
                 profile: Profile = HUMAN) -> tuple[np.ndarray, np.ndarray]:
    """The profile's primary wave (V for human, I for mouse): latency (ms, record time) and amplitude (µV)."""
    return _pick(signals_uv, sample_rate_hz, profile.primary_window_ms(), profile)


def pick_peaks(
    signals_uv: np.ndarray, sample_rate_hz: float, profile: Profile = HUMAN
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every wave of the profile in its own window: {name: (latency ms, amplitude µV)}."""
    return {name: _pick(signals_uv, sample_rate_hz, w, profile) for name, w in profile.windows_ms().items()}


def _pick(
    signals_uv: np.ndarray, sample_rate_hz: float, window_ms: tuple[float, float], profile: Profile
) -> tuple[np.ndarray, np.ndarray]:
    raw = np.asarray(signals_uv, dtype=np.float64)
    x = gaussian_filter1d(raw, profile.smooth_ms * sample_rate_hz / 1000.0, axis=1, mode="nearest")
    latency, amplitude = measure_peak(x, sample_rate_hz, *window_ms, trough_ms=profile.trough_ms,
                                      first_fraction=profile.first_fraction)
    clear = amplitude > profile.min_snr * noise_rms(raw, sample_rate_hz, profile)
    return np.where(clear, latency, np.nan), np.where(clear, amplitude, np.nan)


def noise_rms(signals_uv: np.ndarray, sample_rate_hz: float, profile: Profile = HUMAN) -> np.ndarray:
    """Per trace, the noise RMS the profile's criterion uses: the fast part, or the response-free baseline."""
    if profile.noise == "baseline":
        return baseline_rms(signals_uv, sample_rate_hz, profile)
    return _fast_noise_rms(signals_uv, sample_rate_hz)


def baseline_rms(signals_uv: np.ndarray, sample_rate_hz: float, profile: Profile) -> np.ndarray:
    """Noise RMS from the record's response-free parts: the smaller of the RMS before the first wave's window
    and the RMS after the last one's end, each about its own mean (the DC offset and the slowest drift are not
    noise a peak-to-trough sees). The smaller one: either part can carry something else (a stimulus artifact
    growing with level before the response, slow potentials after it); a part under 3 samples is not used."""
    x = np.asarray(signals_uv, dtype=np.float64)
    first, last = profile.response_ms()
    head = x[:, : int(first * sample_rate_hz / 1000.0)]
    tail = x[:, int(np.ceil(last * sample_rate_hz / 1000.0)):]
    parts = [p for p in (head, tail) if p.shape[1] >= 3] or [x]
    return np.min([np.sqrt(((p - p.mean(axis=1, keepdims=True)) ** 2).mean(axis=1)) for p in parts], axis=0)


def _fast_noise_rms(signals_uv: np.ndarray, sample_rate_hz: float) -> np.ndarray:
    """RMS of what a NOISE_SMOOTH_MS Gaussian removes: EEG noise has power there, ABR waves little."""
    sigma = NOISE_SMOOTH_MS * sample_rate_hz / 1000.0
    fast = signals_uv - gaussian_filter1d(signals_uv, sigma, axis=1, mode="nearest")
    return np.sqrt((fast**2).mean(axis=1))


def _local_maxima(x: np.ndarray) -> np.ndarray:
    out = np.zeros(x.shape, dtype=bool)
    out[:, 1:-1] = (x[:, 1:-1] > x[:, :-2]) & (x[:, 1:-1] >= x[:, 2:])
    return out


def _parabolic(x: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertex of the parabola through samples k-1, k, k+1 (offset in samples, value)."""
    rows = np.arange(x.shape[0])
    inner = (k > 0) & (k < x.shape[1] - 1)
    km, kp = np.clip(k - 1, 0, None), np.clip(k + 1, None, x.shape[1] - 1)
    a, b, c = x[rows, km], x[rows, k], x[rows, kp]
    curvature = a - 2 * b + c
    ok = inner & (curvature != 0)
    offset = np.where(ok, 0.5 * (a - c) / np.where(ok, curvature, 1.0), 0.0)
    return offset, b - 0.25 * (a - c) * offset


def _following_min(x: np.ndarray, n: int) -> np.ndarray:
    """min(x[k+1 : k+1+n]) for every k (the last sample repeats past the end)."""
    length = x.shape[1]
    m = np.concatenate([x[:, 1:], np.repeat(x[:, -1:], n, axis=1)], axis=1)
    width = 1
    while 2 * width <= n:  # doubling: m[k] becomes min(x[k+1 : k+1+2*width])
        m = np.minimum(m[:, :-width], m[:, width:])
        width *= 2
    return np.minimum(m[:, :length], m[:, n - width : n - width + length])  # two overlapping windows


def _trough(x: np.ndarray, k: np.ndarray, n: int) -> np.ndarray:
    """Lowest value in (k, k + n], refined by a parabola when it is an interior local minimum."""
    rows, idx = np.arange(x.shape[0]), np.arange(x.shape[1])
    after = (idx > k[:, None]) & (idx <= k[:, None] + n)
    j = np.where(after, x, np.inf).argmin(axis=1)
    jm, jp = np.clip(j - 1, 0, None), np.clip(j + 1, None, x.shape[1] - 1)
    interior = (j < x.shape[1] - 1) & (x[rows, jm] > x[rows, j]) & (x[rows, jp] > x[rows, j])
    _, refined = _parabolic(-x, j)
    return np.where(interior, -refined, x[rows, j])
