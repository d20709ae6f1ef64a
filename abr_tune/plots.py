"""Figures of ABR waveforms and spectrograms in physical units (µV against ms, kHz against ms)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless: figures go to TensorBoard and PNG files
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

GENERATED_COLOR = "tab:red"
REFERENCE_COLOR = "tab:blue"


def condition_label(static_row: np.ndarray) -> str:
    """'80 dB · 30 y · 21/s · Fmp 3.1' from a raw (age, intensity, rate, fmp) row."""
    age, intensity, rate, fmp = (float(v) for v in static_row)
    return f"{intensity:.0f} dB · {age:.1f} y · {rate:.0f}/s · Fmp {fmp:.1f}"


def _grid(n: int) -> tuple[Figure, np.ndarray]:
    cols = min(4, n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False, sharex=True)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes


def _time_ms(length: int, sample_rate_hz: float) -> np.ndarray:
    return np.arange(length) / sample_rate_hz * 1000.0


def waveform_grid(
    waves: list[tuple[np.ndarray, str, str]],
    static_raw: np.ndarray,
    sample_rate_hz: float,
    title: str,
) -> Figure:
    """One panel per condition; `waves` is [(signals (N, T) µV, label, colour), ...] overlaid."""
    n = len(static_raw)
    fig, axes = _grid(n)
    t_ms = _time_ms(waves[0][0].shape[-1], sample_rate_hz)
    for i, ax in enumerate(axes.flat[:n]):
        for signals, label, color in waves:
            ax.plot(t_ms, signals[i], color=color, lw=1.2, label=label)
        ax.set_title(condition_label(static_raw[i]), fontsize=8)
        ax.axhline(0.0, color="0.8", lw=0.6, zorder=0)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.25)
    for ax in axes[-1]:
        ax.set_xlabel("time (ms)", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("amplitude (µV)", fontsize=8)
    if len(waves) > 1:
        axes.flat[0].legend(fontsize=7, loc="upper right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def spectrogram_grid(signals_uv: np.ndarray, static_raw: np.ndarray, sample_rate_hz: float, title: str) -> Figure:
    """Short-time magnitude (dB) of each waveform, frequency in kHz against time in ms."""
    n = len(signals_uv)
    fig, axes = _grid(n)
    n_fft, hop = 32, 4
    window = np.hanning(n_fft)
    for i, ax in enumerate(axes.flat[:n]):
        padded = np.pad(signals_uv[i], n_fft // 2, mode="reflect")
        frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop] * window
        power_db = 20 * np.log10(np.abs(np.fft.rfft(frames, axis=-1)).T + 1e-4)
        extent = (0.0, len(signals_uv[i]) / sample_rate_hz * 1000, 0.0, sample_rate_hz / 2000)
        ax.imshow(power_db, origin="lower", aspect="auto", extent=extent, cmap="magma")
        ax.set_title(condition_label(static_raw[i]), fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("time (ms)", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("frequency (kHz)", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
