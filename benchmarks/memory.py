"""Figure 6: peak RSS of one training process (CPU config) and its RSS across epochs.

A fresh process (spawn) runs train_abr on configs/cpu.yaml's model and a smaller dataset for
a few epochs, sampling (with figures) every 2 epochs, so the paths that could leak per epoch
(validation, DDIM sampling, matplotlib figures, TensorBoard, checkpoints) all run. After every
epoch a reporter records VmRSS as is, and again after gc + malloc_trim: glibc keeps freed
heap pages, so the raw RSS wanders by ±30 MiB from epoch to epoch; the trimmed RSS is the
live memory. Growth = trimmed RSS at the last epoch − at epoch 3 (after warm-up), which must
stay under 8 MiB (or 2% of peak). The peak is VmHWM, retained heap included.
"""

from __future__ import annotations

import ctypes
import gc
import multiprocessing as mp
import os
import tempfile
from pathlib import Path

from .common import CPU_CONFIG, Figure, at_most, config, hwm_mb, quiet_run, reported, rss_mb

SECTION = "6 memory"
WARMUP_EPOCHS = 3


class RssReporter:
    def __init__(self) -> None:
        self.rss: list[float] = []
        self.live: list[float] = []
        self._libc = ctypes.CDLL("libc.so.6")

    def restore_dir(self) -> None:
        return None

    def report(self, metrics: dict[str, float], checkpoint_dir: Path | None) -> None:
        self.rss.append(rss_mb())
        gc.collect()
        self._libc.malloc_trim(0)  # hand freed heap pages back: what is left is in use
        self.live.append(rss_mb())


def _train(epochs: int, threads: int) -> dict:
    from abr_tune.train import train_abr

    reporter = RssReporter()
    with tempfile.TemporaryDirectory(prefix="abr_bench_mem_") as tmp:
        cfg = config(CPU_CONFIG, {**quiet_run(Path(tmp), threads), "data.synthetic.n_subjects": 60,
                                  "trainer.max_epochs": epochs, "trainer.sample_every_epochs": 2})
        train_abr(cfg, reporter)
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent through fork + exec.
    return {"rss_mb": reporter.rss, "live_mb": reporter.live, "peak_mb": hwm_mb(os.getpid())}


def measure(opts) -> list[Figure]:
    epochs = 5 if opts.quick else 10
    pool = mp.get_context("spawn").Pool(1)
    try:
        out = pool.apply(_train, (epochs, opts.threads))
    finally:
        pool.close()
        pool.join()
    live, peak = out["live_mb"], out["peak_mb"]
    growth = live[-1] - live[WARMUP_EPOCHS - 1]
    return [
        reported(SECTION, "peak RSS of a training process (cpu.yaml model)", peak, "MiB",
                 rss_per_epoch_mb=out["rss_mb"], epochs=epochs),
        at_most(SECTION, f"live RSS growth, epoch {WARMUP_EPOCHS} -> {epochs}", growth, max(8.0, 0.02 * peak), "MiB",
                live_rss_per_epoch_mb=live),
    ]
