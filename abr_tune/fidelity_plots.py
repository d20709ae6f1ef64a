"""Figures of `abr_tune.evaluate`: wave V latency against intensity, and error histograms."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from .plots import GENERATED_COLOR, REFERENCE_COLOR, label_grid, plt

ORACLE_COLOR = "0.55"


def latency_intensity_figure(panels: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]) -> Figure:
    """One panel per (title, intensity dB, true latency ms, generated latency ms): points and per-level means."""
    cols = min(4, len(panels))
    rows = int(np.ceil(len(panels) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False, sharex=True, sharey=True)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (title, intensity, truth, generated) in zip(axes.flat[: len(panels)], panels, strict=True):
        for latency, label, color, marker in ((truth, "truth", REFERENCE_COLOR, "o"),
                                              (generated, "generated", GENERATED_COLOR, "x")):
            ok = np.isfinite(latency)
            ax.scatter(intensity[ok], latency[ok], s=10, alpha=0.35, color=color, marker=marker, linewidths=0.8)
            levels, means = _level_means(intensity[ok], latency[ok])
            ax.plot(levels, means, color=color, lw=2, label=f"{label} (mean per level)")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.25)
        ax.tick_params(labelsize=8)
    label_grid(axes, "intensity (dB nHL)", "wave V latency (ms)", fontsize=9)
    axes.flat[0].legend(fontsize=8, loc="upper right")
    fig.suptitle("Wave V latency–intensity function, generated vs truth\n(slopes: least-squares fit with rate "
                 "and age, on the conditions where both have a wave V)", fontsize=10)
    fig.tight_layout()
    return fig


def error_histograms_figure(series: list[tuple[str, dict[str, np.ndarray]]], oracle: dict[str, np.ndarray],
                            corr_ceiling: float) -> Figure:
    """Wave V latency error (ms), amplitude error (%) and Pearson r per waveform; one step line per CFG scale.

    `series` is [(label, {"latency_ms", "amplitude_pct", "corr"}), ...]; `oracle` holds the
    peak picker's own errors on the reference recordings (same keys but corr).
    """
    panels = (("latency_ms", "wave V latency error, generated − truth (ms)", "density (1/ms)"),
              ("amplitude_pct", "wave V amplitude error (% of truth)", "density (1/%)"),
              ("corr", "Pearson r, generated vs recording", "density"))
    fig, axes = plt.subplots(1, 3, figsize=(13.5, 3.6))
    colors = plt.cm.plasma(np.linspace(0.05, 0.8, max(1, len(series))))
    for ax, (key, xlabel, ylabel) in zip(axes, panels, strict=True):
        values = [np.asarray(s[key])[np.isfinite(s[key])] for _, s in series]
        if key in oracle:
            values.append(np.asarray(oracle[key])[np.isfinite(oracle[key])])
        bins = _bins(np.concatenate(values) if values else np.zeros(0), key)
        if key in oracle and values[-1].size:
            ax.hist(values[-1], bins=bins, density=True, color=ORACLE_COLOR, alpha=0.45, label="picker on recording")
        for (label, _), v, color in zip(series, values, colors, strict=False):  # values may end with the oracle's
            if v.size:
                ax.hist(v, bins=bins, density=True, histtype="step", lw=1.6, color=color, label=label)
            else:
                ax.plot([], [], color=color, label=f"{label} (no wave V found)")
        if key == "corr":
            ax.axvline(corr_ceiling, color="k", ls="--", lw=1, label=f"noise ceiling (mean {corr_ceiling:.2f})")
        ax.set_xlabel(xlabel, fontsize=9)
        ax.set_ylabel(ylabel, fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.25)
        ax.legend(fontsize=7)
    fig.suptitle("Errors per generated waveform", fontsize=10)
    fig.tight_layout()
    return fig


def _level_means(intensity: np.ndarray, latency: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    levels = np.unique(intensity)
    return levels, np.array([latency[intensity == lv].mean() for lv in levels])


def _bins(values: np.ndarray, key: str) -> np.ndarray:
    """Shared bins per panel; the 1st–99th percentile range so one wild pick does not squash the rest."""
    if key == "corr":
        return np.linspace(-1.0, 1.0, 41)
    if values.size == 0:
        return np.linspace(-1.0, 1.0, 31)
    lo, hi = np.percentile(values, [1, 99])
    half = max(abs(lo), abs(hi), 1e-3)
    return np.linspace(-half, half, 41)
