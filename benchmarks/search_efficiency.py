"""Search efficiency: the confirmed best val/mse_v each method reaches at the same budget.

Methods, each at sampler seeds 0, 1, 2 (interleaved by seed, so a busy spell of the shared machine
falls on every method alike), the same trials (`--trials`), trial length (`--max-t`) and 2 at a time:
- default: `python -m abr_tune.search` as shipped (Ray Tune, Optuna TPE, ASHA);
- random: the same with Optuna's random sampler (Ray Tune, ASHA);
- optuna: Optuna alone in one process, TPE with its own HyperbandPruner, `n_jobs=2` (2 worker
  threads, 1 torch thread each as a Ray trial has), each trial `train_abr` with a reporter that
  reports every epoch and prunes;
- bohb: Ray Tune's TuneBOHB + HyperBandForBOHB (Falkner et al. 2018) on the package's own trainable
  (`abr_tune.hpo.tuner.trainable`, which checkpoints every epoch, so a paused trial resumes), in a
  subprocess with its own local Ray as the CLI has; when hpbandster and ConfigSpace import (else skipped).
The budget is equal in trials x epochs (trial count and max_t), not in seconds: each search's wall time
is reported beside its value. A method's answer is its best trial's params, confirmed the same way for
every method: trained again at `--confirm-seeds` training seeds (43, 44, ...; 2 at a time, each in its
own process, 1 torch thread each); the value is the mean over those seeds.
Reported per method: median and spread (min-max) over seeds, median wall time, trial-epochs used, the
best-so-far curve (trial end time, best search value) of each search, and the time each search's curve
first reaches the default's median confirmed value (and its median search value); a PNG of the curves.

    PYTHONPATH=. python -m benchmarks.search_efficiency --trials 2 --max-t 1 --seeds 0 --confirm-seeds 1  # check
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Optional

from abr_tune.config import load_config
from abr_tune.train import train_abr
from abr_tune.training.callbacks import StopRun

from .common import CPU_CONFIG, ROOT
from .search_overhead import TINY_MODEL, _free_port, run_search

PARAMS = {  # the quick start's two main axes, unconditional so every method sees the same space
    "optim.lr": {"dist": "loguniform", "low": 1e-4, "high": 3e-3},
    "loss.stft_weight": {"dist": "uniform", "low": 0.0, "high": 0.5},
}
FIXED = {"viz.plot_spectrogram": False, "trainer.early_stop_patience": 0, **TINY_MODEL}
METHODS = ["default", "random", "optuna", "bohb"]
COLOURS = {"default": "tab:blue", "random": "tab:orange", "optuna": "tab:green", "bohb": "tab:red"}


def _space(sampler: str, seed: int, trials: int, max_t: int) -> dict[str, Any]:
    return {"description": "benchmarks/search_efficiency.py", "base_config": str(CPU_CONFIG),
            "overrides": {**FIXED, "trainer.sample_every_epochs": max_t}, "metric": "val/mse_v", "mode": "min",
            "num_samples": trials, "max_concurrent": 2,
            "scheduler": {"max_t": max_t, "grace_period": 1, "reduction_factor": 2},
            "search": {"sampler": sampler, "seed": seed, "n_startup_trials": max(1, trials // 3)},
            "resources": {"cpus_per_trial": 1, "gpus_per_trial": 0}, "confirm": {"top_k": 0}, "params": PARAMS}


def ray_method(sampler: str, seed: int, trials: int, max_t: int, tmp: Path) -> dict[str, Any]:
    name = f"{sampler}_s{seed}"
    out = run_search(_space(sampler, seed, trials, max_t), tmp, name)
    done = [t for t in out["summary"]["trials"] if t["best_value"] is not None]
    best = min(done, key=lambda t: t["best_value"])
    return {"params": {k: best["overrides"][k] for k in PARAMS}, "search_value": best["best_value"],
            "wall": out["wall"], **_tune_curve(tmp / "runs" / name, out["started"])}


def _tune_curve(exp_dir: Path, started: float) -> dict[str, Any]:
    """The best-so-far curve and the trial-epochs used, from each trial's result.json (Tune's)."""
    ends, epochs = [], 0
    for d in exp_dir.glob("trial_*"):
        t, v, n = _trial_end(d, started)
        ends.append((t, v))
        epochs += n
    return {"curve": _best_so_far(sorted(ends)), "trial_epochs": epochs, "trials_run": len(ends)}


def _trial_end(trial_dir: Path, started: float) -> tuple[float, float, int]:
    """(seconds from the search's start to the trial's end, its best val/mse_v, its epochs) from result.json."""
    rows = [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines() if line.strip()]
    values = [r["val/mse_v"] for r in rows if isinstance(r.get("val/mse_v"), float)]
    return rows[-1]["timestamp"] - started, min(values, default=float("inf")), len(values)


class _Pruning:
    """train_abr's reporter for an Optuna trial: report each epoch, stop when the pruner says so."""

    def __init__(self, trial: Any) -> None:
        self.trial, self.epochs = trial, 0

    def restore_dir(self) -> None:
        return None

    def report(self, metrics: dict[str, float], checkpoint_dir: Any) -> None:
        epoch = int(metrics.get("epoch", 0))
        self.epochs += 1
        self.trial.report(metrics["val/mse_v"], epoch)
        if self.trial.should_prune():
            raise StopRun("pruned")


def _train(params: dict[str, Any], max_t: int, seed: int, out: Path, reporter: Any = None) -> float:
    # 1 torch thread per run, as each Ray trial has (cpus_per_trial 1): 2 runs at a time fill the 2 cores
    cfg = load_config(CPU_CONFIG, {**FIXED, **params, "trainer.max_epochs": max_t, "seed": seed,
                                   "trainer.sample_every_epochs": max_t, "log_dir": str(out),
                                   "advanced.torch_threads": 1, "trainer.progress": False,
                                   "exp_name": f"run_{time.time_ns()}"})
    return float(train_abr(cfg, reporter)["best_val_mse_v"])


def optuna_method(seed: int, trials: int, max_t: int, tmp: Path) -> dict[str, Any]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(
                                    seed=seed, n_startup_trials=max(1, trials // 3)),
                                pruner=optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_t,
                                                                      reduction_factor=2))
    start, ends, epochs, lock = time.perf_counter(), [], [], threading.Lock()

    def objective(trial: Any) -> float:
        params = {"optim.lr": trial.suggest_float("optim.lr", 1e-4, 3e-3, log=True),
                  "loss.stft_weight": trial.suggest_float("loss.stft_weight", 0.0, 0.5)}
        reporter = _Pruning(trial)
        try:
            value = _train(params, max_t, 42, tmp / "optuna", reporter)
        finally:
            with lock:
                epochs.append(reporter.epochs)
        with lock:
            ends.append((time.perf_counter() - start, value))
        return value

    study.optimize(objective, n_trials=trials, n_jobs=2)
    return {"params": dict(study.best_params), "search_value": study.best_value,
            "wall": time.perf_counter() - start, "curve": _best_so_far(sorted(ends)),
            "trial_epochs": sum(epochs), "trials_run": len(study.trials)}


def bohb_available() -> Optional[str]:
    """None when TuneBOHB can run here, else why not."""
    try:
        import ConfigSpace  # noqa: F401
        import hpbandster  # noqa: F401
        from ray.tune.search.bohb import TuneBOHB  # noqa: F401
    except ImportError as err:
        return f"TuneBOHB does not import here ({err}); pip install hpbandster ConfigSpace"
    return None


def bohb_method(seed: int, trials: int, max_t: int, tmp: Path) -> dict[str, Any]:
    """TuneBOHB + HyperBandForBOHB in a subprocess (`--bohb-child`), its own local Ray as the CLI's."""
    name = f"bohb_s{seed}"
    spec = tmp / f"{name}.json"
    spec.write_text(json.dumps({"space": _space("tpe", seed, trials, max_t), "storage": str(tmp / "runs"),
                                "name": name, "seed": seed}))
    started_epoch, started = time.time(), time.perf_counter()
    with (tmp / f"{name}.log").open("w") as log:
        rc = subprocess.run([sys.executable, "-m", "benchmarks.search_efficiency", "--bohb-child", str(spec)],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT).returncode
    wall = time.perf_counter() - started
    if rc != 0:
        raise RuntimeError(f"BOHB search {name} exited {rc}; log: {(tmp / f'{name}.log').read_text()[-3000:]}")
    best = json.loads((tmp / "runs" / name / "bohb_best.json").read_text())
    return {"params": {k: best["config"][k] for k in PARAMS}, "search_value": best["value"], "wall": wall,
            **_tune_curve(tmp / "runs" / name, started_epoch)}


def bohb_child(spec_file: Path) -> None:
    """Run one BOHB search: the package's trainable (same trials, base config, 1 CPU each) under Tune."""
    from abr_tune.hpo.cluster import SINGLE_NODE_ENV

    os.environ.setdefault(SINGLE_NODE_ENV, "0")  # as the CLI: a loopback-only local Ray
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    import ConfigSpace as CS
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback
    from ray.tune.schedulers import HyperBandForBOHB
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.bohb import TuneBOHB

    from abr_tune.config import from_dict
    from abr_tune.hpo.cluster import start_ray
    from abr_tune.hpo.space_file import parse_space
    from abr_tune.hpo.trial_base import trial_base
    from abr_tune.hpo.tuner import load_data, trainable, trial_dirname, trial_name

    spec = json.loads(spec_file.read_text())
    space = parse_space(spec["space"])
    space = dataclasses.replace(space, base_config=None, base=trial_base(from_dict(space.base_raw())), overrides={})
    space.bind(from_dict(space.base))
    arrays = load_data(space)
    cs = CS.ConfigurationSpace(seed=spec["seed"])
    for key, p in PARAMS.items():
        cs.add(CS.UniformFloatHyperparameter(key, p["low"], p["high"], log=p["dist"] == "loguniform"))
    start_ray(argparse.Namespace(dashboard_host="127.0.0.1", dashboard_port=_free_port()), None)
    s = space.scheduler
    tuner = tune.Tuner(
        trainable(space, arrays),
        tune_config=tune.TuneConfig(
            metric=space.metric, mode=space.mode, num_samples=space.num_samples, reuse_actors=True,
            search_alg=ConcurrencyLimiter(TuneBOHB(space=cs, metric=space.metric, mode=space.mode,
                                                     seed=spec["seed"]), max_concurrent=space.max_concurrent),
            scheduler=HyperBandForBOHB(time_attr="epoch", max_t=s.max_t, reduction_factor=s.reduction_factor),
            trial_name_creator=trial_name, trial_dirname_creator=trial_dirname),
        run_config=tune.RunConfig(name=spec["name"], storage_path=spec["storage"], verbose=1,
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
                                  callbacks=[CSVLoggerCallback(), JsonLoggerCallback()]))
    best = tuner.fit().get_best_result(metric=space.metric, mode=space.mode, scope="all")
    value = min(v for v in best.metrics_dataframe[space.metric] if v == v)
    (Path(spec["storage"]) / spec["name"] / "bohb_best.json").write_text(
        json.dumps({"config": best.config, "value": float(value)}))


def _best_so_far(ends: list[tuple[float, float]]) -> list[tuple[float, float]]:
    curve, best = [], float("inf")
    for t, v in ends:
        best = min(best, v)
        curve.append((round(t, 1), best))
    return curve


def time_to(curve: list[list[float]], target: float) -> Optional[float]:
    """Seconds from a search's start until its best-so-far value is <= target; None if it never is."""
    return next((t for t, v in curve if v <= target), None)


def _median_time(times: list[Optional[float]]) -> Optional[float]:
    """Median with never = infinity; None when at least half never reached the target."""
    s = sorted(float("inf") if t is None else t for t in times)
    m = statistics.median(s) if s else float("inf")
    return None if m == float("inf") else m


def summarise(results: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    ran = {m: rs for m, rs in results.items() if rs}
    if not ran.get("default"):
        return {}
    target = statistics.median(r["confirmed"] for r in ran["default"])
    target_search = statistics.median(r["search_value"] for r in ran["default"])
    out: dict[str, Any] = {"default_median_confirmed": target, "default_median_search": target_search}
    for m, rs in ran.items():
        to_confirmed = [time_to(r["curve"], target) for r in rs]
        to_search = [time_to(r["curve"], target_search) for r in rs]
        out[m] = {"seeds": [r["seed"] for r in rs],
                  "confirmed": [r["confirmed"] for r in rs],
                  "median_confirmed": statistics.median(r["confirmed"] for r in rs),
                  "spread": [min(r["confirmed"] for r in rs), max(r["confirmed"] for r in rs)],
                  "median_search_value": statistics.median(r["search_value"] for r in rs),
                  "wall_s": [round(r["wall"], 1) for r in rs],
                  "median_wall_s": statistics.median(r["wall"] for r in rs),
                  "median_trial_epochs": statistics.median(r["trial_epochs"] for r in rs),
                  "time_to_default_confirmed_s": to_confirmed,
                  "median_time_to_default_confirmed_s": _median_time(to_confirmed),
                  "time_to_default_search_s": to_search,
                  "median_time_to_default_search_s": _median_time(to_search)}
    return out


def plot(results: dict[str, list[dict[str, Any]]], summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [2.2, 1]})
    ran = [m for m in METHODS if results.get(m)]
    for m in ran:
        for i, r in enumerate(results[m]):
            if r["curve"]:
                ts, vs = zip(*r["curve"], strict=True)
                ax.step([*ts, max(r["wall"], ts[-1])], [*vs, vs[-1]], where="post", color=COLOURS[m], lw=1, alpha=0.8,
                        label=m if i == 0 else None)
                ax.plot(ts[0], vs[0], marker=".", color=COLOURS[m])
        bx.scatter([ran.index(m)] * len(results[m]), [r["confirmed"] for r in results[m]], color=COLOURS[m])
        bx.hlines(statistics.median(r["confirmed"] for r in results[m]), ran.index(m) - 0.25, ran.index(m) + 0.25,
                  color=COLOURS[m])
    if "default_median_confirmed" in summary:
        for a in (ax, bx):
            a.axhline(summary["default_median_confirmed"], color="k", ls="--", lw=0.8,
                      label="default's median confirmed" if a is ax else None)
    ax.set(xlabel="wall time since the search started (s)", ylabel="best val/mse_v so far (search)",
           title="best-so-far per search (one line per seed)")
    ax.legend()
    bx.set_xticks(range(len(ran)), ran)
    bx.set(ylabel="confirmed val/mse_v (mean of seeds)", title="confirmed answers (bar: median)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def confirm(params: dict[str, Any], max_t: int, n: int, out: Path) -> float:
    """The mean best val/mse_v of `params` trained at seeds 43, 44, ...: 2 at a time, each in its own process
    (two threads of one process would share torch's global random state: not reproducible)."""
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        return statistics.fmean(pool.map(_train, [params] * n, [max_t] * n, [43 + i for i in range(n)], [out] * n))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--max-t", type=int, default=4)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--confirm-seeds", type=int, default=2)
    ap.add_argument("--methods", nargs="+", choices=METHODS, default=METHODS)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "search_efficiency.json")
    ap.add_argument("--combine", type=Path, nargs="+", metavar="JSON",
                    help="summarise the runs of earlier outputs together (e.g. seeds 0-2 and 3-5) into --out")
    ap.add_argument("--bohb-child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.bohb_child:
        bohb_child(args.bohb_child)
        return
    if args.combine:
        print(json.dumps(combine(args), indent=1))
        return
    skipped = {}
    methods = list(args.methods)
    if "bohb" in methods and (why := bohb_available()):
        skipped["bohb"] = why
        methods.remove("bohb")
    results: dict[str, list[dict[str, Any]]] = {m: [] for m in methods}
    load = {"start": os.getloadavg()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="abr_bench_eff_") as tmp:
        tmp = Path(tmp)
        for seed in args.seeds:
            for m in methods:
                r = (optuna_method(seed, args.trials, args.max_t, tmp) if m == "optuna"
                     else bohb_method(seed, args.trials, args.max_t, tmp) if m == "bohb"
                     else ray_method("tpe" if m == "default" else "random", seed, args.trials, args.max_t, tmp))
                r["confirmed"] = confirm(r["params"], args.max_t, args.confirm_seeds, tmp / "confirm")
                r["seed"] = seed
                results[m].append(r)
                print(f"{m} seed {seed}: confirmed {r['confirmed']:.4f} (search {r['search_value']:.4f}), "
                      f"{r['wall']:.0f} s, {r['trial_epochs']} trial-epochs, params {r['params']}, "
                      f"load {os.getloadavg()[0]:.1f}", flush=True)
                _write(args, results, skipped, load)  # after every run: a cut-short run keeps what it did
    load["end"] = os.getloadavg()
    summary = _write(args, results, skipped, load)
    print(json.dumps(summary, indent=1))


def combine(args: argparse.Namespace) -> dict[str, Any]:
    """One summary and PNG over the runs of several outputs of this script (their load averages listed)."""
    results: dict[str, list[dict[str, Any]]] = {}
    skipped: dict[str, str] = {}
    loads = []
    for path in args.combine:
        data = json.loads(path.read_text())
        for m, rs in data["runs"].items():
            results.setdefault(m, []).extend(rs)
        skipped.update(data["summary"].get("skipped", {}))
        loads.append({"from": str(path), **data["loadavg"]})
    for rs in results.values():
        rs.sort(key=lambda r: r["seed"])
    args.seeds = sorted({r["seed"] for rs in results.values() for r in rs})
    return _write(args, results, skipped, {"runs": loads})


def _write(args: argparse.Namespace, results: dict[str, list[dict[str, Any]]], skipped: dict[str, str],
           load: dict[str, Any]) -> dict[str, Any]:
    summary = {**summarise(results), "skipped": skipped}
    args.out.write_text(json.dumps({"args": json.loads(json.dumps(vars(args), default=str)),
                                    "loadavg": load, "summary": summary, "runs": results}, indent=1))
    plot(results, summary, args.out.with_suffix(".png"))
    return summary


if __name__ == "__main__":
    main()
