"""The evaluation run: generate, with the EMA weights and DDIM, `repeats` waveforms for each
condition of a held-out split at each CFG scale, and score them against the recordings and
the ground truth (`fidelity.metrics`). Writes metrics.json, summary.md and figures.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import TrainConfig, from_dict
from ..data import ABRArrays, load_arrays, prepare_splits
from ..data.request import matching_rows
from ..errors import UserError
from ..formatting import finite, json_safe
from ..physiology.ranges import CFG_SCALE, DDIM_ETA, SEED_MAX, check_count, check_in_range
from .metrics import class_metrics, fidelity_metrics, ideal_metrics, oracle_metrics, truth_description
from .summary import AGREEMENT, PHYSIOLOGY, relative_to_oracle, summary_markdown

SPLITS = ("train", "val", "test", "all")
DEFAULT_SCALES = (1.0, 1.5, 2.0)
IDEAL_REPEATS = 2  # new-subject draws per condition for the ideal row (each costs ~35 ms of simulation)
MAX_REPEATS = 1000  # samples per condition: diversity needs 2, and memory grows with repeats x conditions


@dataclass
class EvalOptions:
    """What to generate and score; see `build_parser` for each option's meaning."""

    split: str = "test"
    cfg_scales: tuple[float, ...] = DEFAULT_SCALES
    steps: int | None = None
    eta: float | None = None
    repeats: int = 3
    max_conditions: int = 256
    seed: int = 0
    data_path: str | None = None
    conditions: dict[str, str] | None = None  # only the recordings with these condition values (--condition)

    def check(self) -> None:
        if self.split not in SPLITS:
            raise UserError(f"--split must be one of {', '.join(SPLITS)}, got '{self.split}'")
        if not self.cfg_scales:
            raise UserError(f"--cfg-scale needs one or more values in {CFG_SCALE}")
        for scale in self.cfg_scales:
            check_in_range("--cfg-scale", scale, CFG_SCALE)
        check_count("--repeats", self.repeats, 1, MAX_REPEATS)
        check_count("--max-conditions", self.max_conditions)
        if self.steps is not None:
            check_count("--steps", self.steps)
        if self.eta is not None:
            check_in_range("--eta", self.eta, DDIM_ETA)
        check_count("--seed", self.seed, 0, SEED_MAX)


@dataclass
class Generated:
    """One CFG scale's samples: (K, M, T) µV for the M conditions, K repeats each."""

    scale: float
    signals: np.ndarray
    seconds: float


def evaluate(checkpoint: str | Path, options: EvalOptions | None = None, out_dir: str | Path | None = None, *,
             arrays: ABRArrays | None = None, verbose: bool = True) -> dict[str, Any]:
    """Generate and score; returns the metrics.json content and writes every output when `out_dir` is given."""
    from ..checkpoint import GENERATE_KEYS, load_checkpoint  # torch loads here: bad options fail before it
    from ..model import Generator

    o = options or EvalOptions()
    o.check()
    state = load_checkpoint(checkpoint, need=GENERATE_KEYS)
    cfg = _eval_config(state, o)
    sampler = Generator.from_checkpoint(state, config=cfg, sample_steps=o.steps, eta=o.eta)
    split = _load_split(cfg, o.split, arrays)
    _check_time_axis(split, cfg, state)
    static, labels = split.inputs_for(sampler.normaliser.conditions)
    if o.conditions:
        rows = matching_rows(static, labels, sampler.normaliser.conditions, o.conditions)
        split, static, labels = split.subset(rows), static[rows], None if labels is None else labels[rows]
    idx = select_conditions(len(split), o.max_conditions, o.seed)
    for line in sampler.normaliser.untrained(static[idx]):
        print(f"abr-tune: warning: {line}", file=sys.stderr, flush=True)
    if verbose:
        print(f"abr-tune: {len(idx)} conditions of the {o.split} split × {o.repeats} samples, DDIM "
              f"{cfg.diffusion.sample_steps} steps (eta {cfg.diffusion.ddim_eta:g}) on {sampler.device}, CFG "
              f"{', '.join(f'{s:g}' for s in o.cfg_scales)}", flush=True)
    runs = []
    for scale in o.cfg_scales:
        started = time.perf_counter()
        signals = sampler.generate(static[idx], o.repeats, scale, o.seed,
                                   labels=None if labels is None else labels[idx])
        runs.append(Generated(scale, signals, time.perf_counter() - started))
        if verbose:
            print(f"abr-tune: CFG {scale:g}: {signals.shape[0] * signals.shape[1]} waveforms "
                  f"({signals.shape[1]} conditions × {signals.shape[0]}) in {runs[-1].seconds:.1f} s", flush=True)
    report = _report(checkpoint, state, cfg, o, split.measured(), idx, runs, has_fmp="fmp" in split.conditions.names)
    report["conditions"] = sampler.normaliser.conditions.state_dict()  # names, units and categories it conditions on
    report["sample_rate_hz"], report["window_start_ms"] = cfg.data.effective_rate_hz, split.start_ms
    if out_dir is not None:
        write_outputs(Path(out_dir), report, split, idx, runs, cfg.data.effective_rate_hz)
    return report


def select_conditions(n: int, max_conditions: int, seed: int) -> np.ndarray:
    """Every recording when n <= max_conditions, else a seeded random subset (sorted)."""
    if n <= max_conditions:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_conditions, replace=False))


# ---------------------------------------------------------------- set-up

def _eval_config(state: dict[str, Any], o: EvalOptions) -> TrainConfig:
    cfg = from_dict(state["config"])
    if o.data_path is not None:
        cfg.data.source, cfg.data.path = "file", o.data_path
        # Another file states its own rate and order (e.g. one `sample` wrote at the model's rate): the
        # time axis the model sees is checked after loading (`_check_time_axis`).
        cfg.data.set_by_user = cfg.data.set_by_user - {"sample_rate_hz", "static_order"}
    elif cfg.data.source == "file" and not Path(cfg.data.path or "").is_file():
        raise UserError(f"the checkpoint was trained on '{cfg.data.path}', which is not found here; "
                        "pass --data PATH to evaluate on a data file")
    return cfg


def _check_time_axis(split: ABRArrays, cfg: TrainConfig, state: dict[str, Any]) -> None:
    """The data's 200 samples on the model's time axis: the same sample rate after data.window/resample_hz."""
    trained = from_dict(state["config"]).data.effective_rate_hz
    if abs(split.sample_rate_hz - trained) > 1e-6 * trained:
        raise UserError(f"'{cfg.data.path}' gives {split.sample_rate_hz:g} Hz samples (after data.window and "
                        f"data.resample_hz) but the model was trained on {trained:g} Hz; evaluate it on recordings "
                        "at that rate")


def _load_split(cfg: TrainConfig, split: str, arrays: ABRArrays | None) -> ABRArrays:
    data = (arrays if arrays is not None else load_arrays(cfg.data)) if split == "all" else \
        getattr(prepare_splits(cfg.data, arrays), split)
    if len(data) == 0:
        raise UserError(f"the {split} split is empty (data.split {cfg.data.split}); choose another --split")
    return data


# ---------------------------------------------------------------- report

def _report(checkpoint, state, cfg: TrainConfig, o: EvalOptions, split: ABRArrays, idx: np.ndarray,
            runs: list[Generated], has_fmp: bool = True) -> dict[str, Any]:
    sr, profile = cfg.data.effective_rate_hz, cfg.profile
    by_scale = {f"{r.scale:g}": fidelity_metrics(r.signals, split, idx, sr, profile) for r in runs}
    oracle = oracle_metrics(split, idx, sr, profile)
    if not has_fmp:  # the oracle's ceilings and the noise floor are computed from Fmp
        for row in (oracle, *by_scale.values()):
            row["diversity_noise_floor_uv"] = float("nan")
        oracle.update(corr=float("nan"), mse_uv=float("nan"))
    ideal = ideal_metrics(split, idx, sr, min(o.repeats, IDEAL_REPEATS), profile)
    return {
        "checkpoint": str(checkpoint),
        "epoch": int(state.get("epoch", 0)),
        "data": cfg.data.path if cfg.data.source == "file" else "synthetic",
        "ground_truth": split.truth,  # simulator, marks or detector
        "ground_truth_detail": truth_description(split, profile),
        "species": cfg.data.species, "primary_wave": profile.primary,  # the physiology profile scored
        "signal_unit": split.signal_unit,  # µV, or z for per-recording z-scored files
        "split": o.split,
        "n_conditions": int(len(idx)),
        "repeats": o.repeats,
        "sample_steps": cfg.diffusion.sample_steps,
        "ddim_eta": cfg.diffusion.ddim_eta,
        "seed": o.seed,
        "seconds_per_scale": {f"{r.scale:g}": round(r.seconds, 2) for r in runs},
        "by_cfg_scale": by_scale,
        "oracle": oracle,
        "ideal": ideal,  # a perfect conditional generator (synthetic data), None otherwise
        "relative_to_oracle": relative_to_oracle(by_scale, oracle),
        "ideal_relative_to_oracle": relative_to_oracle({"ideal": ideal}, oracle)["ideal"] if ideal else None,
        "best_cfg_scale": _best_scales(by_scale),
        "by_class": {f"{r.scale:g}": class_metrics(r.signals, split, idx, sr, profile) for r in runs}
        if split.target is not None else {},
    }


def _best_scales(by_scale: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """Per metric with a direction, the CFG scale that scores best (None when no scale has a value)."""
    best: dict[str, float | None] = {}
    for key, _, _, better in (c for c in (*AGREEMENT, *PHYSIOLOGY) if c[3]):
        scored = {s: m[key] for s, m in by_scale.items() if finite(m[key])}
        choose = max if better == "max" else min
        best[key] = float(choose(scored, key=scored.get)) if scored else None
    return best


def write_outputs(out: Path, report: dict[str, Any], split: ABRArrays, idx: np.ndarray, runs: list[Generated],
                  sample_rate_hz: float) -> list[Path]:
    """metrics.json, summary.md, one waveform grid per CFG scale, latency_intensity.png, error_histograms.png."""
    import matplotlib.pyplot as plt

    from .figures import evaluation_figures

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, fig in evaluation_figures(report, split, idx, [(r.scale, r.signals) for r in runs],
                                        sample_rate_hz).items():
        fig.savefig(out / name, dpi=120)
        plt.close(fig)
        written.append(out / name)
    (out / "metrics.json").write_text(json.dumps(json_safe(report), indent=2) + "\n")
    (out / "summary.md").write_text(summary_markdown(report))
    return [*written, out / "metrics.json", out / "summary.md"]
