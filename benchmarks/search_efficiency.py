"""Search efficiency: the confirmed best val/mse_v each method reaches at the same budget.

Methods, each at sampler seeds 0, 1, 2 (interleaved by seed, so a busy spell of the shared machine
falls on every method alike), the same trials (`--trials`), trial length (`--max-t`) and 2 at a time:
- default: `python -m abr_tune.search` as shipped (Ray Tune, Optuna TPE, ASHA);
- random: the same with Optuna's random sampler (Ray Tune, ASHA);
- optuna: Optuna alone in one process, TPE with its own HyperbandPruner, `n_jobs=2` (2 worker
  threads), each trial `train_abr` with a reporter that reports every epoch and prunes;
- bohb: Ray Tune's TuneBOHB + HyperBandForBOHB, when hpbandster and ConfigSpace import (else skipped).
A method's answer is its best trial's params, confirmed the same way for every method: trained
again at `--confirm-seeds` training seeds in this process; the value is the mean over those seeds.
Reported per method: median and spread (min-max) over seeds, the search's wall time, and the
best-so-far curve (trial end time, best search value) of each search.

    PYTHONPATH=. python -m benchmarks.search_efficiency --trials 4 --max-t 2 --seeds 0   # tiny: harness check
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from abr_tune.config import load_config
from abr_tune.train import train_abr
from abr_tune.training.callbacks import StopRun

from .common import CPU_CONFIG, ROOT
from .search_overhead import TINY_MODEL, run_search

PARAMS = {  # the quick start's two main axes, unconditional so every method sees the same space
    "optim.lr": {"dist": "loguniform", "low": 1e-4, "high": 3e-3},
    "loss.stft_weight": {"dist": "uniform", "low": 0.0, "high": 0.5},
}
FIXED = {"viz.plot_spectrogram": False, "trainer.early_stop_patience": 0, **TINY_MODEL}


def _space(sampler: str, seed: int, trials: int, max_t: int) -> dict[str, Any]:
    return {"description": "benchmarks/search_efficiency.py", "base_config": str(CPU_CONFIG),
            "overrides": {**FIXED, "trainer.sample_every_epochs": max_t}, "metric": "val/mse_v", "mode": "min",
            "num_samples": trials, "max_concurrent": 2,
            "scheduler": {"max_t": max_t, "grace_period": 1, "reduction_factor": 2},
            "search": {"sampler": sampler, "seed": seed, "n_startup_trials": max(1, trials // 3)},
            "resources": {"cpus_per_trial": 1, "gpus_per_trial": 0}, "confirm": {"top_k": 0}, "params": PARAMS}


def ray_method(sampler: str, seed: int, trials: int, max_t: int, tmp: Path) -> dict[str, Any]:
    out = run_search(_space(sampler, seed, trials, max_t), tmp, f"{sampler}_s{seed}")
    done = [t for t in out["summary"]["trials"] if t["best_value"] is not None]
    best = min(done, key=lambda t: t["best_value"])
    ends = sorted(_trial_end(d, out["started"]) for d in (tmp / "runs" / f"{sampler}_s{seed}").glob("trial_*"))
    return {"params": {k: best["overrides"][k] for k in PARAMS}, "search_value": best["best_value"],
            "wall": out["wall"], "curve": _best_so_far(ends)}


def _trial_end(trial_dir: Path, started: float) -> tuple[float, float]:
    """(seconds from the search's start to the trial's end, its best val/mse_v) from Tune's result.json."""
    rows = [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines() if line.strip()]
    values = [r["val/mse_v"] for r in rows if isinstance(r.get("val/mse_v"), float)]
    return rows[-1]["timestamp"] - started, min(values, default=float("inf"))


class _Pruning:
    """train_abr's reporter for an Optuna trial: report each epoch, stop when the pruner says so."""

    def __init__(self, trial: Any) -> None:
        self.trial = trial

    def restore_dir(self) -> None:
        return None

    def report(self, metrics: dict[str, float], checkpoint_dir: Any) -> None:
        epoch = int(metrics.get("epoch", 0))
        self.trial.report(metrics["val/mse_v"], epoch)
        if self.trial.should_prune():
            raise StopRun("pruned")


def _train(params: dict[str, Any], max_t: int, seed: int, out: Path, reporter: Any = None) -> float:
    cfg = load_config(CPU_CONFIG, {**FIXED, **params, "trainer.max_epochs": max_t, "seed": seed,
                                   "trainer.sample_every_epochs": max_t, "log_dir": str(out),
                                   "exp_name": f"run_{time.time_ns()}"})
    return float(train_abr(cfg, reporter)["best_val_mse_v"])


def optuna_method(seed: int, trials: int, max_t: int, tmp: Path) -> dict[str, Any]:
    import optuna

    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed),
                                pruner=optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_t,
                                                                      reduction_factor=2))
    start, ends, lock = time.perf_counter(), [], threading.Lock()

    def objective(trial: Any) -> float:
        params = {"optim.lr": trial.suggest_float("optim.lr", 1e-4, 3e-3, log=True),
                  "loss.stft_weight": trial.suggest_float("loss.stft_weight", 0.0, 0.5)}
        value = _train(params, max_t, 42, tmp / "optuna", _Pruning(trial))
        with lock:
            ends.append((time.perf_counter() - start, value))
        return value

    study.optimize(objective, n_trials=trials, n_jobs=2)
    return {"params": dict(study.best_params), "search_value": study.best_value,
            "wall": time.perf_counter() - start, "curve": _best_so_far(sorted(ends))}


def bohb_available() -> bool:
    try:
        import ConfigSpace  # noqa: F401
        import hpbandster  # noqa: F401
    except ImportError:
        return False
    return True


def _best_so_far(ends: list[tuple[float, float]]) -> list[tuple[float, float]]:
    curve, best = [], float("inf")
    for t, v in ends:
        best = min(best, v)
        curve.append((round(t, 1), best))
    return curve


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--max-t", type=int, default=4)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--confirm-seeds", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "search_efficiency.json")
    args = ap.parse_args()
    methods = ["default", "random", "optuna"]
    results: dict[str, list[dict[str, Any]]] = {m: [] for m in methods}
    with tempfile.TemporaryDirectory(prefix="abr_bench_eff_") as tmp:
        tmp = Path(tmp)
        for seed in args.seeds:
            for m in methods:
                r = (optuna_method(seed, args.trials, args.max_t, tmp) if m == "optuna"
                     else ray_method("tpe" if m == "default" else "random", seed, args.trials, args.max_t, tmp))
                r["confirmed"] = statistics.fmean(_train(r["params"], args.max_t, 43 + i, tmp / "confirm")
                                                  for i in range(args.confirm_seeds))
                r["seed"] = seed
                results[m].append(r)
                print(f"{m} seed {seed}: confirmed {r['confirmed']:.4f} (search {r['search_value']:.4f}), "
                      f"{r['wall']:.0f} s", flush=True)
    summary = {m: {"median_confirmed": statistics.median(r["confirmed"] for r in rs),
                   "spread": [min(r["confirmed"] for r in rs), max(r["confirmed"] for r in rs)],
                   "median_wall_s": statistics.median(r["wall"] for r in rs)} for m, rs in results.items()}
    summary["bohb"] = {"skipped": "not run: " + ("hpbandster/ConfigSpace do not import here" if not bohb_available()
                                                 else "TuneBOHB is not wired into this script yet")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": vars(args) | {"out": str(args.out)}, "summary": summary,
                                    "runs": results}, indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
