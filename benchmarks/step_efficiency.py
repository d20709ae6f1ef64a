"""Figure 1: train_abr's steady-state training throughput ÷ a bare loop's, STFT loss off and on.

train_abr runs with a reporter that, after each epoch, runs one bare-loop epoch of the same
number of steps in the same process and threads: each trainer epoch has a bare neighbour in
time. The trainer's samples/s is its own `epoch/samples_per_sec` (training only); the figure
is the median over epochs 2.. of trainer ÷ bare. The same ratio in CPU seconds (train_epoch
timed with process_time) is given beside it: on a shared machine the wall-clock ratio
swings with the neighbours' load, the CPU-time one much less. Validation and sampling are
made cheap (small val split, sampling only at the last epoch); they are not in the figure.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from unittest import mock

from abr_tune.data import prepare_splits
from abr_tune.training import loop as train

from .common import CPU_CONFIG, BareLoop, Figure, at_least, clocked, config, median, quiet_run

SECTION = "1 step efficiency"
TARGETS = {0.0: 0.90, 0.15: 0.80}  # STFT weight -> minimum trainer/bare ratio


class BareNeighbour:
    """A Reporter that times one bare-loop epoch after every trainer epoch."""

    def __init__(self, bare: BareLoop, steps: int):
        self.bare, self.steps = bare, steps
        self.wall_sps: list[float] = []
        self.cpu_sps: list[float] = []

    def restore_dir(self) -> None:
        return None

    def report(self, metrics: dict[str, float], checkpoint_dir: Path | None) -> None:
        wall, cpu = clocked(self.bare.step, self.steps)
        self.wall_sps.append(self.bare.batch_size / wall)
        self.cpu_sps.append(self.bare.batch_size / cpu)


def _cpu_timed_train_epoch(cpu_seconds: list[float]):
    original = train.train_epoch

    def wrapper(*args, **kwargs):
        started = time.process_time()
        try:
            return original(*args, **kwargs)
        finally:
            cpu_seconds.append(time.process_time() - started)

    return mock.patch.object(train, "train_epoch", wrapper)


def _one(stft_weight: float, opts) -> dict:
    with tempfile.TemporaryDirectory(prefix="abr_bench_step_") as tmp:
        cfg = config(CPU_CONFIG, {
            **quiet_run(Path(tmp), opts.threads), "loss.stft_weight": stft_weight,
            "data.synthetic.n_subjects": 60 if opts.quick else 100, "data.split": [0.9, 0.05, 0.05],
            "trainer.max_epochs": 3 if opts.quick else 7, "trainer.sample_every_epochs": 1000,
            "diffusion.sample_steps": 5, "viz.num_samples": 2, "viz.plot_spectrogram": False})
        steps = len(prepare_splits(cfg.data).train) // cfg.loader.batch_size  # drop_last
        bare = BareLoop(cfg)
        bare.samples_per_sec(3)  # warm-up
        neighbour, trainer_cpu = BareNeighbour(bare, steps), []
        with _cpu_timed_train_epoch(trainer_cpu):
            summary = train.train_abr(cfg, neighbour)
    batch = cfg.loader.batch_size
    return {"trainer_wall": [h["epoch/samples_per_sec"] for h in summary["history"]][1:],
            "trainer_cpu": [steps * batch / s for s in trainer_cpu][1:],
            "bare_wall": neighbour.wall_sps[1:], "bare_cpu": neighbour.cpu_sps[1:], "steps_per_epoch": steps,
            "batch_size": batch}


def measure(opts) -> list[Figure]:
    figures = []
    for stft_weight, target in TARGETS.items():
        r = _one(stft_weight, opts)
        label = f"train_abr / bare loop, STFT {'on' if stft_weight else 'off'}"
        for clock in ("wall", "cpu"):
            ratios = [a / b for a, b in zip(r[f"trainer_{clock}"], r[f"bare_{clock}"], strict=True)]
            figures.append(at_least(
                SECTION, f"{label} ({'wall' if clock == 'wall' else 'CPU time'})", median(ratios), target,
                trainer_samples_per_sec=r[f"trainer_{clock}"], bare_samples_per_sec=r[f"bare_{clock}"],
                ratios=ratios, model="configs/cpu.yaml", batch_size=r["batch_size"],
                steps_per_epoch=r["steps_per_epoch"], threads=opts.threads, stft_weight=stft_weight))
    return figures
