"""Figure 9: multi-objective samplers, TPE vs NSGA-II: which finds the larger Pareto front?

Each arm runs `python -m abr_tune.search` as a user would (a subprocess, its own local Ray, as
figure 7's `run_search` does) on a space file written here, a cheaper search_spaces/physiology.yaml:
three objectives (val/mse_v min, sample/wave_v_latency_mae_ms min, sample/detection_acc max),
12 trials of configs/cpu.yaml's model on 60 subjects (420 training recordings) at batch 16,
2 at a time, ASHA (max_t 4, grace 1, reduction factor 2, sample metrics on the last epoch
only, 32 conditions), no confirmation stage, params advanced.cfg_dropout_prob,
diffusion.cfg_scale, optim.lr and loss.stft_weight. Batch 16, not cpu.yaml's 64: at 64 a
4-epoch trial is 28 optimizer steps and its samples are noise (no wave V in any sample, so
every point's latency is undefined and every hypervolume 0); at 16 it is 104 steps, and wave
V is found in about 60% of the samples (latency error ~0.9 ms, detection ~65%).

Arms: multi-objective TPE (the shipped default, 4 random start-up trials) and NSGA-II
(population_size 8), at sampler seeds 0, 1, 2 (the training seed stays fixed), interleaved by
seed (seed 0: tpe, nsga2; seed 1: ...), so a busy spell of the shared machine falls on both alike.

Value: the hypervolume of the points of each search, the objective vectors of the trials that
ran to max_t (ASHA-stopped trials were measured at an earlier epoch and are no points, as in
the product's front). Every search shares one reference point, fixed after all searches ran:
per objective the worst value over all points of all searches plus 10% of that objective's
range. Maximised objectives are negated; a latency left undefined (no wave V found, null in
search_summary.json) takes the reference point's value, so it adds no volume on that axis.
The hypervolume is given in normalised units: each axis scaled to [0, 1] between the best
value over all searches and the reference point, so 1 would be one point best at everything
(the ratio does not depend on the scaling). Figure = median over seeds for NSGA-II ÷ the same
for TPE: above 1 NSGA-II found the larger front. Per-seed values, points, each search's wall
time and load average, and how many NSGA-II trials came from a bred generation (>= 1) rather
than its random first generation are in the details.

The searches store their experiments under a file:// URI rather than a plain path: for a URI
the search skips its end-of-search report (search.py `_write_report`), which here costs ~155 s a
search (the sampling-noise re-scoring of the best trial and the runner-up at 6 seeds alone
~120 s) and changes nothing the figure reads. The trials, the study and search_summary.json are
the same; the study then sits in <repo>/runs/search_studies/<name>/ (removed afterwards).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .common import CPU_CONFIG, ROOT, Figure, median, reported
from .search_overhead import TINY_MODEL, _free_port

SECTION = "9 mo samplers"
OBJECTIVES = ["val/mse_v", "sample/wave_v_latency_mae_ms", "sample/detection_acc"]
MODES = ["min", "min", "max"]
ARMS = {"tpe": {}, "nsga2": {"population_size": 8}}  # name -> search options beside the sampler
PARAMS = {
    "advanced.cfg_dropout_prob": {"dist": "uniform", "low": 0.0, "high": 0.3},
    "diffusion.cfg_scale": {"dist": "uniform", "low": 1.0, "high": 3.0},
    "optim.lr": {"dist": "loguniform", "low": 3e-4, "high": 3e-3},
    "loss.stft_weight": {"dist": "uniform", "low": 0.0, "high": 0.4},
}
MARGIN = 0.1  # of each objective's range over all points, beyond the worst value


def _space(sampler: str, seed: int, num_samples: int, max_t: int, overrides: dict[str, Any]) -> dict[str, Any]:
    return {
        "description": "benchmarks/mo_samplers.py", "base_config": str(CPU_CONFIG),
        "overrides": {"viz.plot_spectrogram": False, "trainer.early_stop_patience": 0,
                      "trainer.sample_every_epochs": max_t, **overrides},
        "metrics": OBJECTIVES, "num_samples": num_samples, "max_concurrent": 2,
        "scheduler": {"max_t": max_t, "grace_period": 1, "reduction_factor": 2},
        "search": {"sampler": sampler, "seed": seed, **ARMS[sampler]},
        "resources": {"cpus_per_trial": 1, "gpus_per_trial": 0}, "confirm": {"top_k": 0}, "params": PARAMS}


def _loss(objectives: dict[str, Any]) -> list[float | None]:
    """A trial's objective vector to minimise (max-objectives negated); None = undefined (worst)."""
    out: list[float | None] = []
    for name, mode in zip(OBJECTIVES, MODES, strict=True):
        v = objectives.get(name)
        v = float(v) if v is not None and math.isfinite(float(v)) else None
        out.append(None if v is None else (v if mode == "min" else -v))
    return out


def _points(summary: dict[str, Any]) -> list[list[float | None]]:
    """The objective vectors of the trials that ran to max_t and were valued (no ASHA stop)."""
    return [_loss(t["objectives"]) for t in summary["trials"]
            if not t.get("stopped_early") and all(n in (t.get("objectives") or {}) for n in OBJECTIVES)]


def reference(all_points: list[list[float | None]]) -> tuple[list[float], list[float]]:
    """(best, reference point) per objective over every search's points."""
    best, ref = [], []
    for i in range(len(OBJECTIVES)):
        values = [p[i] for p in all_points if p[i] is not None]
        if not values:  # nothing defined on this axis: any unit box
            best.append(0.0)
            ref.append(1.0)
            continue
        lo, hi = min(values), max(values)
        span = hi - lo if hi > lo else max(abs(hi), 1e-3)
        best.append(lo)
        ref.append(hi + MARGIN * span)
    return best, ref


def hypervolume(points: list[list[float | None]], best: list[float], ref: list[float]) -> float:
    """Normalised hypervolume of `points` (minimised) against `ref`; None values sit at `ref`."""
    from optuna._hypervolume import compute_hypervolume

    if not points:
        return 0.0
    arr = np.array([[r if v is None else v for v, r in zip(p, ref, strict=True)] for p in points], dtype=float)
    scale = np.array(ref) - np.array(best)
    arr = (arr - np.array(best)) / scale
    return float(compute_hypervolume(np.minimum(arr, 1.0), np.ones(len(ref)), assume_pareto=False))


def run_search(space: dict[str, Any], tmp: Path, name: str) -> dict[str, Any]:
    """Figure 7's `run_search` with URI storage (no end-of-search report); returns the summary, the
    wall time and each trial's NSGA-II generation (None for other samplers)."""
    import optuna

    space_file = tmp / f"{name}.yaml"
    space_file.write_text(yaml.safe_dump(space, sort_keys=False))
    cmd = [sys.executable, "-m", "abr_tune.search", "--space", str(space_file), "--name", name,
           "--storage-path", (tmp / "runs").resolve().as_uri(), "--dashboard-port", str(_free_port())]
    started = time.perf_counter()
    with (tmp / f"{name}.log").open("w") as log:
        code = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT).returncode
    wall = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"search {name} exited {code}; log: {(tmp / f'{name}.log').read_text()[-2000:]}")
    summary = json.loads((tmp / "runs" / name / "search_summary.json").read_text())
    studies = ROOT / "runs" / "search_studies" / name  # where a URI-stored experiment keeps its study
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=None, storage=f"sqlite:///{studies / 'optuna.db'}")
        generations = [t.system_attrs.get("NSGAIISampler:generation") for t in study.get_trials(deepcopy=False)]
    finally:
        shutil.rmtree(studies, ignore_errors=True)
        with contextlib.suppress(OSError):  # only when empty
            studies.parent.rmdir()
    return {"summary": summary, "wall": wall, "generations": generations}


def measure(opts) -> list[Figure]:
    quick = opts.quick
    seeds = [0, 1] if quick else [0, 1, 2]
    num_samples, max_t = (4, 2) if quick else (12, 4)
    # lr_warmup_steps 0: cpu.yaml's 50 warm-up steps would outlast a 4-epoch trial (figure 8).
    overrides = {**TINY_MODEL, "trainer.sample_conditions": 8} if quick else {
        "data.synthetic.n_subjects": 60, "loader.batch_size": 16, "advanced.lr_warmup_steps": 0,
        "viz.num_samples": 2, "trainer.sample_conditions": 32}
    runs: dict[str, list[dict[str, Any]]] = {a: [] for a in ARMS}
    with tempfile.TemporaryDirectory(prefix="abr_bench_mo_") as tmp:
        tmp = Path(tmp)
        for seed in seeds:
            for arm in ARMS:
                name = f"mo_{arm}_s{seed}_{tmp.name}"  # unique: the study dir is outside tmp
                load_before = os.getloadavg()
                out = run_search(_space(arm, seed, num_samples, max_t, overrides), tmp, name)
                summary, trials = out["summary"], out["summary"]["trials"]
                generations = out["generations"]
                runs[arm].append({
                    "seed": seed, "points": _points(summary), "wall_sec": out["wall"],
                    "trial_epochs": sum(t["epochs_run"] for t in trials),
                    "search_front": (summary.get("pareto") or {}).get("front"),
                    "nsga2_bred_trials": sum(1 for g in generations if g is not None and g >= 1),
                    "load_average_before": load_before, "load_average_after": os.getloadavg(),
                    "trials": [{"params": t["params"], "objectives": t["objectives"], "epochs_run": t["epochs_run"],
                                "stopped_early": t["stopped_early"]} for t in trials]})
                r = runs[arm][-1]
                print(f"   {arm} seed {seed}: {len(r['points'])} points, {r['trial_epochs']} trial-epochs, "
                      f"{out['wall']:.0f} s, load {load_before[0]:.2f}", flush=True)
    best, ref = reference([p for rs in runs.values() for r in rs for p in r["points"]])
    hv: dict[str, list[float]] = {}
    for arm, rs in runs.items():
        for r in rs:
            r["hypervolume"] = hypervolume(r["points"], best, ref)
            r["latency_undefined"] = sum(1 for p in r["points"] if p[1] is None)
        hv[arm] = [r["hypervolume"] for r in rs]
    med = {a: median(v) for a, v in hv.items()}
    wall = {a: [r["wall_sec"] for r in rs] for a, rs in runs.items()}
    ratio = med["nsga2"] / med["tpe"] if med["tpe"] > 0 else None
    details = {
        "seeds": seeds, "num_samples": num_samples, "max_t": max_t, "max_concurrent": 2,
        "objectives": dict(zip(OBJECTIVES, MODES, strict=True)), "params": list(PARAMS),
        "best_per_objective_minimised": best, "reference_point_minimised": ref, "margin": MARGIN,
        "median_hypervolume": med, "hypervolume_per_seed": hv, "wall_sec_per_seed": wall,
        "runs": runs, "read": "above 1: NSGA-II found the larger front (normalised hypervolume)"}
    return [
        reported(SECTION, f"NSGA-II (population 8) / TPE, median hypervolume of the front after {num_samples} "
                          f"trials ({len(seeds)} seeds)", ratio, "", **details),
        reported(SECTION, "search wall, multi-objective TPE (median)", median(wall["tpe"]), "s",
                 wall_sec_median={a: median(v) for a, v in wall.items()}),
    ]
