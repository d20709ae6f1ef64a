"""Figure 7: per-trial overhead of a real search, and what ASHA saves.

Both run `python -m abr_tune.search` as a user would (a subprocess, its own local Ray), on
space files written here; the Optuna sampler is `random` with a seed, so two searches get
the same N configurations whatever their results.

Overhead: 6 trials of ~60 s (8 epochs, no early stopping: grace_period = max_t), 2 at a time,
1 CPU each. Figure = search wall × 2 ÷ Σ over trials of their training time (Σ epoch/time_sec:
train + validation + sampling). What is left is Ray's start and stop, trial start-up, data
transfer, checkpoint writes, reporting and the end-of-search report; the details split it
(from Tune's result.json timestamps) into once-per-search and per-trial costs.
The driver's peak RSS is read from /proc while it runs.

ASHA: N seeded configurations of a tiny model run to max_t, once with ASHA (grace 1,
reduction factor 3) and once without (grace = max_t): trial-epochs used, best val/mse_v.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from .common import CPU_CONFIG, ROOT, Figure, at_most, hwm_mb, median, reported

SECTION = "7 search"
TINY_MODEL = {"model.d_model": 32, "model.n_layers": 1, "model.n_heads": 2, "model.ff_mult": 2,
              "loader.batch_size": 32, "diffusion.sample_steps": 5, "viz.num_samples": 2,
              "data.synthetic.n_subjects": 60, "advanced.lr_warmup_steps": 0}


def _space(num_samples: int, max_t: int, grace: int, overrides: dict[str, Any], params: dict[str, Any],
           reduction_factor: float = 2) -> dict[str, Any]:
    return {
        "description": "benchmarks/search_overhead.py", "base_config": str(CPU_CONFIG),
        "overrides": {"viz.plot_spectrogram": False, "trainer.early_stop_patience": 0, **overrides},
        "num_samples": num_samples, "max_concurrent": 2,
        "scheduler": {"max_t": max_t, "grace_period": grace, "reduction_factor": reduction_factor},
        "search": {"sampler": "random", "seed": 0}, "resources": {"cpus_per_trial": 1}, "params": params}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_search(space: dict[str, Any], tmp: Path, name: str) -> dict[str, Any]:
    """Run the search CLI on `space`; return its summary, timings and the driver's peak RSS."""
    space_file = tmp / f"{name}.yaml"
    space_file.write_text(yaml.safe_dump(space, sort_keys=False))
    cmd = [sys.executable, "-m", "abr_tune.search", "--space", str(space_file), "--name", name,
           "--storage-path", str(tmp / "runs"), "--dashboard-port", str(_free_port())]
    started, started_epoch, peak = time.perf_counter(), time.time(), 0.0
    log = (tmp / f"{name}.log").open("w")
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    while proc.poll() is None:
        try:
            peak = max(peak, hwm_mb(proc.pid))
        except (FileNotFoundError, ProcessLookupError, KeyError):  # gone, or a zombie
            pass
        time.sleep(0.5)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"search {name} exited {proc.returncode}; log: {(tmp / f'{name}.log').read_text()[-2000:]}")
    exp = tmp / "runs" / name
    return {"summary": json.loads((exp / "search_summary.json").read_text()), "wall": wall,
            "started": started_epoch, "ended": started_epoch + wall, "driver_peak_mb": peak,
            "trials": [_tune_rows(d) for d in sorted(exp.glob("trial_*"))]}


def _tune_rows(trial_dir: Path) -> dict[str, Any]:
    """A trial's start and end (epoch seconds) and per-report times, from Tune's result.json."""
    rows = [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines() if line.strip()]
    end = rows[-1]["timestamp"]  # whole seconds
    return {"start": end - rows[-1]["time_total_s"], "end": end, "iter_sec": [r["time_this_iter_s"] for r in rows],
            "epoch_sec": [r.get("epoch/time_sec", 0.0) for r in rows]}


def _training_seconds(trial: dict[str, Any]) -> float:
    return sum(h.get("epoch/time_sec", 0.0) for h in trial["history"])


def measure(opts) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="abr_bench_search_") as tmp:
        tmp = Path(tmp)
        return _overhead(tmp, opts.quick) + _asha(tmp, opts.quick)


def _overhead(tmp: Path, quick: bool) -> list[Figure]:
    n, max_t = (4, 3) if quick else (6, 8)
    space = _space(n, max_t, max_t, {"data.synthetic.n_subjects": 40 if quick else 220,
                                     "trainer.sample_every_epochs": 5},
                   {"optim.lr": {"dist": "loguniform", "low": 3e-4, "high": 3e-3}})
    out = run_search(space, tmp, "overhead")
    training = [_training_seconds(t) for t in out["summary"]["trials"]]
    k, rows = space["max_concurrent"], out["trials"]
    first, last = min(r["start"] for r in rows), max(r["end"] for r in rows)
    per_epoch = [i - e for r in rows for i, e in zip(r["iter_sec"][1:], r["epoch_sec"][1:], strict=True)]
    setup = sorted(rows, key=lambda r: r["start"])
    breakdown = {  # seconds
        "before_first_trial (python, ray.init, tuner)": first - out["started"],
        "after_last_trial (ranking, report, ray shutdown)": out["ended"] - last,
        "trial_setup_first_round (new worker: imports, split, model)": [
            r["iter_sec"][0] - r["epoch_sec"][0] for r in setup[:k]],
        "trial_setup_later (reused worker)": [r["iter_sec"][0] - r["epoch_sec"][0] for r in setup[k:]],
        "per_epoch_checkpoint_and_report (median)": median(per_epoch),
    }
    return [
        at_most(SECTION, f"search wall x 2 / sum of trials' training time ({n} trials)",
                out["wall"] * k / sum(training), 1.10,
                wall_sec=out["wall"], cli_wall_sec=out["summary"]["wall_time_sec"], trial_training_sec=training,
                trials_span_ratio=(last - first) * k / sum(training), overhead_breakdown_sec=breakdown,
                epochs=[t["epochs_run"] for t in out["summary"]["trials"]],
                trial_length_sec=median(training), trial_length_target_sec=60),
        reported(SECTION, "driver peak RSS, 2-concurrent search", out["driver_peak_mb"], "MiB"),
    ]


def _asha(tmp: Path, quick: bool) -> list[Figure]:
    n, max_t = (4, 3) if quick else (12, 9)
    params = {"optim.lr": {"dist": "loguniform", "low": 1e-4, "high": 1e-2},
              "loss.stft_weight": {"dist": "uniform", "low": 0.0, "high": 0.5}}
    overrides = {**TINY_MODEL, "trainer.sample_every_epochs": max_t}
    runs = {name: run_search(_space(n, max_t, grace, overrides, params, reduction_factor=3), tmp, name)
            for name, grace in (("full", max_t), ("asha", 1))}
    used = {k: sum(t["epochs_run"] for t in r["summary"]["trials"]) for k, r in runs.items()}
    best = {k: min(t["best_value"] for t in r["summary"]["trials"] if t["best_value"] is not None)
            for k, r in runs.items()}
    return [
        at_most(SECTION, "ASHA trial-epochs / full run's", used["asha"] / used["full"], 0.40, "",
                trial_epochs=used, configs=n, max_t=max_t, wall_sec={k: r["wall"] for k, r in runs.items()}),
        at_most(SECTION, "ASHA best val/mse_v / full run's best", best["asha"] / best["full"], 1.05, "",
                best_val_mse_v=best),
    ]
