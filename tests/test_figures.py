"""The TensorBoard sample figures are legible where TensorBoard shows them.

TensorBoard 2.21's Time Series view (the page it opens on) fits each image into its card
(`object-fit: contain`): cards are `minmax(335px, 1fr)` wide with 16 px padding each side and
320 px tall, of which the tag, run and step-slider rows leave 215 px for the image. Measured in
headless Chromium on a search's images (run list and settings pane open, as TensorBoard opens):
a 560 x 345 image is shown 349 x 215 CSS px in a 1366- or 1920-px wide window, and 304 x 215 in
a 2560-px one (narrower cards, more of them a row). A text's size on screen is its points x
dpi / 72 x the image's scale into its card.
"""

from __future__ import annotations

import itertools

import matplotlib.pyplot as plt
import numpy as np
import pytest
from conftest import ROOT
from torch.utils.tensorboard._utils import figure_to_image

from abr_tune.config import load_config
from abr_tune.viz.waveforms import GENERATED_COLOR, REFERENCE_COLOR, spectrogram_grid, waveform_grid

# window: (image area width, height in CSS px, smallest tick label px, smallest other text px)
CARDS = {"1920x1080": (349, 215, 9.0, 8.0), "2560x1440": (304, 215, 9.0, 7.5)}
SAMPLE_RATE_HZ = 20_000.0


def _conditions(n: int) -> tuple[np.ndarray, np.ndarray]:
    """n wave-like µV signals and raw (age, intensity, rate, fmp) rows with the widest labels seen."""
    t = np.arange(200) / SAMPLE_RATE_HZ
    signals = 0.3 * np.sin(2 * np.pi * 600 * t)[None] * np.linspace(0.2, 1.0, n)[:, None]
    static = np.array([[0.35, 10 * i, 38.0, 1.7] for i in range(n)])
    return signals, static


def _figures(n: int) -> dict[str, plt.Figure]:
    signals, static = _conditions(n)
    return {
        "samples/waveforms_comparison": waveform_grid(
            [(signals, "reference", REFERENCE_COLOR), (0.9 * signals, "generated", GENERATED_COLOR)],
            static, SAMPLE_RATE_HZ, "Generated vs reference, epoch 10"),
        "samples/spectrogram_generated": spectrogram_grid(signals, static, SAMPLE_RATE_HZ,
                                                          "Generated spectrograms, epoch 10"),
    }


def _shown_scale(image_hw: tuple[int, int], area_wh: tuple[int, int]) -> float:
    height, width = image_hw
    return min(area_wh[0] / width, area_wh[1] / height)


def _drawn_ticks(axis, limits: tuple[float, float]) -> list:
    """Tick labels inside the view limits: matplotlib draws only those."""
    low, high = sorted(limits)
    span = (high - low) * 1e-9
    return [tick.label1 for tick in axis.get_major_ticks() if low - span <= tick.get_loc() <= high + span]


def _texts(fig: plt.Figure) -> tuple[list, list]:
    """(tick labels, other texts) that are drawn: visible and not empty."""
    ticks, others = [], []
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        ticks += _drawn_ticks(ax.xaxis, ax.get_xlim()) + _drawn_ticks(ax.yaxis, ax.get_ylim())
        others += [ax.title, ax.xaxis.label, ax.yaxis.label]
        if ax.get_legend():
            others += ax.get_legend().get_texts()
    others += [t for legend in fig.legends for t in legend.get_texts()]
    others += [t for t in (fig._suptitle, fig._supxlabel, fig._supylabel) if t is not None]
    keep = [t for t in ticks + others if t.get_visible() and t.get_text().strip()]
    return [t for t in ticks if t in keep], [t for t in others if t in keep]


@pytest.mark.parametrize("window", sorted(CARDS))
@pytest.mark.parametrize("tag", ["samples/waveforms_comparison", "samples/spectrogram_generated"])
def test_tick_labels_are_at_least_9_px_in_a_tensorboard_card(tag, window):
    width, height, min_tick_px, min_text_px = CARDS[window]
    n = load_config(ROOT / "configs" / "cpu.yaml").viz.num_samples  # panels of the quick start's figures
    fig = _figures(n)[tag]
    image = figure_to_image(fig, close=False)  # what SummaryWriter.add_figure stores, (3, H, W)
    scale = _shown_scale(image.shape[1:], (width, height))
    ticks, others = _texts(fig)
    rows, cols = fig.axes[0].get_gridspec().get_geometry()
    assert len(ticks) >= 2 * (rows + cols) and len(others) >= n  # labelled outer axes, a title per panel

    def px(text) -> float:
        return text.get_fontsize() * fig.dpi / 72 * scale

    smallest_tick = min(px(t) for t in ticks)
    smallest_text = min(px(t) for t in others)
    plt.close(fig)
    assert smallest_tick >= min_tick_px, (tag, image.shape, round(smallest_tick, 2))
    assert smallest_text >= min_text_px, (tag, image.shape, round(smallest_text, 2))


@pytest.mark.parametrize("n", [1, 4, 5, 8])
def test_panel_text_neither_overlaps_nor_leaves_the_image(n):
    for tag, fig in _figures(n).items():
        figure_to_image(fig, close=False)  # lays the figure out and draws it
        renderer = fig.canvas.get_renderer()
        canvas = fig.bbox
        ticks, others = _texts(fig)
        boxes = {id(t): t.get_window_extent(renderer) for t in ticks + others}
        for t in ticks + others:
            b = boxes[id(t)]
            assert b.x0 >= canvas.x0 - 1 and b.x1 <= canvas.x1 + 1 and b.y0 >= canvas.y0 - 1 \
                and b.y1 <= canvas.y1 + 1, (tag, n, t.get_text())
        titles = [ax.title for ax in fig.axes if ax.get_visible() and ax.title.get_text()]
        assert len(titles) == n
        for a, b in itertools.combinations(titles, 2):
            assert not boxes[id(a)].overlaps(boxes[id(b)]), (tag, n, a.get_text(), b.get_text())
        plt.close(fig)
