"""Figure 5: 2 concurrent trials × 1 torch thread vs 1 trial at a time × 2 threads, trials/hour.

Each "trial" is a short train_abr run (configs/cpu.yaml's model, a small dataset, validation,
a sampling round and checkpoints: the whole of a trial, not just the step) in one of two
spawned, warmed-up worker processes: side by side, or one after the other. Arms alternate.
A third arm, 2 concurrent trials × 2 threads each, is what a search gets if it leaves
torch's default thread count (= cores) in every trial.
"""

from __future__ import annotations

import multiprocessing as mp
import tempfile
import time
from pathlib import Path

from .common import CPU_CONFIG, Figure, at_least, config, median, paired_ratio, quiet_run

SECTION = "5 threads"
TRIALS = 2  # per timed run of an arm
ARMS = {"2 trials x 1 thread": (True, 1), "1 trial x 2 threads": (False, 2), "2 trials x 2 threads": (True, 2)}


def _trial(job: tuple[int, int, int, bool]) -> float:
    """One short train_abr run in this worker; returns its wall time."""
    from abr_tune.train import train_abr

    seed, threads, epochs, quick = job
    with tempfile.TemporaryDirectory(prefix="abr_bench_thr_") as tmp:
        cfg = config(CPU_CONFIG, {
            **quiet_run(Path(tmp), threads), "seed": seed, "data.synthetic.n_subjects": 30 if quick else 50,
            "trainer.max_epochs": epochs, "trainer.sample_every_epochs": epochs, "viz.plot_spectrogram": False})
        started = time.perf_counter()
        train_abr(cfg)
        return time.perf_counter() - started


def _arm(pool, concurrent: bool, threads: int, quick: bool) -> float:
    """Trials/hour of TRIALS trials, run side by side on the pool's 2 workers or one after another."""
    jobs = [(seed, threads, 2, quick) for seed in range(TRIALS)]
    started = time.perf_counter()
    if concurrent:
        pool.map(_trial, jobs, chunksize=1)
    else:
        for job in jobs:
            pool.apply(_trial, (job,))
    return TRIALS / (time.perf_counter() - started) * 3600


def measure(opts) -> list[Figure]:
    pool = mp.get_context("spawn").Pool(2)
    try:
        pool.map(_trial, [(99, 1, 1, True)] * 2, chunksize=1)  # warm-up: imports, first-call costs
        runs = {name: [] for name in ARMS}
        for _ in range(1 if opts.quick else 2):
            for name, (concurrent, threads) in ARMS.items():
                runs[name].append(_arm(pool, concurrent, threads, opts.quick))
    finally:
        pool.close()
        pool.join()
    two_by_one, one_by_two = "2 trials x 1 thread", "1 trial x 2 threads"
    return [at_least(SECTION, "trials/hour: 2 trials x 1 thread / 1 trial x 2 threads",
                     paired_ratio(runs[two_by_one], runs[one_by_two]), 1.0,
                     trials_per_hour={k: median(v) for k, v in runs.items()}, runs=runs, trials_per_run=TRIALS,
                     oversubscribed_over_one_thread_each=paired_ratio(runs["2 trials x 2 threads"], runs[two_by_one]))]
