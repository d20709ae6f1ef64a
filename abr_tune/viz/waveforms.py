"""Figures of ABR waveforms and spectrograms in physical units (µV against ms, kHz against ms)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from .grid import label_grid, panel_grid

GENERATED_COLOR = "tab:red"
REFERENCE_COLOR = "tab:blue"


def condition_label(static_row: np.ndarray) -> str:
    """'80 dB · 30 y · 21/s · Fmp 3.1' from a raw (age, intensity, rate, fmp) row."""
    age, intensity, rate, fmp = (float(v) for v in static_row)
    return f"{intensity:.0f} dB · {age:.1f} y · {rate:.0f}/s · Fmp {fmp:.1f}"


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
    fig, axes = panel_grid(n, (3.2, 2.4), sharex=True)
    t_ms = _time_ms(waves[0][0].shape[-1], sample_rate_hz)
    for i, ax in enumerate(axes.flat[:n]):
        for signals, label, color in waves:
            ax.plot(t_ms, signals[i], color=color, lw=1.2, label=label)
        ax.set_title(condition_label(static_raw[i]), fontsize=8)
        ax.axhline(0.0, color="0.8", lw=0.6, zorder=0)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.25)
    label_grid(axes, "time (ms)", "amplitude (µV)", fontsize=8)
    if len(waves) > 1:
        axes.flat[0].legend(fontsize=7, loc="upper right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def _power_db(signal_uv: np.ndarray, n_fft: int = 32, hop: int = 4) -> np.ndarray:
    """Hann-windowed short-time magnitude in dB re 1 µV, (freq, frames)."""
    padded = np.pad(signal_uv, n_fft // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop] * np.hanning(n_fft)
    return 20 * np.log10(np.abs(np.fft.rfft(frames, axis=-1)).T + 1e-4)


def spectrogram_grid(signals_uv: np.ndarray, static_raw: np.ndarray, sample_rate_hz: float, title: str) -> Figure:
    """Short-time magnitude (dB) of each waveform, frequency in kHz against time in ms."""
    n = len(signals_uv)
    fig, axes = panel_grid(n, (3.2, 2.4), sharex=True)
    powers = [_power_db(row) for row in signals_uv]
    vmax = max(float(p.max()) for p in powers)
    extent = (0.0, signals_uv.shape[1] / sample_rate_hz * 1000, 0.0, sample_rate_hz / 2000)
    for i, ax in enumerate(axes.flat[:n]):
        image = ax.imshow(powers[i], origin="lower", aspect="auto", extent=extent, cmap="magma",
                          vmin=vmax - 60, vmax=vmax)  # one 60 dB colour scale for every panel
        ax.set_title(condition_label(static_raw[i]), fontsize=8)
        ax.tick_params(labelsize=7)
    label_grid(axes, "time (ms)", "frequency (kHz)", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, pad=0.01).set_label("magnitude (dB re 1 µV)", fontsize=8)
    return fig
