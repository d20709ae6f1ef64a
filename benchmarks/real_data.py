"""Real-data benchmark: train on a recordings file's training subjects for a wall-clock budget, then generate
one waveform per recording of the held-out subjects (the test split) and compare the two sets.

    python benchmarks/real_data.py --data recordings.npz --window 0 --minutes 15 --out DIR

`--data` is a file `python -m abr_tune.convert` wrote; `--window MS` and `--resample-hz HZ` are
`data.window` and `data.resample_hz`. Training is timed as in benchmarks/fidelity.py (an epoch probed,
trainer.max_epochs set so the cosine schedule completes in the budget, a deadline regardless). The
metrics and their oracles are defined in abr_tune/fidelity/heldout.py. Writes DIR/real_data.json (the
keys of KEYS at the first --cfg-scale, every scale under by_cfg_scale) and DIR/generated.npz (the generated
waveforms) and prints them as a table.
`--checkpoint CKPT` scores a trained checkpoint instead (the CFG lever costs no training). The generated
median waveforms pool `--draws` samples per held-out record (default 16; every other metric uses the first).
`--series-eta ETA` samples each held-out subject's level series as one synthetic animal: the same DDIM
starting noise for the series' records, with DDIM eta = ETA adding fresh noise per record along the way.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from abr_tune.data import prepare_splits  # noqa: E402
from abr_tune.errors import UserError  # noqa: E402
from abr_tune.fidelity.heldout import Recordings, heldout_metrics  # noqa: E402
from abr_tune.formatting import json_safe, table  # noqa: E402
from abr_tune.model import Generator  # noqa: E402
from abr_tune.model.generator import series_noise  # noqa: E402
from benchmarks.common import train_for  # noqa: E402

KEYS = ("c2st_acc", "c2st_acc_oracle", "mean_waveform_r", "mean_waveform_r_oracle", "latency_slope_ratio",
        "amplitude_growth_ratio", "threshold_error_db", "minutes", "epochs", "config")
# What real training subjects score in the generator's place, beside the keys they judge.
ORACLES = {k: f"{k}_oracle" for k in ("latency_slope_ratio", "amplitude_growth_ratio", "threshold_error_db")}
DEFAULT_CONFIG = ROOT / "configs" / "mouse.yaml"
DRAWS = 16  # samples per held-out record pooled into the generated median waveforms


def targets(m: dict) -> dict[str, bool]:
    """Whether each target is reached: C2ST <= 0.65 (or within 0.05 of an oracle above 0.60), r >= 0.95 x its
    oracle, both ratios in [0.8, 1.25], threshold error <= 5 dB (the data's level step)."""
    c2st_bound = m["c2st_acc_oracle"] + 0.05 if _finite(m["c2st_acc_oracle"]) and m["c2st_acc_oracle"] > 0.60 \
        else 0.65
    return {"c2st_acc": _finite(m["c2st_acc"]) and m["c2st_acc"] <= c2st_bound,
            "mean_waveform_r": _finite(m["mean_waveform_r"]) and _finite(m["mean_waveform_r_oracle"])
            and m["mean_waveform_r"] >= 0.95 * m["mean_waveform_r_oracle"],
            **{k: _finite(m[k]) and 0.8 <= m[k] <= 1.25 for k in ("latency_slope_ratio", "amplitude_growth_ratio")},
            "threshold_error_db": _finite(m["threshold_error_db"]) and m["threshold_error_db"] <= 5.0}


def as_close_as_oracle(m: dict) -> dict[str, bool]:
    """Per slope ratio and the threshold error: whether the generated set is at least as close to the held-out
    subjects as the real training subjects are (ratios by |log ratio|; NaN: no)."""
    out = {}
    for key in ("latency_slope_ratio", "amplitude_growth_ratio"):
        a, b = m[key], m[ORACLES[key]]
        out[key] = _finite(a) and a > 0 and _finite(b) and b > 0 and abs(math.log(a)) <= abs(math.log(b))
    a, b = m["threshold_error_db"], m[ORACLES["threshold_error_db"]]
    out["threshold_error_db"] = _finite(a) and _finite(b) and a <= b
    return out


def score(checkpoint: str, scales: list[float] | None, seed: int, draws: int = DRAWS,
          series_eta: float | None = None) -> tuple[dict, object, dict]:
    """Generate `draws` waveforms for every held-out recording at each CFG scale (as level series with
    `series_eta`) and measure them against the recordings: ({scale: metrics}, the config that ran,
    {cfg_<scale>: (N, T) µV, the first draw})."""
    gen = Generator.from_checkpoint(checkpoint, eta=series_eta)
    cfg = gen.cfg
    splits = prepare_splits(cfg.data)
    test, train = splits.test, splits.train
    if "intensity" not in test.conditions.names:
        raise UserError(f"'{cfg.data.path}' has no intensity condition; the level metrics need one")
    level = test.conditions.names.index("intensity")
    # The profile's windows are on the record's time axis, which a later window start shifts.
    profile = replace(cfg.profile, delay_ms=cfg.profile.delay_ms - test.start_ms)
    real, seen = (Recordings(a.signals, a.static, a.labels, a.patient_id, level) for a in (test, train))
    static, labels = test.inputs_for(gen.normaliser.conditions)
    x_T = None if series_eta is None else series_noise(real.series(), draws, real.signals.shape[1], 1.0, seed)
    out, waveforms = {}, {}
    for scale in scales or [cfg.diffusion.cfg_scale]:
        generated = gen.generate(static, draws, scale, seed, labels=labels, x_T=x_T)
        waveforms[f"cfg_{scale:g}"] = generated[0]
        out[f"{scale:g}"] = heldout_metrics(generated[0], real, seen, test.sample_rate_hz, profile, seed,
                                            extra_draws=generated[1:])
    return out, cfg, waveforms


def sampled_epochs(history: list[dict]) -> list[dict]:
    """val/mse_v beside the training's own sample metrics (validation subjects), on each sampling epoch: whether
    the loss and the samples move together."""
    keys = ("epoch", "val/mse_v", "sample/c2st_acc", "sample/corr", "sample/detection_acc")
    return [{k: h.get(k) for k in keys} for h in history if "sample/c2st_acc" in h]


def scale_table(rows: dict[str, dict]) -> str:
    keys = (*KEYS[:7], *ORACLES.values())
    lines = [("CFG", *keys)] + [(s, *(_fmt(m[k]) for k in keys)) for s, m in rows.items()]
    return "\n".join(table(lines, rule=False, right=True))


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="recordings .npz (python -m abr_tune.convert)")
    p.add_argument("--window", type=float, help="data.window: start (ms) of the 200-sample window")
    p.add_argument("--resample-hz", type=float, help="data.resample_hz: resample to this rate first")
    p.add_argument("--minutes", type=float, default=15.0, help="wall-clock training budget (default 15)")
    p.add_argument("--epochs", type=int, help="train exactly this many epochs instead (no deadline)")
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="train config (default configs/mouse.yaml)")
    p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                   help="a config key for this run, e.g. --override loss.stft_weight=0.1 (repeatable)")
    p.add_argument("--checkpoint", help="score this checkpoint instead of training one")
    p.add_argument("--cfg-scale", type=float, nargs="+", help="CFG scales (default: the config's cfg_scale)")
    p.add_argument("--draws", type=int, default=DRAWS,
                   help=f"samples per held-out record pooled into the generated medians (default {DRAWS})")
    p.add_argument("--series-eta", type=float, metavar="ETA",
                   help="sample each held-out subject's level series from one starting noise, DDIM eta ETA (0-1)")
    p.add_argument("--seed", type=int, default=0, help="sampling and C2ST seed (default 0)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--out", required=True, help="directory for real_data.json and the training run")
    args = p.parse_args(argv)
    problems = [(not Path(args.data).is_file(), f"--data {args.data}: no such file"),
                (not (math.isfinite(args.minutes) and args.minutes > 0), "--minutes must be a positive number"),
                (args.epochs is not None and args.epochs < 1, "--epochs must be at least 1"),
                (args.window is not None and not (math.isfinite(args.window) and args.window >= 0),
                 "--window must be a finite number of ms >= 0"),
                (args.resample_hz is not None and not (math.isfinite(args.resample_hz) and args.resample_hz > 0),
                 "--resample-hz must be a positive number of Hz"),
                (any(not (math.isfinite(s) and 0 <= s <= 50) for s in args.cfg_scale or []),
                 "--cfg-scale values must lie in 0-50"),
                (not 1 <= args.draws <= 256, "--draws must lie in 1-256"),
                (args.series_eta is not None and not (math.isfinite(args.series_eta) and 0 <= args.series_eta <= 1),
                 "--series-eta must lie in 0-1"),
                ((Path(args.out) / "real_data.json").exists(),
                 f"{args.out}/real_data.json exists; choose another --out"),
                (any("=" not in o for o in args.override), "--override takes KEY=VALUE")]
    for bad, message in problems:
        if bad:
            p.error(message)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    out = Path(args.out)
    overrides = {"data.source": "file", "data.path": str(Path(args.data).resolve()),
                 **({"data.window": args.window} if args.window is not None else {}),
                 **({"data.resample_hz": args.resample_hz} if args.resample_hz is not None else {}),
                 **dict(o.split("=", 1) for o in args.override)}
    summary = None
    if args.checkpoint:
        torch.set_num_threads(args.threads)
        checkpoint = args.checkpoint
    else:
        summary = train_for(args.config, args.minutes, out, args.threads, args.epochs, _typed(overrides))
        checkpoint = summary["best_checkpoint"] or summary["last_checkpoint"]
    started = time.monotonic()
    by_scale, cfg, waveforms = score(checkpoint, args.cfg_scale, args.seed, args.draws, args.series_eta)
    first = next(iter(by_scale.values()))
    result = {**{k: first[k] for k in KEYS[:7]}, **{k: first[k] for k in ORACLES.values()},
              "minutes": None if summary is None else round(summary["train_seconds"] / 60, 2),
              "epochs": None if summary is None else summary["epochs_run"],
              "config": None if args.checkpoint else args.config,
              "overrides": overrides, "checkpoint": str(checkpoint), "cfg_scale": float(next(iter(by_scale))),
              "draws": args.draws, "series_eta": args.series_eta,
              "targets": targets(first), "as_close_as_oracle": as_close_as_oracle(first), "by_cfg_scale": by_scale,
              "score_seconds": round(time.monotonic() - started, 1),
              "train": None if summary is None else {k: summary[k] for k in (
                  "status", "epochs_run", "planned_epochs", "best_epoch", "best_val_mse_v", "train_seconds")},
              "sampled_epochs": [] if summary is None else sampled_epochs(summary["history"]),
              "species": cfg.data.species, "sample_rate_hz": cfg.data.effective_rate_hz}
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "generated.npz", **waveforms)  # one row per held-out recording of the test split, in its order
    (out / "real_data.json").write_text(json.dumps(json_safe(result), indent=2) + "\n")
    print(scale_table(by_scale))
    for k in KEYS[7:]:
        print(f"{k}: {result[k]}")
    print("targets reached: " + ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in result["targets"].items()))
    print("as close as the training subjects: "
          + ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in result["as_close_as_oracle"].items()))
    print(f"wrote {out / 'real_data.json'}")
    return 0


def _typed(overrides: dict) -> dict:
    """--override values as YAML scalars (numbers, booleans, lists), like train's --override."""
    import yaml

    return {k: yaml.safe_load(v) if isinstance(v, str) and k not in ("data.path", "data.source") else v
            for k, v in overrides.items()}


def _finite(x) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def _fmt(value) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.4g}"


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as err:
        print(f"abr-tune: error: {err}", file=sys.stderr)
        sys.exit(2)
