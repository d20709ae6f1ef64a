"""A grid of panels with the outer axes labelled: the layout of every multi-panel figure."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def panel_grid(n: int, panel_size: tuple[float, float], *, max_cols: int = 4, sharex: bool = False,
               sharey: bool = False) -> tuple[Figure, np.ndarray]:
    """A (rows, cols) grid for `n` panels, at most `max_cols` wide; unused panels hidden."""
    cols = max(1, min(max_cols, n))
    rows = max(1, math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(panel_size[0] * cols, panel_size[1] * rows), squeeze=False,
                             sharex=sharex, sharey=sharey)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes


def label_grid(axes, xlabel: str | None, ylabel: str | None, fontsize: float) -> None:
    """Axis labels on the outer panels of a 2-D grid of axes: x on the bottom row, y on the left column."""
    if xlabel is not None:
        for ax in axes[-1]:
            ax.set_xlabel(xlabel, fontsize=fontsize)
    if ylabel is not None:
        for ax in axes[:, 0]:
            ax.set_ylabel(ylabel, fontsize=fontsize)
