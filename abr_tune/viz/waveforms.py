"""Figures of ABR waveforms and spectrograms in physical units (µV against ms, kHz against ms)."""

from __future__ import annotations

import math
import textwrap

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .grid import label_grid, panel_grid

GENERATED_COLOR = "tab:red"
REFERENCE_COLOR = "tab:blue"

# TensorBoard's Time Series view fits each image into its card's image area: 215 CSS px high,
# 300-370 px wide (cards `minmax(335px, 1fr)`, 16 px padding). Text size on screen is points / 72
# x the image's shown size / its size in inches, whatever the dpi, so the grids are small (four
# 1.4-inch panels a row), about 1.6 times as wide as high, and their tick labels >= 9 screen px
# even in the narrowest card (tests/test_figures.py).
MAX_COLS = 4
PANEL_IN = (1.4, 1.5)  # a panel with its title and tick labels; the figure adds its title and legend rows
MIN_WIDTH_IN = 4.2  # grids of one to three panels get wider (and as much taller) panels for their titles
TICK_PT = 12.0
TEXT_PT = 11.0  # axis labels, legend
PANEL_TITLE_PT = 10.0  # two lines of up to 16 characters across a 1.4-inch panel
TITLE_PT = 12.0
TICKS_PER_AXIS = 3  # at most, so that the tick labels fit a 1.4-inch panel


def condition_label(static_row: np.ndarray) -> str:
    """'80 dB · 21/s' over '30 y · Fmp 3.1' (two lines fit a narrow panel) from a raw (age, intensity, rate, fmp) row;
    infants' ages in months ('3 mo'), Fmp with two significant digits."""
    age, intensity, rate, fmp = (float(v) for v in static_row)
    shown = f"{age * 12:.0f} mo" if age < 2 else f"{age:.2g} y"
    return f"{intensity:.0f} dB · {rate:.0f}/s\n{shown} · Fmp {fmp:.2g}"


def _style(ax, static_row: np.ndarray, title: str | None = None) -> None:
    ax.set_title(condition_label(static_row) if title is None else title, fontsize=PANEL_TITLE_PT)
    ax.tick_params(labelsize=TICK_PT)
    for axis in (ax.xaxis, ax.yaxis):  # round steps (0.1, 0.2, 0.5 µV): short labels
        axis.set_major_locator(MaxNLocator(TICKS_PER_AXIS - 1, steps=[1, 2, 5, 10]))


def _finish(fig: Figure, title: str, legend_rows: int = 0) -> None:
    """The title wrapped to the figure width (about 0.55 em a character); the figure grows by the title's
    and the legend's rows, so the panels keep their height."""
    width, height = fig.get_size_inches()
    lines = textwrap.wrap(title, int(width * 72 / (0.55 * TITLE_PT))) or [""]
    fig.suptitle("\n".join(lines), fontsize=TITLE_PT)
    fig.set_size_inches(width, height + (len(lines) * 1.25 * TITLE_PT + legend_rows * 1.6 * TEXT_PT) / 72)


def _panel_in(n: int, height_in: float = PANEL_IN[1]) -> tuple[float, float]:
    """A panel's size, scaled up for grids narrower than MIN_WIDTH_IN."""
    scale = max(1.0, MIN_WIDTH_IN / (PANEL_IN[0] * max(1, min(MAX_COLS, n))))
    return PANEL_IN[0] * scale, height_in * scale


def _legend_cols(fig: Figure, labels: list[str]) -> int:
    """One row of entries when they fit the figure width (a line sample and gap ~2.5 em each), else one column."""
    width_pt = sum(0.55 * len(label) + 2.5 for label in labels) * TEXT_PT
    return len(labels) if width_pt <= fig.get_size_inches()[0] * 72 else 1


def _time_ms(length: int, sample_rate_hz: float, start_ms: float = 0.0) -> np.ndarray:
    return start_ms + np.arange(length) / sample_rate_hz * 1000.0


def waveform_grid(
    waves: list[tuple[np.ndarray, str, str]],
    static_raw: np.ndarray,
    sample_rate_hz: float,
    title: str,
    *,
    unit: str = "µV",
    figsize: tuple[float, float] | None = None,
    titles: list[str] | None = None,
    start_ms: float = 0.0,
) -> Figure:
    """One panel per condition; `waves` is [(signals (N, T) in `unit`, label, colour), ...] overlaid;
    `figsize` (inches) replaces the size the panels give; `titles` (default: the clinic's condition label)
    head the panels; time starts at `start_ms` (a window cut from longer records)."""
    n = len(static_raw)
    # One amplitude scale for all panels: amplitudes compare across conditions (wave V grows with
    # intensity), and tick labels on the left column only leave the narrow panels their width.
    fig, axes = panel_grid(n, _panel_in(n), max_cols=MAX_COLS, sharex=True, sharey=True)
    fig.set_layout_engine("constrained")  # places the figure legend and the wrapped title too
    t_ms = _time_ms(waves[0][0].shape[-1], sample_rate_hz, start_ms)
    for i, ax in enumerate(axes.flat[:n]):
        for signals, label, color in waves:
            ax.plot(t_ms, signals[i], color=color, lw=1.0, label=label)
        ax.axhline(0.0, color="0.8", lw=0.6, zorder=0)
        ax.grid(alpha=0.25)
        _style(ax, static_raw[i], None if titles is None else titles[i])
    label_grid(axes, "time (ms)", None, fontsize=TEXT_PT)  # per panel: the figure legend takes the bottom edge
    label_grid(axes, None, f"amplitude ({unit})", fontsize=TEXT_PT, once=True)
    if len(waves) > 1:  # below the panels, not over a waveform
        handles, labels = axes.flat[0].get_legend_handles_labels()
        cols = _legend_cols(fig, labels)
        fig.legend(handles, labels, loc="outside lower center", ncol=cols, fontsize=TEXT_PT, frameon=False)
    _finish(fig, title, legend_rows=0 if len(waves) == 1 else math.ceil(len(waves) / cols))
    if figsize:
        fig.set_size_inches(*figsize)
    return fig


def _power_db(signal_uv: np.ndarray, n_fft: int = 32, hop: int = 4) -> np.ndarray:
    """Hann-windowed short-time magnitude in dB re 1 µV, (freq, frames)."""
    padded = np.pad(signal_uv, n_fft // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop] * np.hanning(n_fft)
    return 20 * np.log10(np.abs(np.fft.rfft(frames, axis=-1)).T + 1e-4)


def spectrogram_grid(signals_uv: np.ndarray, static_raw: np.ndarray, sample_rate_hz: float, title: str, *,
                     unit: str = "µV", figsize: tuple[float, float] | None = None, titles: list[str] | None = None,
                     start_ms: float = 0.0) -> Figure:
    """Short-time magnitude (dB re 1 `unit`) of each waveform, frequency in kHz against time in ms (from
    `start_ms`); `titles` as in `waveform_grid`."""
    n = len(signals_uv)
    # One frequency axis (ticks on the left column only); lower panels leave the colour bar room
    # in a figure still wide enough for its width to set its size on screen.
    fig, axes = panel_grid(n, _panel_in(n, PANEL_IN[1] - 0.1), max_cols=MAX_COLS, sharex=True, sharey=True)
    fig.set_layout_engine("constrained")
    powers = [_power_db(row) for row in signals_uv]
    vmax = max(float(p.max()) for p in powers)
    extent = (start_ms, start_ms + signals_uv.shape[1] / sample_rate_hz * 1000, 0.0, sample_rate_hz / 2000)
    for i, ax in enumerate(axes.flat[:n]):
        image = ax.imshow(powers[i], origin="lower", aspect="auto", extent=extent, cmap="magma",
                          vmin=vmax - 60, vmax=vmax)  # one 60 dB colour scale for every panel
        _style(ax, static_raw[i], None if titles is None else titles[i])
    label_grid(axes, "time (ms)", None, fontsize=TEXT_PT)
    label_grid(axes, None, "frequency (kHz)", fontsize=TEXT_PT, once=True)
    # Below the panels: at the side it would take a fifth of a narrow figure's width.
    bar = fig.colorbar(image, ax=axes.ravel().tolist(), location="bottom", shrink=0.6, aspect=30)
    bar.set_label(f"magnitude (dB re 1 {unit})", fontsize=TEXT_PT)
    bar.ax.tick_params(labelsize=TICK_PT)
    _finish(fig, title, legend_rows=2)  # the colour bar and its label
    if figsize:
        fig.set_size_inches(*figsize)
    return fig
