"""Figure 8: do the TPE options (multivariate, group, constant_liar) find a better config?

Each arm runs `python -m abr_tune.search` as a user would (a subprocess, its own local Ray,
via figure 7's `run_search`) on a space file written here: 12 trials of configs/cpu.yaml's
model on a small dataset, 2 at a time, ASHA (max_t 4, grace 1, reduction factor 2), TPE
with 4 random start-up trials, no confirmation stage. The space is conditional, like
search_spaces/lr_stft.yaml: optim.lr, loss.stft_weight, and the STFT resolution only when
loss.stft_weight > 0.05, so `group` has a conditional group to separate.

Arms: plain TPE (the defaults), TPE with multivariate + group + constant_liar, and TPE with
constant_liar only. Each arm runs at sampler seeds 0, 1, 2 (the training seed stays fixed),
interleaved by seed (seed 0: plain, options, liar; seed 1: ...), so a busy spell of the shared
machine falls on every arm alike. The figure is median over seeds of the best val/mse_v of
the search (the best epoch of any trial) ÷ the same for plain TPE: below 1 the options helped.
Per-seed values, each search's wall time and the load average are in the details.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from .common import CPU_CONFIG, Figure, median, reported
from .search_overhead import TINY_MODEL, run_search

SECTION = "8 tpe"
ARMS = {  # name -> search: options on top of the TPE defaults
    "plain": {},
    "options": {"multivariate": True, "group": True, "constant_liar": True},
    "liar": {"constant_liar": True},
}
PARAMS = {
    "optim.lr": {"dist": "loguniform", "low": 1e-4, "high": 3e-3},
    "loss.stft_weight": {"dist": "uniform", "low": 0.0, "high": 0.5},
    "loss.stft.n_fft,loss.stft.win_length,loss.stft.hop_length": {
        "dist": "choice", "values": [[32, 32, 8], [64, 64, 16]], "when": "loss.stft_weight > 0.05"},
}


def _space(seed: int, options: dict[str, bool], num_samples: int, max_t: int, overrides: dict[str, Any],
           n_startup: int) -> dict[str, Any]:
    return {
        "description": "benchmarks/tpe_options.py", "base_config": str(CPU_CONFIG),
        "overrides": {"viz.plot_spectrogram": False, "trainer.early_stop_patience": 0,
                      "trainer.sample_every_epochs": max_t, **overrides},
        "metric": "val/mse_v", "mode": "min", "num_samples": num_samples, "max_concurrent": 2,
        "scheduler": {"max_t": max_t, "grace_period": 1, "reduction_factor": 2},
        "search": {"sampler": "tpe", "seed": seed, "n_startup_trials": n_startup, **options},
        "resources": {"cpus_per_trial": 1, "gpus_per_trial": 0}, "confirm": {"top_k": 0}, "params": PARAMS}


def _best(summary: dict[str, Any]) -> float:
    return min(t["best_value"] for t in summary["trials"] if t["best_value"] is not None)


def measure(opts) -> list[Figure]:
    quick = opts.quick
    seeds = [0, 1] if quick else [0, 1, 2]
    num_samples, max_t, n_startup = (4, 2, 2) if quick else (12, 4, 4)
    arms = {k: ARMS[k] for k in ("plain", "options")} if quick else ARMS
    # lr_warmup_steps 0: cpu.yaml's 50 warm-up steps would outlast a 4-epoch trial on this split
    # (~7 steps an epoch), so no trial would ever train at the lr it was given.
    overrides = {**TINY_MODEL} if quick else {
        "data.synthetic.n_subjects": 60, "advanced.lr_warmup_steps": 0, "viz.num_samples": 2,
        "diffusion.sample_steps": 5}
    best: dict[str, list[float]] = {a: [] for a in arms}
    wall: dict[str, list[float]] = {a: [] for a in arms}
    runs: dict[str, list[dict[str, Any]]] = {a: [] for a in arms}
    with tempfile.TemporaryDirectory(prefix="abr_bench_tpe_") as tmp:
        tmp = Path(tmp)
        for seed in seeds:
            for arm, options in arms.items():
                name = f"tpe_{arm}_s{seed}"
                load_before = os.getloadavg()
                out = run_search(_space(seed, options, num_samples, max_t, overrides, n_startup), tmp, name)
                trials = out["summary"]["trials"]
                best[arm].append(_best(out["summary"]))
                wall[arm].append(out["wall"])
                runs[arm].append({
                    "seed": seed, "best_val_mse_v": best[arm][-1], "wall_sec": out["wall"],
                    "trial_epochs": sum(t["epochs_run"] for t in trials),
                    "load_average_before": load_before, "load_average_after": os.getloadavg(),
                    "trials": [{"params": t["params"], "best_value": t["best_value"], "epochs_run": t["epochs_run"]}
                               for t in trials]})
                print(f"   {name}: best val/mse_v {best[arm][-1]:.4f}, {out['wall']:.0f} s, "
                      f"{runs[arm][-1]['trial_epochs']} trial-epochs, load {load_before[0]:.2f}", flush=True)
    med = {a: median(v) for a, v in best.items()}
    common = {"seeds": seeds, "num_samples": num_samples, "max_t": max_t, "n_startup_trials": n_startup,
              "max_concurrent": 2, "median_best_val_mse_v": med, "best_val_mse_v_per_seed": best,
              "wall_sec_per_seed": wall, "plain_seed_spread": max(best["plain"]) - min(best["plain"]),
              "runs": runs, "read": "below 1: the options found a better best val/mse_v than plain TPE"}
    figures = [reported(SECTION, f"TPE multivariate+group+constant_liar / plain TPE, median best val/mse_v "
                                 f"({len(seeds)} seeds)", med["options"] / med["plain"], "", **common)]
    if "liar" in arms:
        figures.append(reported(SECTION, "TPE constant_liar only / plain TPE, median best val/mse_v",
                                med["liar"] / med["plain"], "", **{k: common[k] for k in ("seeds",
                                "median_best_val_mse_v", "best_val_mse_v_per_seed")}))
    med_wall = {a: median(v) for a, v in wall.items()}
    figures.append(reported(SECTION, "search wall, plain TPE (median)", med_wall["plain"], "s",
                            wall_sec_median=med_wall, options_over_plain=med_wall["options"] / med_wall["plain"]))
    return figures
