"""`python -m abr_tune.evaluate`: does a checkpoint generate physiologically right ABRs?

Generates, with the EMA weights and DDIM, `repeats` waveforms for each condition of a
held-out split at each CFG scale, and scores them against the recordings and the
ground truth (`metrics.fidelity_metrics`; definitions in `abr_tune.fidelity`). Writes
metrics.json, summary.md and figures into one output directory.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .config import TrainConfig, from_dict
from .data import ABRArrays, Normaliser, load_arrays, prepare_splits
from .errors import UserError, cli_entry
from .fidelity import COLLAPSE_RATIO
from .metrics import fidelity_metrics, oracle_metrics, pearson_r, reference_targets
from .peaks import pick_wave_v

if TYPE_CHECKING:  # torch loads inside the functions that generate: bad flags fail fast
    import torch

    from .diffusion import Schedule

SPLITS = ("train", "val", "test", "all")
DEFAULT_SCALES = (1.0, 1.5, 2.0)
GENERATE_BATCH = 512  # waveforms per DDIM call: bounds memory on large splits
GRID_PANELS = 8
# (key, column title, format, better): the summary's tables and metrics.json's best_cfg_scale.
AGREEMENT = (("corr", "Pearson r", ".3f", "max"), ("corr_truth", "r vs noise-free", ".3f", "max"),
             ("mse_uv", "MSE (µV²)", ".4f", "min"),
             ("spectral_distance_db", "spectral dist. (dB)", ".2f", "min"),
             ("wave_v_latency_mae_ms", "V latency MAE (ms)", ".3f", "min"),
             ("wave_v_latency_bias_ms", "V latency bias (ms)", "+.3f", None),
             ("wave_v_amplitude_error_pct", "V amplitude error (%)", ".1f", "min"),
             ("wave_v_amplitude_bias_pct", "V amplitude bias (%)", "+.1f", None),
             ("wave_v_found_frac", "V found", ".1%", "max"),
             ("wave_i_latency_mae_ms", "I latency MAE (ms)", ".3f", None),
             ("wave_iii_latency_mae_ms", "III latency MAE (ms)", ".3f", None))
PHYSIOLOGY = (("detection_acc", "detection acc.", ".1%", "max"),
              ("detection_acc_clear", "detection acc. (clear)", ".1%", "max"),
              ("detection_sensitivity", "sensitivity", ".1%", None),
              ("detection_specificity", "specificity", ".1%", None),
              ("li_slope_ms_per_db", "L–I slope (ms/dB)", "+.4f", None),
              ("li_slope_truth_ms_per_db", "truth slope (ms/dB)", "+.4f", None),
              ("li_slope_rel_error", "slope error", ".1%", "min"),
              ("rate_effect_ms_per_hz", "rate (ms per /s)", "+.4f", None),
              ("rate_effect_truth_ms_per_hz", "truth rate", "+.4f", None),
              ("infant_delay_ms", "infant delay (ms)", "+.2f", None),
              ("infant_delay_truth_ms", "truth infant", "+.2f", None),
              ("diversity_ratio", "diversity gen/real", ".2f", None),
              ("collapsed", "collapsed", "", None))


@dataclass
class EvalOptions:
    """What to generate and score; see `build_parser` for each option's meaning."""

    split: str = "test"
    cfg_scales: tuple[float, ...] = DEFAULT_SCALES
    steps: int | None = None
    repeats: int = 3
    max_conditions: int = 256
    seed: int = 0
    data_path: str | None = None

    def check(self) -> None:
        if self.split not in SPLITS:
            raise UserError(f"--split must be one of {', '.join(SPLITS)}, got '{self.split}'")
        if not self.cfg_scales or min(self.cfg_scales) < 0:
            raise UserError(f"--cfg-scale needs one or more values >= 0, got {list(self.cfg_scales)}")
        for name, value in (("--repeats", self.repeats), ("--max-conditions", self.max_conditions),
                            ("--steps", 1 if self.steps is None else self.steps)):
            if value < 1:
                raise UserError(f"{name} must be >= 1, got {value}")


@dataclass
class CheckpointSampler:
    """A checkpoint's EMA weights ready for DDIM: raw conditions in, µV waveforms out."""

    cfg: TrainConfig
    model: Any
    normaliser: Normaliser
    schedule: Schedule
    autocast: Any
    device: torch.device

    @classmethod
    def load(cls, state: dict[str, Any], cfg: TrainConfig) -> CheckpointSampler:
        from .diffusion import Schedule
        from .train import autocast_factory, build_model, resolve_device

        device = resolve_device(cfg.device)
        return cls(cfg, build_model(cfg, state, device, use_ema=True), Normaliser.from_state_dict(state["normaliser"]),
                   Schedule.cosine(cfg.diffusion.num_train_steps).to(device), autocast_factory(cfg, device), device)

    def generate(self, static_raw: np.ndarray, repeats: int, cfg_scale: float, seed: int) -> np.ndarray:
        """(K, M, T) µV: K samples per raw (M, 4) condition; the same noise at every CFG scale."""
        import torch

        from .evaluation import generate_uv

        static = torch.as_tensor(self.normaliser.encode_static(static_raw), dtype=torch.float32, device=self.device)
        tiled = static.repeat(repeats, 1)  # repeat-major: row k*M + m is repeat k of condition m
        chunks = [generate_uv(self.model, self.schedule, tiled[lo : lo + GENERATE_BATCH], self.cfg, self.normaliser,
                              seed + i, self.autocast, cfg_scale=cfg_scale)
                  for i, lo in enumerate(range(0, len(tiled), GENERATE_BATCH))]
        return np.concatenate(chunks).reshape(repeats, len(static_raw), -1)


@dataclass
class Generated:
    """One CFG scale's samples: (K, M, T) µV for the M conditions, K repeats each."""

    scale: float
    signals: np.ndarray
    seconds: float


# ---------------------------------------------------------------- library entry

def evaluate(checkpoint: str | Path, options: EvalOptions | None = None, out_dir: str | Path | None = None, *,
             arrays: ABRArrays | None = None, verbose: bool = True) -> dict[str, Any]:
    """Generate and score; returns the metrics.json content and writes every output when `out_dir` is given."""
    from .checkpoint import load_checkpoint

    o = options or EvalOptions()
    o.check()
    state = load_checkpoint(checkpoint)
    cfg = _eval_config(state, o)
    split = _load_split(cfg, o.split, arrays)
    idx = select_conditions(len(split), o.max_conditions, o.seed)
    sampler = CheckpointSampler.load(state, cfg)
    if verbose:
        print(f"abr-tune: {len(idx)} conditions of the {o.split} split × {o.repeats} samples, DDIM "
              f"{cfg.diffusion.sample_steps} steps on {sampler.device}, CFG "
              f"{', '.join(f'{s:g}' for s in o.cfg_scales)}", flush=True)
    runs = []
    for scale in o.cfg_scales:
        started = time.perf_counter()
        signals = sampler.generate(split.static[idx], o.repeats, scale, o.seed)
        runs.append(Generated(scale, signals, time.perf_counter() - started))
        if verbose:
            print(f"abr-tune: CFG {scale:g}: {signals.shape[0] * signals.shape[1]} waveforms "
                  f"({signals.shape[1]} conditions × {signals.shape[0]}) in {runs[-1].seconds:.1f} s", flush=True)
    report = _report(checkpoint, state, cfg, o, split, idx, runs)
    if out_dir is not None:
        write_outputs(Path(out_dir), report, split, idx, runs, cfg.data.sample_rate_hz)
    return report


def select_conditions(n: int, max_conditions: int, seed: int) -> np.ndarray:
    """Every recording when n <= max_conditions, else a seeded random subset (sorted)."""
    if n <= max_conditions:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_conditions, replace=False))


# ---------------------------------------------------------------- set-up

def _eval_config(state: dict[str, Any], o: EvalOptions) -> TrainConfig:
    cfg = from_dict(state["config"])
    if o.steps is not None:
        cfg.diffusion.sample_steps = min(o.steps, cfg.diffusion.num_train_steps)
    if o.data_path is not None:
        cfg.data.source, cfg.data.path = "file", o.data_path
    elif cfg.data.source == "file" and not Path(cfg.data.path or "").is_file():
        raise UserError(f"the checkpoint was trained on '{cfg.data.path}', which is not found here; "
                        "pass --data PATH to evaluate on a data file")
    return cfg


def _load_split(cfg: TrainConfig, split: str, arrays: ABRArrays | None) -> ABRArrays:
    data = (arrays if arrays is not None else load_arrays(cfg.data)) if split == "all" else \
        getattr(prepare_splits(cfg.data, arrays), split)
    if len(data) == 0:
        raise UserError(f"the {split} split is empty (data.split {cfg.data.split}); choose another --split")
    return data


# ---------------------------------------------------------------- report

def _report(checkpoint, state, cfg: TrainConfig, o: EvalOptions, split: ABRArrays, idx: np.ndarray,
            runs: list[Generated]) -> dict[str, Any]:
    sr = cfg.data.sample_rate_hz
    by_scale = {f"{r.scale:g}": fidelity_metrics(r.signals, split, idx, sr) for r in runs}
    return {
        "checkpoint": str(checkpoint),
        "epoch": int(state.get("epoch", 0)),
        "data": cfg.data.path if cfg.data.source == "file" else "synthetic",
        "ground_truth": "simulator" if split.response_present is not None else
        "marked v_latency_ms/v_amplitude_uv where present, else the peak picker on the recording",
        "split": o.split,
        "n_conditions": int(len(idx)),
        "repeats": o.repeats,
        "sample_steps": cfg.diffusion.sample_steps,
        "ddim_eta": cfg.diffusion.ddim_eta,
        "seed": o.seed,
        "seconds_per_scale": {f"{r.scale:g}": round(r.seconds, 2) for r in runs},
        "by_cfg_scale": by_scale,
        "oracle": oracle_metrics(split, idx, sr),
        "best_cfg_scale": _best_scales(by_scale),
    }


def _best_scales(by_scale: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """Per metric with a direction, the CFG scale that scores best (None when no scale has a value)."""
    best: dict[str, float | None] = {}
    for key, _, _, better in (c for c in (*AGREEMENT, *PHYSIOLOGY) if c[3]):
        scored = {s: m[key] for s, m in by_scale.items() if _finite(m[key])}
        choose = max if better == "max" else min
        best[key] = float(choose(scored, key=scored.get)) if scored else None
    return best


def summary_markdown(report: dict[str, Any]) -> str:
    """The report as markdown: two tables of CFG scale vs metric with the oracle row, then definitions."""
    lines = [f"# ABR fidelity: {report['checkpoint']}", "",
             f"Epoch {report['epoch']}, {report['split']} split of {report['data']}: {report['n_conditions']} "
             f"conditions × {report['repeats']} samples, DDIM {report['sample_steps']} steps "
             f"(eta {report['ddim_eta']:g}), seed {report['seed']}. Ground truth: {report['ground_truth']}.", ""]
    for title, columns in (("Waveform agreement and peaks", AGREEMENT), ("Physiology and diversity", PHYSIOLOGY)):
        lines += [f"## {title}", "", _table(report, columns), ""]
    collapsed = [s for s, m in report["by_cfg_scale"].items() if m["collapsed"]]
    if collapsed:
        lines += [f"**Collapsed generator** at CFG {', '.join(collapsed)}: repeated samples of one condition "
                  f"spread less than {COLLAPSE_RATIO:g}× the real spread.", ""]
    lines += [_DEFINITIONS]
    return "\n".join(lines)


def _table(report: dict[str, Any], columns) -> str:
    best = report["best_cfg_scale"]
    header = "| CFG scale | " + " | ".join(title for _, title, _, _ in columns) + " |"
    rows = [header, "|" + "---|" * (len(columns) + 1)]
    for scale, m in report["by_cfg_scale"].items():
        cells = [_cell(m[k], fmt, bold=best.get(k) == float(scale)) for k, _, fmt, _ in columns]
        rows.append(f"| {scale} | " + " | ".join(cells) + " |")
    rows.append("| oracle | " + " | ".join(_cell(report["oracle"][k], fmt) for k, _, fmt, _ in columns) + " |")
    return "\n".join(rows)


def _cell(value: Any, fmt: str, bold: bool = False) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    text = ("yes" if value else "no") if isinstance(value, bool) else format(value, fmt)
    return f"**{text}**" if bold else text


_DEFINITIONS = """## What the numbers mean

- **Pearson r, MSE**: each generated waveform against the recording of its condition, averaged.
  The recording holds residual noise the generator cannot know, so even the noise-free
  response scores only r = sqrt(1 − 1/Fmp) and MSE = the residual-noise power: the oracle row.
- **r vs noise-free** (synthetic data): each generated waveform against the simulator's noise-free
  response of its condition, over the conditions with a response. A generator that reproduces the
  response and realistic residual noise scores what a recording does: the oracle row (≈ 0.8).
- **spectral dist.**: RMS over 100–3000 Hz of the dB difference between the mean power spectra
  of the generated and the recorded set (0 = right spectral content).
- **V/I/III latency, amplitude**: the documented peak picker (`abr_tune.peaks`) on each generated
  waveform against the truth (the simulator's, or marked `v_latency_ms`/`v_amplitude_uv`, else the
  picker on the recording; waves I and III always the picker); amplitude is peak-to-following-trough,
  error in % of the truth; **found**: share of true peaks the picker finds in the generated waveform.
  The oracle row is the picker on the recordings themselves: its own accuracy.
- **detection**: a response is detected when the picker finds wave V of at least 0.04 µV; scored
  against the truth (response present or not); **clear**: only conditions whose truth is clinically
  unambiguous (no response, or a response with Fmp ≥ 3.1). The oracle row is the detector's ceiling.
- **L–I slope, rate, infant delay**: one least-squares fit of wave V latency on intensity (ms/dB),
  click rate (ms per click/s) and age < 1 year (ms), for generated and true latencies on the same
  conditions; **slope error**: |generated − truth| / |truth|.
- **diversity gen/real**: spread of repeated samples of one condition over the spread of recordings
  of different patients with the nearest condition; **collapsed** when below the threshold above.

Best value per column in bold. Figures: `waveforms_cfg<scale>.png`, `latency_intensity.png`,
`error_histograms.png`.
"""


# ---------------------------------------------------------------- files

def check_out_dir(out: Path, force: bool) -> None:
    """Refuse to write into an existing directory unless `force` (nothing is overwritten by accident)."""
    if out.exists() and not force:
        raise UserError(f"'{out}' already exists; choose another --out or pass --force to overwrite it")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out '{out}' is a file; pass a directory")


def write_outputs(out: Path, report: dict[str, Any], split: ABRArrays, idx: np.ndarray, runs: list[Generated],
                  sample_rate_hz: float) -> list[Path]:
    """metrics.json, summary.md, one waveform grid per CFG scale, latency_intensity.png, error_histograms.png."""
    from . import fidelity_plots as fp
    from .evaluation import pick_reference_indices
    from .plots import GENERATED_COLOR, REFERENCE_COLOR, plt, waveform_grid

    out.mkdir(parents=True, exist_ok=True)
    ref = split.subset(idx)
    shown = np.unique(pick_reference_indices(ref, GRID_PANELS, report["seed"]))
    shown = shown[np.argsort(ref.static[shown, 1], kind="stable")]  # panels in intensity order
    figures = {f"waveforms_cfg{r.scale:g}.png": waveform_grid(
        [(ref.signals[shown], "recording", REFERENCE_COLOR), (r.signals[0, shown], "generated", GENERATED_COLOR)],
        ref.static[shown], sample_rate_hz, f"Generated (EMA, DDIM, CFG {r.scale:g}) vs recorded ABRs by intensity")
        for r in runs}
    rows = [(r.scale, _per_waveform(r.signals, ref, sample_rate_hz)) for r in runs]
    figures["latency_intensity.png"] = fp.latency_intensity_figure([
        (_li_title(report["by_cfg_scale"][f"{s:g}"], s), np.tile(ref.static[:, 1], report["repeats"]),
         r["truth_ms"], r["latency_v_ms"]) for s, r in rows])
    figures["error_histograms.png"] = fp.error_histograms_figure(
        [(f"CFG {s:g}", r) for s, r in rows], _per_waveform(ref.signals[None], ref, sample_rate_hz, oracle=True),
        report["oracle"]["corr"])
    written = []
    for name, fig in figures.items():
        fig.savefig(out / name, dpi=120)
        plt.close(fig)
        written.append(out / name)
    (out / "metrics.json").write_text(json.dumps(json_safe(report), indent=2) + "\n")
    (out / "summary.md").write_text(summary_markdown(report))
    return [*written, out / "metrics.json", out / "summary.md"]


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
    slope, truth = (_cell(m[k], "+.4f") for k in ("li_slope_ms_per_db", "li_slope_truth_ms_per_db"))
    return f"CFG {scale:g}: slope {slope} ms/dB (truth {truth})"


def json_safe(value: Any) -> Any:
    """NaN/inf → null (strict JSON); numpy scalars → Python."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# ---------------------------------------------------------------- CLI

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m abr_tune.evaluate",
        description="Score a checkpoint's generated ABRs (EMA weights, DDIM) against a held-out split: waveform "
                    "agreement, peak latencies/amplitudes, response detection, latency-intensity slope, age and "
                    "rate effects, diversity. Writes metrics.json, summary.md and figures.",
        epilog="example: python -m abr_tune.evaluate --checkpoint runs/cpu/abr_cpu/checkpoints/abr_cpu_best.pt "
               "--cfg-scale 1 1.5 2 --repeats 3",
    )
    p.add_argument("--checkpoint", required=True, metavar="CKPT", help="a .pt checkpoint written by abr-tune")
    p.add_argument("--split", default="test", metavar="NAME",
                   help=f"which recordings: {', '.join(SPLITS)} (default test; 'all' = every recording of the "
                        "data, e.g. an external file)")
    p.add_argument("--data", metavar="PATH", help="evaluate on this .npz/.csv instead of the checkpoint's own data")
    p.add_argument("--cfg-scale", type=float, nargs="+", metavar="S", default=list(DEFAULT_SCALES),
                   help="classifier-free guidance scales to compare (default 1 1.5 2)")
    p.add_argument("--steps", type=int, metavar="N",
                   help="DDIM steps (default: the checkpoint's diffusion.sample_steps)")
    p.add_argument("--repeats", type=int, default=3, metavar="K",
                   help="samples per condition, different seeds (default 3; diversity needs >= 2)")
    p.add_argument("--max-conditions", type=int, default=256, metavar="M",
                   help="evaluate at most this many recordings of the split, a seeded random subset (default 256)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--out", metavar="DIR", help="output directory (default: <run dir>/eval/<checkpoint name>_<split>)")
    p.add_argument("--force", action="store_true", help="write into --out even if it exists")
    return p


def default_out(checkpoint: str | Path, split: str) -> Path:
    ckpt = Path(checkpoint)
    return ckpt.resolve().parent.parent / "eval" / f"{ckpt.stem}_{split}"


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    options = EvalOptions(split=args.split, cfg_scales=tuple(dict.fromkeys(args.cfg_scale)), steps=args.steps,
                          repeats=args.repeats, max_conditions=args.max_conditions, seed=args.seed,
                          data_path=args.data)
    options.check()
    out = Path(args.out) if args.out else default_out(args.checkpoint, args.split)
    check_out_dir(out, args.force)
    report = evaluate(args.checkpoint, options, out)
    print(summary_markdown(report).split("## What the numbers mean")[0].rstrip())
    print(f"abr-tune: wrote metrics.json, summary.md and figures to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
