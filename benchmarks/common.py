"""Shared pieces of the benchmarks: the result record, interleaved timing, configs, RSS.

The machine these run on is shared and noisy, so every figure is a ratio of two things
measured side by side in one process, alternated (A, B, A, B, ...) and summarised by the
median of the per-pair ratios. Nothing here asserts on absolute time.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from abr_tune.config import TrainConfig, load_config
from abr_tune.train import train_abr
from abr_tune.training.callbacks import StopRun

ROOT = Path(__file__).resolve().parents[1]
CPU_CONFIG = ROOT / "configs" / "cpu.yaml"
FULL_CONFIG = ROOT / "configs" / "train.yaml"


@dataclass
class Figure:
    """One measured figure beside its target; `passed` is None for report-only figures."""

    section: str
    name: str
    value: float | None
    unit: str
    target: str
    passed: bool | None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def at_least(section: str, name: str, value: float, bound: float, unit: str = "x", **details: Any) -> Figure:
    return Figure(section, name, value, unit, f">= {bound:g}", value >= bound, details)


def at_most(section: str, name: str, value: float, bound: float, unit: str = "x", **details: Any) -> Figure:
    return Figure(section, name, value, unit, f"<= {bound:g}", value <= bound, details)


def reported(section: str, name: str, value: float | None, unit: str, **details: Any) -> Figure:
    return Figure(section, name, value, unit, "reported", None, details)


def skipped(section: str, name: str, why: str) -> Figure:
    return Figure(section, name, None, "", "skipped", None, {"skipped": why})


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def interleaved(fns: dict[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    """Call each fn once per round, in turn, `repeats` rounds; each returns its own measure."""
    out: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            out[name].append(fn())
    return out


def paired_ratio(numerator: list[float], denominator: list[float]) -> float:
    """Median of per-round ratios: neighbours in time share the machine's load."""
    return median([a / b for a, b in zip(numerator, denominator, strict=True)])


def timed(fn: Callable[[], Any], n: int = 1, sync: bool = False) -> float:
    """Seconds per call of fn (wall clock), over n calls; `sync` waits for queued CUDA work."""
    if sync:
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    if sync:
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / n


def clocked(fn: Callable[[], Any], n: int = 1) -> tuple[float, float]:
    """(wall, CPU) seconds per call of fn over n calls. With one torch thread the CPU time is
    what the work costs even while other processes share the cores; wall time is not."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        fn()
    return (time.perf_counter() - wall) / n, (time.process_time() - cpu) / n


def config(path: Path, overrides: dict[str, Any]) -> TrainConfig:
    """A train config from a YAML file with dotted-key overrides."""
    return load_config(str(path), overrides)


def quiet_run(log_dir: Path, threads: int) -> dict[str, Any]:
    """What every benchmark training run sets: no progress bar, no periodic checkpoints, its own dir."""
    return {"log_dir": str(log_dir), "device": "cpu", "trainer.progress": False, "trainer.keep_last_k": 0,
            "trainer.save_every_epochs": 1000, "trainer.early_stop_patience": 0,
            "advanced.torch_threads": threads}


class Deadline:
    """A train_abr reporter that ends the run after the epoch in which the wall-clock budget ran out."""

    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def restore_dir(self):
        return None

    def report(self, metrics, checkpoint_dir):
        if time.monotonic() >= self.end:
            raise StopRun(f"stopped at the deadline after epoch {int(metrics['epoch'])}")


def train_for(config: str, minutes: float, out: Path, threads: int, epochs: int | None,
              overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Probe an epoch's time, then train for as many epochs as fit in what is left of the budget (or exactly
    `epochs`, without a deadline), so the cosine schedule completes; stop at the deadline regardless."""
    started = time.monotonic()
    common = {**(overrides or {}), "log_dir": str(out / "train"), "trainer.progress": False,
              "advanced.torch_threads": threads}
    left = math.inf
    if epochs is None:
        per_epoch = _probe_epoch_seconds(config, common)
        left = minutes * 60 - (time.monotonic() - started)
        epochs = max(1, math.floor(left / per_epoch))
        print(f"benchmark: {per_epoch:.1f} s/epoch -> {epochs} epochs in the remaining {left / 60:.1f} min", flush=True)
    summary = train_abr(load_config(config, {**common, "exp_name": "bench", "trainer.max_epochs": epochs}),
                        Deadline(left))
    summary["train_seconds"] = time.monotonic() - started
    summary["planned_epochs"] = epochs
    return summary


def _probe_epoch_seconds(config: str, common: dict[str, Any]) -> float:
    """Seconds an epoch costs on average: two epochs, the second (the last) with a sampling round, whose cost
    is shared over `trainer.sample_every_epochs` epochs."""
    every = load_config(config, common).trainer.sample_every_epochs
    probe = train_abr(load_config(config, {**common, "exp_name": "probe", "trainer.max_epochs": 2,
                                           "trainer.early_stop_patience": 0}))
    plain, sampled = (h["epoch/time_sec"] for h in probe["history"][:2])
    return plain + max(0.0, sampled - plain) / every


class BareLoop:
    """The reference step: same model, batch and AdamW as train_abr; fixed inputs, plain MSE.

    No EMA, no schedule sampling, no STFT, no clipping, no logging, no data loading.
    `amp`: a dtype to autocast the forward pass to (bf16), or None for fp32.
    """

    def __init__(self, cfg: TrainConfig, seed: int = 0, device: str = "cpu", amp: torch.dtype | None = None):
        from abr_tune.model import ABRTransformer

        torch.manual_seed(seed)
        o, b, m = cfg.optim, cfg.loader.batch_size, cfg.model
        self.device, self.amp, self.batch_size = torch.device(device), amp, b
        self.model = ABRTransformer(m).to(self.device).train()
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=o.lr, betas=tuple(o.betas),
                                           weight_decay=o.weight_decay)
        gen = torch.Generator().manual_seed(seed)
        shape = (b, m.input_channels, m.sequence_length)
        self.x_t, self.v = (torch.randn(shape, generator=gen).to(self.device) for _ in range(2))
        self.t = torch.randint(0, cfg.diffusion.num_train_steps, (b,), generator=gen).to(self.device)
        self.static = torch.randn(b, m.static_dim, generator=gen).to(self.device)

    def step(self) -> None:
        with torch.autocast(self.device.type, dtype=self.amp or torch.float32, enabled=self.amp is not None):
            out = self.model(self.x_t, self.t, self.static)
        loss = F.mse_loss(out.float(), self.v)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def samples_per_sec(self, steps: int) -> float:
        if self.device.type == "cuda":
            return self.batch_size / timed(self.step, steps, sync=True)
        return self.batch_size / timed(self.step, steps)


def rss_mb() -> float:
    """Current resident set size of this process (Linux /proc), MiB."""
    return _status_kb(os.getpid(), "VmRSS") / 1024


def hwm_mb(pid: int) -> float:
    """Peak resident set size (VmHWM) of a live process, MiB."""
    return _status_kb(pid, "VmHWM") / 1024


def _status_kb(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return float(line.split()[1])
    raise KeyError(key)


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown")
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__,
            "load_average": os.getloadavg(), "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available()
            else None}
