"""Figures of an evaluation: waveform grids per CFG scale, wave V latency against intensity, error histograms."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from ..data import ABRArrays, pick_reference_indices
from ..physiology.peaks import pick_wave_v
from ..viz.grid import label_grid, panel_grid
from ..viz.waveforms import GENERATED_COLOR, REFERENCE_COLOR, waveform_grid
from .metrics import pearson_r, reference_targets
from .summary import cell

ORACLE_COLOR = "0.55"
GRID_PANELS = 8  # conditions in each waveform grid, spread across intensities

def evaluation_figures(report: dict[str, Any], split: ABRArrays, idx: np.ndarray,
                       runs: list[tuple[float, np.ndarray]], sample_rate_hz: float) -> dict[str, Figure]:
    """File name → figure: one waveform grid per CFG scale, the latency–intensity plot, error histograms.

    `runs` is [(CFG scale, (K, M, T) µV samples of the M conditions at `idx`)].
    """
    ref = split.subset(idx)
    shown = np.unique(pick_reference_indices(ref, GRID_PANELS, report["seed"]))
    level = ref.column("intensity")
    shown = shown[np.argsort(level[shown] if level is not None else shown, kind="stable")]  # in intensity order
    titles = ref.titles()
    figures = {f"waveforms_cfg{s:g}.png": waveform_grid(
        [(ref.signals[shown], "recording", REFERENCE_COLOR), (signals[0, shown], "generated", GENERATED_COLOR)],
        ref.static[shown], sample_rate_hz, f"Generated (EMA, DDIM, CFG {s:g}) vs recorded ABRs by intensity",
        unit=split.signal_unit, titles=None if titles is None else [titles[i] for i in shown],
        start_ms=split.start_ms) for s, signals in runs}
    ref = ref.measured()
    rows = [(s, _per_waveform(signals, ref, sample_rate_hz)) for s, signals in runs]
    figures["latency_intensity.png"] = latency_intensity_figure([
        (_li_title(report["by_cfg_scale"][f"{s:g}"], s), np.tile(ref.static[:, 1], report["repeats"]),
         r["truth_ms"], r["latency_v_ms"]) for s, r in rows], split.conditions.axis_label("intensity"))
    figures["error_histograms.png"] = error_histograms_figure(
        [(f"CFG {s:g}", r) for s, r in rows], _per_waveform(ref.signals[None], ref, sample_rate_hz, oracle=True),
        report["oracle"]["corr"])
    return figures


def latency_intensity_figure(panels: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]],
                             intensity_label: str = "intensity (dB nHL)") -> Figure:
    """One panel per (title, intensity dB, true latency ms, generated latency ms): points and per-level means;
    the x axis says the intensity's unit as the data declares it."""
    fig, axes = panel_grid(len(panels), (4.2, 3.4), sharex=True, sharey=True)
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
    label_grid(axes, intensity_label, "wave V latency (ms)", fontsize=9)
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


def _per_waveform(signals: np.ndarray, ref: ABRArrays, sample_rate_hz: float,
                  oracle: bool = False) -> dict[str, np.ndarray]:
    """Per generated waveform (repeat-major): wave V latency, its truth, errors (ms, %), Pearson r (not for
    the `oracle`, the recordings themselves, whose r with themselves is 1)."""
    repeats = signals.shape[0]
    flat = signals.reshape(-1, signals.shape[-1])
    targets, _ = reference_targets(ref, sample_rate_hz)
    truth_ms, truth_uv = (np.tile(t, repeats) for t in targets["V"])
    latency, amplitude = pick_wave_v(flat, sample_rate_hz)
    rows = {"latency_v_ms": np.where(np.isfinite(truth_ms), latency, np.nan), "truth_ms": truth_ms,
            "latency_ms": latency - truth_ms, "amplitude_pct": 100.0 * (amplitude - truth_uv) / truth_uv}
    if not oracle:
        rows["corr"] = pearson_r(flat, np.tile(ref.signals, (repeats, 1)))
    return rows


def _li_title(m: dict[str, Any], scale: float) -> str:
    slope, truth = (cell(m[k], "+.4f") for k in ("li_slope_ms_per_db", "li_slope_truth_ms_per_db"))
    return f"CFG {scale:g}: slope {slope} ms/dB (truth {truth})"
