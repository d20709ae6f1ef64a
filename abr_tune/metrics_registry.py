"""Every per-epoch value a training run reports, in one table: what a search may optimise or constrain
(its direction and valid range), which epochs measure it, and whether a search keeps it in each trial's
history. Adding a metric is one `Metric` row here, plus the code that computes it (the trainer for every
epoch, `fidelity/metrics.py:sample_metrics` on sampling epochs).

A metric named `sample/...` is measured on sampling epochs only (trainer.sample_every_epochs, the last
epoch, and ASHA's rungs when one is the primary metric: `hpo.space.SearchSpace.sample_epochs`), the
others every epoch. The wave metrics are named after the species profile's primary wave
(`wave_metric`: sample/wave_v_* for human, sample/wave_i_* for mouse): `registry(primary)` is the table
a run of that profile reports (`physiology/profiles.py` holds each species' `primary`); `REGISTRY` and the
names below it are the human profile's, which a search optimises.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from typing import Literal, Optional

SAMPLE_PREFIX = "sample/"


def wave_metric(wave: str, measure: str) -> str:
    """The sample metric `measure` of a wave, e.g. ("V", "latency_mae_ms") -> sample/wave_v_latency_mae_ms."""
    return f"{SAMPLE_PREFIX}wave_{wave.lower()}_{measure}"


@dataclass(frozen=True)
class Metric:
    """One reported value: a search objective when it has a direction (`mode`)."""

    name: str
    mode: Optional[Literal["min", "max"]] = None  # the direction it improves in; None: not an objective
    low: float = 0.0  # the values it can take, [low, high] (a constraint's bound must lie inside)
    high: float = math.inf
    history: bool = False  # kept in each trial's history (search_summary.json) even when not searched
    worst_when_undefined: bool = False  # a sampling epoch that leaves it undefined counts it as the worst

    @property
    def sampled(self) -> bool:
        return sampled(self.name)


def sampled(metric: str) -> bool:
    """Whether `metric` is measured on sampling epochs only (trainer.sample_every_epochs, the last epoch and
    ASHA's rungs when it drives ASHA), so that the other epochs' results lack it."""
    return metric.startswith(SAMPLE_PREFIX)


HUMAN_PRIMARY = "V"  # physiology.profiles.HUMAN.primary (this module imports nothing of the package)


def registry(primary: str = HUMAN_PRIMARY) -> dict[str, Metric]:
    """Every metric a run whose profile's primary wave is `primary` reports, in the order of a trial's history
    and of the metrics a search lists to its user: the wave metrics are that wave's, no other wave's."""
    return {m.name: m for m in (
        Metric("epoch", history=True),
        Metric("val/mse_v", "min", history=True),
        Metric("epoch/train_loss_avg", "min", history=True),
        Metric("train/lr", history=True),
        Metric("epoch/time_sec", history=True),
        Metric("sample/corr", "max", -1.0, 1.0, history=True),
        Metric("sample/mse_uv", "min", history=True),
        # Undefined when the samples show nothing to measure: with the primary wave found in no sample there is
        # no latency error. A sampling epoch counts it as the worst value (inf), so such a trial is a point (and
        # TPE learns where the wave goes missing) instead of a failed trial; JSON files hold it as null.
        Metric(wave_metric(primary, "latency_mae_ms"), "min", history=True, worst_when_undefined=True),
        Metric(sampled_marker(primary), "min", 0.0, 1.0, history=True),
        Metric("sample/detection_acc", "max", 0.0, 1.0),
        Metric("sample/spectral_distance_db", "min"),
        Metric("sample/c2st_acc", "min", 0.0, 1.0),
        Metric("diverged", history=True),  # 1.0 on the epoch a run stopped at a non-finite loss
    )}


def sampled_marker(primary: str = HUMAN_PRIMARY) -> str:
    """The metric a run of that primary wave reports, finite, on every sampling epoch and on no other: its
    presence in an epoch's results says the epoch sampled."""
    return wave_metric(primary, "missed_frac")


REGISTRY: dict[str, Metric] = registry()
_WAVE = re.compile(re.escape(SAMPLE_PREFIX) + r"wave_([a-z0-9]+)_[a-z_]+")


def metric_for(name: str) -> Optional[Metric]:
    """The row of `name` for a run of any species: the human table's, or a wave metric of another primary wave
    (sample/wave_i_latency_mae_ms is a mouse run's wave I latency error, the row of wave V's renamed)."""
    if name in REGISTRY:
        return REGISTRY[name]
    wave = _WAVE.fullmatch(name)
    return _wave_row(name, wave.group(1).upper()) if wave else None


@functools.lru_cache(maxsize=256)
def _wave_row(name: str, primary: str) -> Optional[Metric]:
    """One wave metric's row, built once: a trial history's every key of every epoch is looked up."""
    return registry(primary).get(name)


def mode_of(name: str) -> Optional[str]:
    """The direction `name` improves in when a search may optimise it (any species' wave metric), else None."""
    metric = metric_for(name)
    return metric.mode if metric is not None else None


def range_of(name: str) -> Optional[tuple[float, float]]:
    """The values an objective can take (a constraint's bound must lie inside), or None if it is no objective."""
    metric = metric_for(name)
    return (metric.low, metric.high) if metric is not None and metric.mode is not None else None


def worst_when_undefined(name: str) -> bool:
    metric = metric_for(name)
    return metric is not None and metric.worst_when_undefined


def in_history(name: str) -> bool:
    metric = metric_for(name)
    return metric is not None and metric.history


def sampling_epoch(row: dict) -> bool:
    """Whether an epoch's results come from a sampling epoch: its sampling marker (`sampled_marker` of whichever
    primary wave the run scores) is reported and finite."""
    return any(is_sampling_marker(k) and isinstance(v, (int, float)) and math.isfinite(v) for k, v in row.items())


def is_sampling_marker(name: str) -> bool:
    """Whether `name` is the sampling marker of some primary wave (sample/wave_<wave>_missed_frac)."""
    wave = _WAVE.fullmatch(name)
    return wave is not None and name == sampled_marker(wave.group(1))


def wave_of(name: str) -> Optional[str]:
    """The wave a wave metric scores ("V" for sample/wave_v_latency_mae_ms), else None."""
    wave = _WAVE.fullmatch(name)
    return wave.group(1).upper() if wave else None

# Metrics a search can optimise, with the direction each improves in, and the values each can take.
METRIC_MODES: dict[str, str] = {m.name: m.mode for m in REGISTRY.values() if m.mode is not None}
METRICS = tuple(METRIC_MODES)
METRIC_RANGES: dict[str, tuple[float, float]] = {n: (REGISTRY[n].low, REGISTRY[n].high) for n in METRICS}
SAMPLED = sampled_marker()  # reported, finite, on every sampling epoch of a human-profile run
