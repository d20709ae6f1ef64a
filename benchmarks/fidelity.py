"""Fidelity benchmark: train the CPU config for a fixed wall-clock budget, then evaluate.

    python benchmarks/fidelity.py --minutes 10

Times one epoch (train + validation), sets trainer.max_epochs so the run fits the budget (the cosine schedule
then completes), stops at the deadline regardless, and scores the best checkpoint (EMA
weights, lowest val/mse_v) on the synthetic test split at several CFG scales with
`abr_tune.evaluate`. Prints CFG scale vs each target metric and writes
<out>/fidelity.json next to the evaluation's own metrics.json, summary.md and figures.
`--checkpoint CKPT` scores a checkpoint already trained (e.g. at another DDIM eta) without training.
Not run by the tests.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from abr_tune.fidelity.evaluation import EvalOptions, evaluate  # noqa: E402
from abr_tune.formatting import json_safe, table  # noqa: E402
from benchmarks.common import train_for  # noqa: E402

# Targets on the synthetic test split: (metric, comparison, value). Pearson r is taken against the
# noise-free response (corr_truth): against a noisy recording even the true response scores only
# ~0.6 (the oracle row of `corr`), against the noise-free one a recording scores ~0.8. The C2ST
# accuracy (abr_tune/fidelity/c2st.py) is 0.5 when generated and recorded cannot be told apart.
TARGETS = (("wave_v_latency_mae_ms", "<=", 0.20), ("li_slope_rel_error", "<=", 0.10),
           ("detection_acc", ">=", 0.90), ("corr_truth", ">=", 0.80), ("c2st_acc", "<=", 0.65))
SHOWN = ("corr", "corr_truth", "mse_uv", "spectral_distance_db", "wave_v_latency_mae_ms", "wave_v_amplitude_error_pct",
         "wave_v_found_frac", "detection_acc", "detection_acc_clear", "li_slope_ms_per_db", "li_slope_truth_ms_per_db",
         "li_slope_rel_error", "rate_effect_ms_per_hz", "infant_delay_ms", "diversity_ratio", "c2st_acc")


def reached(value, op: str, target: float) -> bool:
    return value is not None and math.isfinite(value) and (value <= target if op == "<=" else value >= target)


def metrics_table(report: dict) -> str:
    rows = [("CFG", *SHOWN)]
    for scale, m in report["by_cfg_scale"].items():
        rows.append((scale, *(_fmt(m[k]) for k in SHOWN)))
    rows.append(("oracle", *(_fmt(report["oracle"][k]) for k in SHOWN)))
    if report.get("ideal"):
        rows.append(("ideal", *(_fmt(report["ideal"][k]) for k in SHOWN)))
    return "\n".join(table(rows, rule=False, right=True))


def relative_table(report: dict) -> str:
    relative = report["relative_to_oracle"]
    keys = list(next(iter(relative.values()), {}))
    rows = [("CFG", *keys)] + [(scale, *(_fmt(m[k]) for k in keys)) for scale, m in relative.items()]
    return "\n".join(table(rows, rule=False, right=True))


def _fmt(value) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.4g}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0, help="wall-clock training budget (default 10)")
    p.add_argument("--epochs", type=int, help="train exactly this many epochs instead (no deadline): comparable "
                                               "numbers on a shared or busy machine")
    p.add_argument("--config", default=str(ROOT / "configs/cpu.yaml"))
    p.add_argument("--checkpoint", help="score this checkpoint against the targets instead of training one")
    p.add_argument("--cfg-scale", type=float, nargs="+", default=[1.0, 1.5, 2.0, 3.0])
    p.add_argument("--repeats", type=int, default=2, help="samples per test condition (default 2)")
    p.add_argument("--max-conditions", type=int, default=256, help="test conditions scored (default 256: all)")
    p.add_argument("--steps", type=int, help="DDIM steps (default: the config's)")
    p.add_argument("--eta", type=float, help="DDIM eta (default: the config's diffusion.ddim_eta)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--out", default=str(ROOT / "runs/bench/fidelity"))
    args = p.parse_args(argv)
    out = Path(args.out) / time.strftime("%Y%m%d-%H%M%S")
    if args.checkpoint:
        torch.set_num_threads(args.threads)
        summary, checkpoint = None, args.checkpoint
    else:
        summary = train_for(args.config, args.minutes, out, args.threads, args.epochs)
        checkpoint = summary["best_checkpoint"] or summary["last_checkpoint"]
    options = EvalOptions(cfg_scales=tuple(args.cfg_scale), repeats=args.repeats, steps=args.steps, eta=args.eta,
                          max_conditions=args.max_conditions)
    report = evaluate(checkpoint, options, out / "eval")
    results = {t[0]: {"target": f"{t[1]} {t[2]}", **{s: reached(m[t[0]], *t[1:]) for s, m in
                                                      report["by_cfg_scale"].items()}} for t in TARGETS}
    if summary is not None:
        print(f"\ntrained {summary['epochs_run']} epochs in {summary['train_seconds'] / 60:.1f} min "
              f"({summary['status']}), best val/mse_v {summary['best_val_mse_v']:.4f} at epoch {summary['best_epoch']}")
    print(metrics_table(report))
    print("relative to the oracle (generated ÷ oracle):")
    print(relative_table(report))
    ideal = report.get("ideal") or {}
    for metric, op, target in TARGETS:
        hits = [s for s, ok in results[metric].items() if s != "target" and ok]
        verdict = "reached at CFG " + ", ".join(hits) if hits else "not reached"
        if metric in ideal:
            verdict += f" (ideal generator {_fmt(ideal[metric])}: "
            verdict += f"{'reaches' if reached(ideal[metric], op, target) else 'misses'} it)"
        print(f"target {metric} {op} {target}: {verdict}")
    trained = None if summary is None else {k: summary[k] for k in ("status", "epochs_run", "planned_epochs",
                                                                     "best_epoch", "best_val_mse_v", "train_seconds",
                                                                     "best_checkpoint")}
    bench = {"config": None if args.checkpoint else args.config, "checkpoint": str(checkpoint),
             "minutes": args.minutes, "epochs": args.epochs, "threads": args.threads, "train": trained,
             "targets": results, "evaluation": report}
    (out / "fidelity.json").write_text(json.dumps(json_safe(bench), indent=2) + "\n")
    print(f"wrote {out / 'fidelity.json'} and the evaluation in {out / 'eval'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
