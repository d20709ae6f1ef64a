"""A grid of panels with the outer axes labelled: the layout of every multi-panel figure."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def panel_grid(n: int, panel_size: tuple[float, float], *, max_cols: int = 4, sharex: bool = False,
               sharey: bool = False) -> tuple[Figure, np.ndarray]:
    """A (rows, cols) grid for `n` panels, at most `max_cols` wide; unused panels hidden (the panel above
    each one shows the x tick labels that a shared x axis keeps for the bottom row)."""
    cols = max(1, min(max_cols, n))
    rows = max(1, math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(panel_size[0] * cols, panel_size[1] * rows), squeeze=False,
                             sharex=sharex, sharey=sharey)
    for i, ax in enumerate(axes.flat[n:], n):
        ax.set_visible(False)
        if i - cols < n:
            axes.flat[i - cols].tick_params(labelbottom=True)
    return fig, axes


def label_grid(axes, xlabel: str | None, ylabel: str | None, fontsize: float, *, once: bool = False) -> None:
    """Axis labels on the outer panels of a 2-D grid of axes: x under each column's lowest shown panel, y on
    the left column; `once`: a single label for each axis across the figure, for panels too small for their own."""
    if once:
        fig = axes.flat[0].figure
        if xlabel is not None:
            fig.supxlabel(xlabel, fontsize=fontsize)
        if ylabel is not None:
            fig.supylabel(ylabel, fontsize=fontsize)
        return
    if xlabel is not None:
        for column in axes.T:
            shown = [ax for ax in column if ax.get_visible()]
            if shown:
                shown[-1].set_xlabel(xlabel, fontsize=fontsize)
    if ylabel is not None:
        for ax in axes[:, 0]:
            ax.set_ylabel(ylabel, fontsize=fontsize)
