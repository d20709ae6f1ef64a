"""TensorBoard output of a run: the exact tags docs/training.md lists, figures in the data's unit (µV, z) against ms."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter

from ..config import TrainConfig
from ..data import ABRArrays
from ..viz.waveforms import GENERATED_COLOR, REFERENCE_COLOR, spectrogram_grid, waveform_grid

STEP_TAGS = {
    "total": "train/loss_total",
    "mse_v": "train/loss_main_mse_v",
    "stft": "train/loss_stft",
    "grad_norm": "train/grad_norm",
}


class RunLogger:
    """Writes scalars per step and per epoch, and sample figures, to `<run_dir>` event files.

    `resume_at` (epoch, step) of a resumed run's checkpoint: what the run logged after it (before a
    kill, or beyond a _best.pt resumed from) is removed first, so no epoch or step appears twice.
    """

    def __init__(self, run_dir: Path, resume_at: tuple[int, int] | None = None):
        if resume_at is not None:
            truncate_events(Path(run_dir), *resume_at)
        self.writer = SummaryWriter(log_dir=str(run_dir))

    def step_scalars(self, step: int, losses: dict[str, float], lr: float) -> None:
        for key, tag in STEP_TAGS.items():
            self.writer.add_scalar(tag, losses[key], step)
        self.writer.add_scalar("train/lr", lr, step)

    def epoch_scalars(self, epoch: int, step: int, metrics: dict[str, float]) -> None:
        """Epoch metrics against the epoch number (val/*, epoch/*, sample/*)."""
        for tag, value in metrics.items():
            if tag != "epoch" and tag != "train/lr":
                self.writer.add_scalar(tag, value, epoch)
        self.writer.flush()

    def sample_figures(self, epoch: int, generated_uv: np.ndarray, reference: ABRArrays, cfg: TrainConfig,
                       recordings: ABRArrays | None = None) -> None:
        """Generated, reference and overlaid waveforms (and spectrograms when viz.plot_spectrogram), in the
        data's unit; `recordings` (default `reference`) are the validation recordings of the reference figure."""
        static, recordings = reference.static, recordings or reference
        sr, titles = cfg.data.effective_rate_hz, reference.titles()
        style = {"unit": reference.signal_unit, "figsize": cfg.viz.figsize, "start_ms": reference.start_ms}
        figures = {
            "samples/waveforms_generated": waveform_grid(
                [(generated_uv, "generated (EMA, DDIM)", GENERATED_COLOR)], static, sr,
                f"Generated ABRs, epoch {epoch}", titles=titles, **style),
            "samples/waveforms_reference": waveform_grid(
                [(recordings.signals, "reference", REFERENCE_COLOR)], recordings.static, sr, "Reference ABRs",
                titles=recordings.titles(), **style),
            "samples/waveforms_comparison": waveform_grid(
                [(reference.signals, "reference", REFERENCE_COLOR), (generated_uv, "generated", GENERATED_COLOR)],
                static, sr, f"Generated vs reference, epoch {epoch}", titles=titles, **style),
        }
        if cfg.viz.plot_spectrogram:
            k = cfg.viz.max_spectrogram_plots
            shown = None if titles is None else titles[:k]
            figures["samples/spectrogram_generated"] = spectrogram_grid(
                generated_uv[:k], static[:k], sr, f"Generated spectrograms, epoch {epoch}", titles=shown, **style)
            figures["samples/spectrogram_reference"] = spectrogram_grid(
                reference.signals[:k], static[:k], sr, "Reference spectrograms", titles=shown, **style)
        for tag, fig in figures.items():
            self.writer.add_figure(tag, fig, epoch, close=True)
        plt.close("all")

    def parameter_histograms(self, epoch: int, model: torch.nn.Module) -> None:
        """A histogram of every weight tensor (params/<name>), for logging.log_parameter_histograms."""
        for name, param in model.named_parameters():
            self.writer.add_histogram(f"params/{name}", param.detach().float().cpu(), epoch)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


STEP_INDEXED = frozenset([*STEP_TAGS.values(), "train/lr"])  # logged against the global step; the rest per epoch


def truncate_events(run_dir: Path, epoch: int, step: int) -> int:
    """Rewrite `run_dir`'s event files without the events after `epoch` (epoch-indexed tags: val/*, samples,
    histograms) or after `step` (STEP_INDEXED tags); returns how many were removed.

    SummaryWriter's purge_step cannot do this: TensorBoard drops every event at or past one step, whatever
    its tag, and epoch tags count epochs while step tags count optimiser steps. A record a kill cut short
    at the end of a file is dropped too.
    """
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
    from tensorboard.compat.proto import event_pb2
    from tensorboard.summary.writer.record_writer import RecordWriter

    removed = 0
    for path in sorted(run_dir.glob("events.out.tfevents.*")):
        records = list(RawEventFileLoader(str(path)).Load())
        kept = [r for r in records if not _after(event_pb2.Event.FromString(r), epoch, step)]
        if len(kept) == len(records):
            continue
        removed += len(records) - len(kept)
        partial = path.with_name(f".{path.name}.partial")
        with open(partial, "wb") as f:
            writer = RecordWriter(f)
            for record in kept:
                writer.write(record)
            writer.flush()
        partial.replace(path)
    return removed


def _after(event: object, epoch: int, step: int) -> bool:
    tags = [v.tag for v in event.summary.value] if event.HasField("summary") else []
    if not tags:
        return False  # the file's version record, session logs
    return event.step > (step if tags[0] in STEP_INDEXED else epoch)
